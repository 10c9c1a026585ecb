"""Notebook 07's loss timing: PALU's O(TK) top-K local entropy against an O(TV) full-vocabulary flattening,
measured once per code version and machine and kept in the run cache (kind `LOSS_TIMING`). Its own module so
that the measurement's cache key covers the loss and this code only: a table edit elsewhere never re-measures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from paperlib.report import SPREAD


def loss_timing(ks: list[int], vocab_sizes: list[int], tokens: int = 512, repeats: int = 5) -> pd.DataFrame:
    """Forward + backward time of PALU's top-K local entropy (O(TK) gathered logits) vs a full-vocabulary
    flattening loss (O(TV)), on random logits of `tokens` positions."""
    import time

    import torch

    from paperlib.methods import losses

    rows = []
    for vocab in vocab_sizes:
        for k in [k for k in ks if k <= vocab]:
            logits = torch.randn(1, tokens, vocab, requires_grad=True)
            idx = torch.randint(0, vocab, (1, tokens, k))
            mask = torch.ones(1, tokens, dtype=torch.bool)
            full_idx = torch.arange(vocab).expand(1, tokens, vocab)
            for name, index in (("top-K local entropy", idx), ("full-vocabulary", full_idx)):
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    losses.local_entropy(logits, index, mask).backward()
                    times.append(time.perf_counter() - t0)
                rows.append({"V": vocab, "K": k if name.startswith("top") else vocab, "loss": name,
                             "ms": 1e3 * float(np.median(times)), f"ms{SPREAD}": 1e3 * float(np.std(times, ddof=1))})
    return pd.DataFrame(rows).drop_duplicates(["V", "K", "loss"])


LOSS_TIMING = "loss-timing"  # cache kind of `cached_loss_timing` (its code: paperlib.engine.cache.CODE)
MEASURED = "measured.json"  # when and on what a cached timing was measured


def _cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else platform.processor(), else the architecture."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_identity() -> dict:
    """What a timing depends on besides the code: CPU model, core count, torch's intra-op threads, torch
    version, Python version, architecture. Part of the loss-timing cache key, so another machine, another
    thread count (e.g. `--workers 2` vs serial) or another torch measures again."""
    import os
    import platform

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "arch": platform.machine()}


def cached_loss_timing(ks: list[int], vocab_sizes: list[int], tokens: int = 512, repeats: int = 5,
                       force: bool = False) -> tuple[pd.DataFrame, dict]:
    """`loss_timing`, measured once per code version and machine (`machine_identity`) and kept in the run
    cache (kind `LOSS_TIMING`); a warm notebook re-reads it. `force` measures again (and replaces the entry).
    Returns the table and what it was measured on and when (`measured_at`, UTC, plus the machine identity:
    `timing_note` turns it into a caption)."""
    from datetime import datetime, timezone

    from paperlib.engine.cache import cached_run

    config = {"ks": list(ks), "vocab_sizes": list(vocab_sizes), "tokens": tokens, "repeats": repeats,
              "machine": machine_identity()}

    def build(out: Path) -> None:
        table = loss_timing(ks, vocab_sizes, tokens=tokens, repeats=repeats)
        (out / "loss_timing.json").write_text(json.dumps(table.to_dict(orient="records")))
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        (out / MEASURED).write_text(json.dumps({"measured_at": stamp, **config["machine"]}))

    run = cached_run(LOSS_TIMING, config, build, force=force)
    table = pd.DataFrame(json.loads((run / "loss_timing.json").read_text()))
    return table, json.loads((run / MEASURED).read_text())


def timing_note(measured: dict) -> str:
    """'measured 2026-11-23 21:30 UTC on <cpu>, 2 threads, torch 2.13.0' for a table caption."""
    threads = measured.get("threads")
    return (f"measured {measured.get('measured_at', '?')} on {measured.get('cpu', '?')}, {threads} "
            f"thread{'s' if threads != 1 else ''}, torch {measured.get('torch', '?')}")
