"""Localized unlearning ("Does Localization Inform Unlearning?"): the oracle pipeline, FS / RS, AUES, MU95.

Oracle experiment (methods.md, loc-unlearn): start from the retain model (it never saw the forget authors),
inject the forget set through a random `ratio` (10%) mask of the MLP down_proj weights
(`paperlib.injection.injected_model`: NLL on the forget answers + `retain_weight` x NLL on a paired, seeded
random retain sample as the retain regulariser, re-exported here), then unlearn the injected model with that
same mask ("oracle") vs its random complement ("complement": as many down_proj weights, disjoint from it,
same seed), under NPO, WGA, DPO (IdK) and RMU (`oracle_runs`).
The finding to reproduce: the oracle mask does no better than the complement.

Strengths (metrics.md): FS = 1 - mean extraction strength (ES) on the forget set; RS = mean ES on the retain
set (TOFU's `retain_perturbed` questions and answers, the set behind `retain_Q_A_Prob`). A run's epoch
summaries carry the forget ES (`extraction_strength`); the retain ES is read from `retain_extraction_strength`
when the evaluation writes it, else `model_strengths` computes both from a model (one teacher-forced pass each).

AUES = `metrics.aues` over the initial model's point and every evaluated epoch of every run of one
method / mask, pooled over learning rates by the upper envelope (see its docstring). MU95 (`mu95`): among the
same points, those with MU >= `tuning.MU_FRACTION` (95%) of the initial model's MU: the highest FQ (with
`tuning.select`'s tie rule) and, separately, the highest FS. The initial model (epoch 0) is a candidate, so
MU95 is always defined: no forgetting at all when no epoch keeps 95% of the utility.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from paperlib import metrics, tuning
from paperlib.config import Profile
from paperlib.errors import PaperlibError
from paperlib.injection import inject_train_config, injected_model, oracle_mask, oracle_mask_config  # noqa: F401

ORACLE_METHODS = ("NPO", "WGA", "DPO", "RMU")
ORACLE_MASKS = ("oracle", "complement")
RETAIN_ES = "retain_extraction_strength"


# ----------------------------------------------------------------------------------------- oracle
def oracle_runs(profile: Profile, forget: str = "forget10", methods: Sequence[str] = ORACLE_METHODS,
                lrs: Sequence[float] | None = None, seeds: Sequence[int] = (0,), ratio: float = 0.1,
                mask_seed: int = 0, overrides: dict[str, Any] | None = None, retain_weight: float = 1.0,
                inject_changes: dict[str, Any] | None = None, progress: bool = False) -> pd.DataFrame:
    """Unlearn the injected model with the oracle mask and its complement: one row per (method, mask, lr,
    seed) with the run folder (`paperlib.unlearn.unlearn`, cached; evaluated every epoch; no weights kept).
    `lrs`: default the profile's tuning grid; `seeds`: unlearning seeds (`seed` of TrainConfig)."""
    from paperlib.unlearn import unlearn

    injected = injected_model(profile, forget, ratio, mask_seed, retain_weight, inject_changes)
    which = {"oracle": oracle_mask(profile, forget, ratio, mask_seed),
             "complement": oracle_mask(profile, forget, ratio, mask_seed, complement=True)}
    rows = []
    for method in methods:
        for name, mask in which.items():
            for lr in lrs or tuning.grid(profile).lrs:
                for seed in seeds:
                    run = unlearn(profile, method, forget, {**(overrides or {}), "lr": lr, "seed": seed},
                                  model_path=injected, update_mask=mask, save_model=False, progress=progress)
                    rows.append({"method": method, "mask": name, "lr": lr, "seed": seed, "run": str(run)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- strengths
def strengths(summary: dict[str, float]) -> dict[str, float]:
    """FS and RS from one evaluation summary (NaN RS when it lacks `retain_extraction_strength`)."""
    if "extraction_strength" not in summary:
        raise PaperlibError("summary has no extraction_strength (forget-set ES); allowed: a TOFU summary")
    return {"FS": 1.0 - float(summary["extraction_strength"]), "RS": float(summary.get(RETAIN_ES, np.nan))}


@torch.no_grad()
def model_strengths(model, tokenizer, profile: Profile, forget: str = "forget10") -> dict[str, float]:
    """FS and RS of a model, from one teacher-forced pass over the forget split and one over
    `retain_perturbed` (`paperlib.evaluate.teacher_forced(full=True)`, the evaluation's ES)."""
    from paperlib import evaluate, pipeline
    from paperlib.data import tofu

    source = pipeline.benchmark_source(profile)
    out = {}
    for key, split in (("FS", forget), ("RS", "retain_perturbed")):
        ds = tofu.load_split(source, split)
        es = evaluate.teacher_forced(model, tokenizer, profile.model.template, list(zip(ds["question"], ds["answer"])),
                                     profile.eval.batch_size, profile.eval.max_length, full=True)["es"]
        out[key] = float(np.mean(es)) if key == "RS" else 1.0 - float(np.mean(es))
    return out


def initial_point(profile: Profile, model_path: str, forget: str = "forget10") -> dict[str, float]:
    """Epoch 0 of every curve: FQ, MU (the cached evaluation) and FS, RS of the model runs start from."""
    from paperlib import pipeline
    from paperlib.models import load_model, load_tokenizer

    _, summary = pipeline.evaluation(profile, model_path, forget)
    point = strengths(summary)
    if np.isnan(point["RS"]):
        point = model_strengths(load_model(model_path), load_tokenizer(model_path), profile, forget)
    return {"epoch": 0, "FQ": summary.get("forget_quality", np.nan), "MU": summary["model_utility"], **point}


def run_points(run: str | Path) -> list[dict[str, Any]]:
    """One row per evaluated epoch of a run folder: epoch, FQ, MU, FS, RS, status."""
    from paperlib.unlearn import read_run

    r = read_run(run)
    status = r["status"]["status"]
    return [{"epoch": e["epoch"], "FQ": e.get("forget_quality", np.nan), "MU": e["model_utility"],
             **strengths(e), "status": status} for e in r["epochs"]]


def curve_table(runs: pd.DataFrame, initial: dict[str, float]) -> pd.DataFrame:
    """Every point of every run of `runs` (columns: the run's labels, e.g. method, mask, lr, seed, and `run`,
    a folder) plus, per run, the initial model's point as epoch 0 (status "initial")."""
    rows = []
    for _, r in runs.iterrows():
        labels = {k: v for k, v in r.items() if k != "run"}
        rows.append({**labels, **initial, "status": "initial"})
        rows += [{**labels, **p} for p in run_points(r["run"])]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- AUES, MU95
def mu95(points: pd.DataFrame, mu_initial: float) -> dict[str, Any]:
    """MU95 of one method / mask's points (columns lr, epoch, FQ, MU, FS, status; the initial model as a
    completed or "initial" epoch-0 row): `tuning.select`'s point (the highest FQ with MU >= MU_FRACTION x
    `mu_initial`) and the highest FS among the points that qualify. NaN when none qualifies."""
    pts = points.assign(status=points["status"].replace("initial", "completed"))
    ok = tuning.candidates(pts)
    ok = ok[ok["MU"] >= tuning.MU_FRACTION * mu_initial]
    if ok.empty:
        return {"MU95_FQ": np.nan, "MU95_FS": np.nan, "MU95_lr": np.nan, "MU95_epoch": np.nan}
    best = tuning.select(ok, mu_initial)
    return {"MU95_FQ": float(best["FQ"]), "MU95_FS": float(ok["FS"].max()), "MU95_lr": best["lr"],
            "MU95_epoch": int(best["epoch"])}


def summarize(table: pd.DataFrame, by: Iterable[str] = ("method", "mask"), mu_initial: float | None = None,
              close: str = "drop") -> pd.DataFrame:
    """AUES and MU95 per group of `curve_table` rows (pooled over the learning rates, and over seeds unless
    `by` holds "seed": put "seed" in `by` for a spread over seeds). `mu_initial`: default the epoch-0 MU."""
    by = list(by)
    rows = []
    for key, g in table.groupby(by, sort=False):
        done = g[g["status"].isin(["completed", "initial"])]
        if done.empty or done[["FS", "RS"]].isna().any().any():
            raise PaperlibError(f"{dict(zip(by, np.atleast_1d(key)))}: no completed point, or points without FS / "
                                f"RS; the epoch summaries need {RETAIN_ES} (see paperlib.localization)")
        mu0 = mu_initial if mu_initial is not None else float(g.loc[g["epoch"] == 0, "MU"].iloc[0])
        rows.append({**dict(zip(by, np.atleast_1d(key))), "AUES": metrics.aues(done["FS"], done["RS"], close),
                     **mu95(done, mu0), "points": len(done)})
    return pd.DataFrame(rows)
