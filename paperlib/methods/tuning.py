"""How every method is tuned, stated before any result: one grid, one selection rule, one seed protocol.

- Paper profile: the papers' own schedule (methods.md, "Training defaults", with each method's
  deviations) and the papers' hyperparameters; the grid is that single learning rate and the selection
  takes the final epoch, so the same code reports the papers' setting.
- Tiny profiles (mini, smoke): every method and every RQ variant gets the same grid: `GRIDS[profile].lrs`
  (log-spaced) x every epoch up to `GRIDS[profile].epochs` (one run per learning rate, evaluated after
  each epoch). The reported point is `select`: the highest forget quality (FQ) whose model utility (MU)
  is at least `MU_FRACTION` (95%) of the original model's (loc-unlearn's MU95 rule); if no point
  qualifies, the highest MU, flagged. No per-method table of learning rates exists: the selection is
  recomputed from the sweep's results, which the notebooks write as committed tables.
- Seeds: the selected setting is re-run with `GRIDS[profile].seeds` unlearning seeds (the sweep itself is
  seed 0). The seed varies the data order and the random retain / IdK pairing; the original model (the
  initialisation of unlearning) is the same for every seed.
- Scale: hyperparameters that are sizes relative to the model keep the paper's proportion
  (`profile_hparams`): PALU's K is the paper's 5000/32000 share of the vocabulary, RMU's layer the same
  share of the depth, PDU's dual warm-up half of the epochs. Every other hyperparameter is the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from paperlib.engine.config import TrainConfig, get_profile

MU_FRACTION = 0.95  # a point qualifies when MU >= MU_FRACTION * MU(original) (loc-unlearn's MU95)

# Paper profile: methods.md "Training defaults" (lr 1e-5, 10 epochs, effective batch 32, weight decay 0.01,
# 1 warm-up epoch then linear decay, paged AdamW 32-bit on GPU), with the per-method deviations of the
# methods.md table.
PAPER_TRAIN = TrainConfig(lr=1e-5, epochs=10, batch_size=32, weight_decay=0.01, warmup_epochs=1.0,
                          schedule="linear", optimizer="paged_adamw_32bit")
# The one place of the paper profile's per-method changes: `train_config` and `grid(profile, method)` read it, so
# every run path (which takes its lr and epochs from the grid, `run_overrides`) trains with them.
PAPER_TRAIN_CHANGES: dict[str, dict[str, Any]] = {"UnDIAL": {"lr": 1e-4}, "WGA": {"epochs": 5}}
# Tiny profiles: the papers' schedule shape (weight decay 0.01, 1 warm-up epoch then linear decay) at the
# tiny model's scale of learning rates (it was fine-tuned at 3e-3; at 1e-5 it barely moves).
TINY_TRAIN = TrainConfig(lr=1e-3, epochs=4, batch_size=16, weight_decay=0.01, warmup_epochs=1.0,
                         schedule="linear")
PAPER_K, PAPER_V = 5000, 32000  # PALU's top-K of Llama-2's vocabulary
PAPER_RMU_LAYER, PAPER_LAYERS = 7, 32  # open-unlearning's RMU layer of Llama-2-7B


@dataclass(frozen=True)
class Grid:
    """The tuning grid of a profile: learning rates x epochs 1..epochs, and the seeds of the selected point."""

    lrs: tuple[float, ...]
    epochs: int
    seeds: tuple[int, ...] = (0, 1, 2)
    every_epoch: bool = True  # False: only the final epoch is a candidate (the papers' reporting)


GRIDS: dict[str, Grid] = {
    "mini": Grid(lrs=(1e-4, 3e-4, 1e-3, 3e-3), epochs=4),
    "smoke": Grid(lrs=(3e-3,), epochs=2, seeds=(0, 1)),  # a test-sized run of the same protocol
    "paper": Grid(lrs=(PAPER_TRAIN.lr,), epochs=PAPER_TRAIN.epochs, every_epoch=False),
}


def grid(profile: Any, method: str | None = None) -> Grid:
    """The tuning grid of `profile` (a Profile or its name) for `method`, with a Profile's own `tuning` changes
    (a profile file's, e.g. one seed for a test of the paper path on stand-ins). Paper profile: the method's
    own learning rate and epochs (`train_config`, i.e. PAPER_TRAIN with PAPER_TRAIN_CHANGES: UnDIAL lr 1e-4,
    WGA 5 epochs); tiny profiles: the same grid for every method."""
    name = getattr(profile, "name", profile)
    if name not in GRIDS:
        raise ValueError(f"profile {name!r} has no tuning grid; allowed: {', '.join(GRIDS)}")
    base = GRIDS[name]
    if name == "paper" and method is not None:
        own = train_config(name, method)
        base = replace(base, lrs=(own.lr,), epochs=own.epochs)
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in getattr(profile, "tuning", ())}
    return replace(base, **changes) if changes else base


def run_overrides(profile: Any, method: str, lr: float, seed: int = 0, stop_epoch: int = 0) -> dict[str, Any]:
    """The schedule settings of one tuning run of `method` (lr from the grid, the grid's epochs for `method`,
    the unlearning seed, an optional early stop): what every run path (TOFU, MUSE, RWKU, notebook 09 and 10)
    passes to `unlearn`, so the paper profile's per-method changes reach the training loop."""
    return {"lr": lr, "epochs": grid(profile, method).epochs, "seed": seed, "stop_epoch": stop_epoch}


def train_config(profile: Any, method: str) -> TrainConfig:
    """Unlearning TrainConfig of `method` in `profile` before tuning (paper: the papers' setting; tiny
    profiles: the common schedule, `lr` set by the grid)."""
    name = getattr(profile, "name", profile)
    if name == "paper":
        return replace(PAPER_TRAIN, **PAPER_TRAIN_CHANGES.get(method, {}))
    g = grid(name)
    return replace(TINY_TRAIN, epochs=g.epochs, batch_size=8 if name == "smoke" else TINY_TRAIN.batch_size)


def profile_hparams(profile: Any, method: str) -> dict[str, Any]:
    """Hyperparameters `profile` scales from the papers' defaults because the model is smaller (see the
    module docstring); {} for the paper profile."""
    if isinstance(profile, str):
        profile = get_profile(profile)
    name = profile.name
    if name == "paper":
        return {}
    tiny = profile.model.tiny
    if method == "PALU":
        return {"k": max(1, round(PAPER_K * tiny.vocab_size / PAPER_V))}
    if method == "RMU":
        layers = tiny.num_hidden_layers
        return {"layer": min(layers - 1, round(PAPER_RMU_LAYER * layers / PAPER_LAYERS))}
    if method == "PDU":
        return {"dual_warmup_epochs": grid(name).epochs / 2}
    return {}


# ----------------------------------------------------------------------------------------- selection
def candidates(sweep: pd.DataFrame, every_epoch: bool = True) -> pd.DataFrame:
    """The sweep points a selection may pick: completed runs, every epoch (or only each run's last)."""
    ok = sweep[(sweep["status"] == "completed") & sweep["FQ"].notna() & sweep["MU"].notna()]
    if not every_epoch:
        ok = ok[ok["epoch"] == ok.groupby("lr")["epoch"].transform("max")]
    return ok


def select(sweep: pd.DataFrame, mu_original: float, every_epoch: bool = True) -> pd.Series:
    """The reported point of one method's sweep (columns lr, epoch, FQ, MU, status): the highest FQ among
    points with MU >= MU_FRACTION * mu_original (ties: higher MU, then lower lr, earlier epoch); if none
    qualifies, the highest MU. The result carries `qualified` (bool) saying which case applied."""
    pool = candidates(sweep, every_epoch)
    if pool.empty:
        raise ValueError("no completed sweep point to select from (every run diverged or the sweep is empty)")
    ok = pool[pool["MU"] >= MU_FRACTION * mu_original]
    if len(ok):
        best = ok.sort_values(["FQ", "MU", "lr", "epoch"], ascending=[False, False, True, True]).iloc[0]
    else:
        best = pool.sort_values(["MU", "FQ", "lr", "epoch"], ascending=[False, False, True, True]).iloc[0]
    return pd.concat([best, pd.Series({"qualified": bool(len(ok))})])


def mean_std(values: pd.Series) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def keeps_utility(mu_values: Any, mu_reference: float) -> bool:
    """The MU95 flag of a reported point: the mean over its completed seeds of MU (NaN left out) is at least
    MU_FRACTION x `mu_reference` (False when no seed completed). The selection looks at seed 0 (the sweep); the
    flag a table prints and a claim reads is this seed mean."""
    mean, _ = mean_std(pd.Series(mu_values, dtype=float))
    return bool(mean >= MU_FRACTION * mu_reference)


def describe(profile: Any) -> str:
    """The protocol of `profile` in one paragraph (printed by the notebooks before any result)."""
    name = getattr(profile, "name", profile)
    g = grid(name)
    if not g.every_epoch:
        changes = "; ".join(f"{m}: " + ", ".join(f"{k} {v:g}" for k, v in c.items())
                            for m, c in PAPER_TRAIN_CHANGES.items())
        return (f"{name}: the papers' own settings (lr {', '.join(f'{lr:g}' for lr in g.lrs)}, {g.epochs} epochs, "
                f"the final epoch reported; per method: {changes}), seeds {list(g.seeds)}.")
    return (f"{name}: every method and variant sweeps lr in {{{', '.join(f'{lr:g}' for lr in g.lrs)}}} for {g.epochs} "
            f"epochs, evaluated after each; reported point = highest FQ with MU >= {MU_FRACTION:.0%} of the "
            f"original model's MU (else the highest MU, flagged MU95 = no); that lr and epoch re-run with seeds "
            f"{list(g.seeds)} (the seed changes the data order and the retain / IdK pairing; the original model "
            f"is the same); tables show mean ± sd over the seeds.")
