"""1d: the per-run work around the model, a sweep run's evaluations and the read of a cached run, each with the
per-process memos of `benchmarks.tofu.data` (split files, span folders) and `benchmarks.tofu.evaluate` (encodings) kept
(the code as it is) vs cleared before every evaluation / run (the work the code did before the memos), interleaved.

A mini sweep run evaluates after each of its 4 epochs with one tokenizer object: `evaluations` times those 4
`evaluate_tofu` calls. A cached run's read (every notebook reads its runs from the cache, warm `make reproduce`)
is `data` = `unlearn.forget_rows` of a span method (split + span folder + join), the part of the read these memos
touch (`before` also joins the spans as the code did before, pickling the span dict). Wall and CPU seconds of
this process (CPU time is less disturbed by other processes; wall time also counts waiting for files). The
numbers are bit-identical either way (same inputs to the same functions; tests/test_evaluate.py).
"""

from __future__ import annotations

import time
import warnings

import torch
from common import median

from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import evaluate, pipeline
from paperlib.engine import unlearn as U
from paperlib.engine.config import Profile
from paperlib.engine.models import load_model, load_tokenizer
from paperlib.methods import make_method


def _attach_before(ds, spans: dict):
    """`tofu.attach_spans` as it was before (datasets pickles the whole `spans` dict to fingerprint the map)."""
    return ds.map(lambda r: {"spans": spans[r["question"]]["spans"], "common": spans[r["question"]]["common"]})


def _clear() -> None:
    tofu._LOADED.clear()
    tofu._SPANS.clear()
    evaluate._ENCODED.clear()


def bench_runs(profile: Profile, forget: str = "forget10", repeats: int = 3, reads: int = 10) -> dict:
    path = pipeline.original_model(profile)
    model = load_model(path).eval()
    source = pipeline.benchmark_source(profile)
    retain_log = evaluate.load_log(pipeline.retain_log_path(profile, forget))
    needs = make_method("PALU", {}).needs()
    evals: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    data: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            for mode in evals:
                tok = load_tokenizer(path)  # one tokenizer per run, as unlearn's _build
                t0, c0 = time.perf_counter(), time.process_time()
                for _epoch in range(4):
                    if mode == "before":
                        _clear()
                    evaluate.evaluate_tofu(model, tok, profile.model.template, source, forget, profile.eval,
                                           retain_log, evaluate.EvalOutput(progress=False))
                evals[mode].append((time.perf_counter() - t0, time.process_time() - c0))
                attach = tofu.attach_spans
                tofu.attach_spans = _attach_before if mode == "before" else attach
                try:
                    t0, c0 = time.perf_counter(), time.process_time()
                    for _ in range(reads):
                        if mode == "before":
                            _clear()
                        U.forget_rows(profile, forget, needs)
                    data[mode].append(((time.perf_counter() - t0) / reads, (time.process_time() - c0) / reads))
                finally:
                    tofu.attach_spans = attach
    out = {"forget": forget, "repeats": repeats}
    for name, d in (("evaluations", evals), ("data", data)):
        row = {}
        for i, clock in enumerate(("wall", "cpu")):
            before, after = median(x[i] for x in d["before"]), median(x[i] for x in d["after"])
            row |= {f"{clock}_before_s": before, f"{clock}_after_s": after, f"{clock}_ratio": after / before}
        out[name] = row
    return out
