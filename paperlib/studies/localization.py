"""Localized unlearning ("Does Localization Inform Unlearning?"): the oracle pipeline, FS / RS, AUES, MU95.

Oracle experiment (methods.md, loc-unlearn): start from the retain model (it never saw the forget authors),
inject the forget set through a random `ratio` (10%) mask of the MLP down_proj weights
(`paperlib.studies.injection.injected_model`: NLL on the forget answers + `retain_weight` x NLL on a paired, seeded
random retain sample as the retain regulariser, re-exported here; its training budget is the smallest of a
fixed grid whose injected model reaches the original model's forget-set FS at MU >= 95% of the retain
model's, else the largest, flagged: `studies.injection.select_budget`), then unlearn the injected model with that
same mask ("oracle") vs its random complement ("complement": as many down_proj weights, disjoint from it,
same seed), under NPO, WGA, DPO (IdK) and RMU (the "oracle" part of `study`).
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

import pickle
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from paperlib.benchmarks.tofu import metrics
from paperlib.engine import executors
from paperlib.engine.config import Profile
from paperlib.engine.errors import PaperlibError
from paperlib.methods import masks, tuning
from paperlib.studies import protocol
from paperlib.studies.injection import (  # noqa: F401
    budgets,
    describe_selection,
    inject_selection,
    inject_train_config,
    injected_model,
    oracle_mask,
    oracle_mask_config,
    select_budget,
)

ORACLE_METHODS = ("NPO", "WGA", "DPO", "RMU")
ORACLE_MASKS = ("oracle", "complement")
RETAIN_ES = "retain_extraction_strength"


# ----------------------------------------------------------------------------------------- strengths
def strengths(summary: dict[str, float]) -> dict[str, float]:
    """FS and RS from one evaluation summary (NaN RS when it lacks `retain_extraction_strength`)."""
    if "extraction_strength" not in summary:
        raise PaperlibError("summary has no extraction_strength (forget-set ES); allowed: a TOFU summary")
    return {"FS": 1.0 - float(summary["extraction_strength"]), "RS": float(summary.get(RETAIN_ES, np.nan))}


@torch.no_grad()
def model_strengths(model, tokenizer, profile: Profile, forget: str = "forget10") -> dict[str, float]:
    """FS and RS of a model, from one teacher-forced pass over the forget split and one over
    `retain_perturbed` (`paperlib.benchmarks.tofu.evaluate.teacher_forced(full=True)`, the evaluation's ES)."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import evaluate, pipeline

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
    from paperlib.engine.models import load_model, load_tokenizer
    from paperlib.studies.palu import evaluation  # quiet about the retain model's own evaluation

    _, summary = evaluation(profile, model_path, forget)
    point = strengths(summary)
    if np.isnan(point["RS"]):
        point = model_strengths(load_model(model_path), load_tokenizer(model_path), profile, forget)
    return {"epoch": 0, "FQ": summary.get("forget_quality", np.nan), "MU": summary["model_utility"], **point}


def run_points(run: str | Path) -> list[dict[str, Any]]:
    """One row per evaluated epoch of a run folder: epoch, FQ, MU, FS, RS, status."""
    from paperlib.engine.unlearn import read_run

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
                                f"RS; the epoch summaries need {RETAIN_ES} (see paperlib.studies.localization)")
        mu0 = mu_initial if mu_initial is not None else float(g.loc[g["epoch"] == 0, "MU"].iloc[0])
        rows.append({**dict(zip(by, np.atleast_1d(key))), "AUES": metrics.aues(done["FS"], done["RS"], close),
                     **mu95(done, mu0), "points": len(done)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- notebook 09
COMPARED_MASKS = ("random", "random_down", "activation", "wagle", "memflex")
LOCALIZED = ("activation", "wagle", "memflex")  # attribution masks, each compared with "random"
PARTS = ("masks", "oracle")
STUDY = "loc-study"  # cache kind of `study` (its code: paperlib.engine.cache.CODE)
STUDY_FILE = "study.pkl"


@dataclass(frozen=True)
class Scale:
    """What notebook 09 runs in one profile, fixed before any result (the notebook prints it)."""

    losses: tuple[str, ...]  # losses of the mask comparison (masks made on the original model)
    masks: tuple[str, ...]  # attributions compared, at `ratio`, global top, mask seed 0
    seed_masks: tuple[str, ...]  # masks whose selected point is re-run with every seed of the grid
    oracle_losses: tuple[str, ...]  # losses of the oracle experiment (oracle and complement, every seed)
    ratio: float = 0.1


SCALES: dict[str, Scale] = {
    "paper": Scale(ORACLE_METHODS, COMPARED_MASKS, COMPARED_MASKS, ORACLE_METHODS),
    # mini: 4 lrs x (5 masks + oracle + complement) = 28 runs, plus 2 seeds x 4 arms = 8 runs, ~17 s each
    "mini": Scale(("NPO",), COMPARED_MASKS, ("random", "wagle"), ("NPO",)),
    "smoke": Scale(("NPO",), ("random", "activation"), (), ("NPO",)),  # a test: 2 + 2 x 2 runs of the smoke grid
}


def scale(profile: Profile) -> Scale:
    """The notebook-09 scale of `profile` (`SCALES`)."""
    if profile.name not in SCALES:
        raise PaperlibError(f"profile {profile.name!r} has no notebook-09 scale; allowed: {', '.join(SCALES)}")
    return SCALES[profile.name]


def describe_scale(profile: Profile, forget: str) -> str:
    """The scale of `profile` in one paragraph."""
    s, g = scale(profile), tuning.grid(profile)
    return (f"{profile.name}: {forget}, masks keep the top {s.ratio:.0%} (global); mask comparison: "
            f"{', '.join(s.masks)} under {', '.join(s.losses)} (masks made on the original model), seeds "
            f"{list(g.seeds)} for {', '.join(s.seed_masks)}, seed 0 for the others; oracle: "
            f"{', '.join(ORACLE_MASKS)} under {', '.join(s.oracle_losses)}, every seed; each (loss, mask) tuned "
            f"by the project's rule over lr {{{', '.join(f'{lr:g}' for lr in g.lrs)}}} x {g.epochs} epochs, "
            "with MU >= 95% of the initial model's MU (the original model, or the injected one for the oracle). "
            f"Injection budget (fixed before any unlearning result): the first of {len(budgets(profile))} "
            "schedules (smallest first: "
            + "; ".join(", ".join(f"{k} {v:g}" for k, v in c.items()) or "fine-tuning schedule"
                        for c in budgets(profile))
            + ") whose injected model has FS <= the original model's FS on the forget set at MU >= 95% of the "
            "retain model's MU; if none, the largest (flagged).")


@dataclass(frozen=True)
class Arm:
    """One (loss, mask) configuration: unlearning `model` with `loss`, only `mask`'s weights changing."""

    part: str  # "masks" or "oracle"
    loss: str
    mask_name: str
    model: str
    seeds: bool  # re-run the selected point with every seed of the grid
    mask: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.loss} · {self.mask_name}"

    @property
    def method(self) -> str:
        """The method whose lr grid the arm sweeps (`protocol`)."""
        return self.loss


def arms(profile: Profile, forget: str, part: str) -> list[Arm]:
    """The arms of one part of notebook 09 (`PARTS`) at the profile's scale (masks computed here; the
    oracle's injected model is cached)."""
    from paperlib.benchmarks.tofu import pipeline

    s = scale(profile)
    if part == "masks":
        made = {m: masks.mask_for(profile, masks.MaskConfig(attribution=m, ratio=s.ratio), forget)[0]
                for m in s.masks}
        model = pipeline.original_model(profile)
        return [Arm(part, loss, m, model, m in s.seed_masks, made[m]) for loss in s.losses for m in s.masks]
    if part == "oracle":
        model = injected_model(profile, forget, s.ratio)
        made = {"oracle": oracle_mask(profile, forget, s.ratio),
                "complement": oracle_mask(profile, forget, s.ratio, complement=True)}
        return [Arm(part, loss, m, model, True, made[m]) for loss in s.oracle_losses for m in ORACLE_MASKS]
    raise PaperlibError(f"notebook-09 part {part!r}; allowed: {', '.join(PARTS)}")


def _request(profile: Profile, forget: str, arm: Arm, point: protocol.Point) -> executors.Request:
    """The planned run of `arm` at `point`: its loss from its model, only its mask's weights changing, evaluated
    after every epoch (the curves), no weights kept."""
    return executors.Request(profile, arm.loss, forget, tuning.run_overrides(profile, arm.loss, point.lr, point.seed),
                             model=arm.model, mask=arm.mask)


def _rows(arm: Arm, point: protocol.Point, info: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluated epoch (FQ, MU, FS, RS) and, for a diverged run, a row with status "diverged"."""
    base = {"label": arm.label, "part": arm.part, "loss": arm.loss, "mask": arm.mask_name, "lr": point.lr,
            "seed": point.seed}
    return protocol.epoch_rows(info, base, lambda e: {"FQ": e.get("forget_quality", np.nan), "MU": e["model_utility"],
                                                      **strengths(e)})


@dataclass
class Study:
    """One part of notebook 09: the sweep (seed 0, every lr), the selected points, the seed curves at each
    selected lr (epoch 0 = the initial model), and the initial model's point."""

    sweep: pd.DataFrame
    selected: pd.DataFrame
    curves: pd.DataFrame
    initial: dict[str, float]

    def table(self) -> pd.DataFrame:
        """AUES and MU95 per arm: mean and sd over the seeds (`strength_table`)."""
        return strength_table(self.curves, self.selected, self.sweep, self.initial)


def study_config(profile: Profile, forget: str, part: str, lrs: dict[str, float] | None = None) -> dict[str, Any]:
    """The cache key's config of `study`: the profile (benchmark, models, grids, method settings), the split, the
    part, the original and retain models by content (the injected model and every run derive from these and
    from the code, which the key's fingerprint covers) and, with no sweep (`redraw`), each arm's given lr."""
    from paperlib.benchmarks.tofu import pipeline

    return {"profile": profile, "forget": forget, "part": part,
            "original": pipeline.stored_model_identity(pipeline.original_model(profile)),
            "retain": pipeline.stored_model_identity(pipeline.retain_model(profile, forget)),
            **({"lrs": lrs} if lrs is not None else {})}


def _write_study(s: Study, out: Path) -> None:
    with open(out / STUDY_FILE, "wb") as f:  # pickle: the frames come back with their dtypes and index, bit for bit
        pickle.dump({"sweep": s.sweep, "selected": s.selected, "curves": s.curves, "initial": s.initial}, f,
                    protocol=pickle.HIGHEST_PROTOCOL)


def read_study(folder: str | Path) -> Study:
    """The `Study` stored in a cache folder of kind STUDY."""
    with open(Path(folder) / STUDY_FILE, "rb") as f:
        return Study(**pickle.load(f))


def study(profile: Profile, forget: str, part: str, force: bool = False,
          selected: pd.DataFrame | None = None) -> Study:
    """`compute_study`, cached (kind STUDY, keyed by `study_config`): a warm notebook reads it back instead of
    recomputing the masks and re-reading every run. An entry another pandas cannot read is rebuilt."""
    from paperlib.engine.cache import cached_run

    lrs = None if selected is None else {str(k): float(v) for k, v in zip(selected["label"], selected["lr"])}
    config = study_config(profile, forget, part, lrs)

    def build(out: Path) -> None:
        _write_study(compute_study(profile, forget, part, selected), out)

    try:
        return read_study(cached_run(STUDY, config, build, force=force))
    except (pickle.UnpicklingError, AttributeError, ImportError, TypeError):
        return read_study(cached_run(STUDY, config, build, force=True))


def compute_study(profile: Profile, forget: str, part: str, selected: pd.DataFrame | None = None) -> Study:
    """Sweep every arm of `part` over the tuning grid (seed 0), select each arm's point by the project's rule
    against the initial model's MU, then run every seed of the grid at that lr for the arms with seeds (all
    epochs, evaluated after each; seed 0 is the sweep's own run). With `selected` (another study's selected
    points: `redraw`) there is no sweep: seed 0 runs at that lr too. Every run is cached."""
    todo = arms(profile, forget, part)
    initial = initial_point(profile, todo[0].model, forget)
    request = partial(_request, profile, forget)
    if selected is None:
        sweep = pd.DataFrame(protocol.sweep(profile, todo, request, _rows, every_epoch=True))
        selected = pd.DataFrame([{"label": label, **best[["lr", "epoch", "qualified"]]}
                                 for label, best in protocol.select(profile, sweep, "label", initial["MU"])])
    else:
        sweep = pd.DataFrame()
    lrs = selected.set_index("label")["lr"]

    def point(arm: Arm, seed: int) -> protocol.Point | None:
        runs = (seed == 0 and sweep.empty) or (seed != 0 and arm.seeds)
        return protocol.Point(float(lrs[arm.label]), seed) if runs else None

    def reuse(arm: Arm, seed: int) -> list[dict] | None:
        if seed != 0 or sweep.empty:
            return None
        return sweep[(sweep["label"] == arm.label) & (sweep["lr"] == float(lrs[arm.label]))].to_dict("records")

    curves = pd.DataFrame(protocol.seed_runs(profile, todo, point, request, _rows, reuse))
    starts = curves[["label", "part", "loss", "mask", "lr", "seed"]].drop_duplicates()
    curves = pd.concat([starts.assign(**initial, status="initial"), curves], ignore_index=True)
    return Study(sweep, selected, curves.sort_values(["label", "seed", "epoch"], kind="stable"), initial)


def strength_table(curves: pd.DataFrame, selected: pd.DataFrame, sweep: pd.DataFrame,
                   initial: dict[str, float]) -> pd.DataFrame:
    """Per arm: the selected lr and epoch, MU95 (the mean over seeds of MU at that lr and epoch keeps 95% of the
    initial model's, `tuning.keeps_utility`: yes / no), seeds completed / run; mean and sd over
    the seeds of AUES (`metrics.aues` of the initial point and every epoch of that seed's run at the selected
    lr), "MU95 FQ" and "MU95 FS" (`mu95` of the same points against the initial model's MU); "AUES all lrs":
    the seed-0 AUES pooled over every learning rate of the sweep (the upper envelope, `summarize`)."""
    from paperlib.report import SPREAD

    chosen = selected.set_index("label")
    pooled = None
    if not sweep.empty:  # no sweep (`redraw`): no pooled AUES
        pooled = pd.concat([sweep, sweep[["label"]].drop_duplicates().assign(**initial, status="initial")])
        pooled = summarize(pooled, by=("label",), mu_initial=initial["MU"]).set_index("label")["AUES"]
    rows = []
    for label, part in curves.groupby("label", sort=False):
        per_seed = []
        for _, pts in part.groupby("seed"):
            done = pts[pts["status"].isin(["completed", "initial"])]
            diverged = (pts["status"] == "diverged").any()
            per_seed.append({"ok": not diverged, "AUES": metrics.aues(done["FS"], done["RS"]),
                             **mu95(done, initial["MU"])})
        ok = pd.DataFrame([p for p in per_seed if p["ok"]])
        first, epoch = part.iloc[0], int(chosen.loc[label, "epoch"])
        at = part[(part["epoch"] == epoch) & (part["status"] == "completed")]["MU"]  # every seed's selected point
        row = {"label": label, "part": first["part"], "loss": first["loss"], "mask": first["mask"],
               "lr": chosen.loc[label, "lr"], "epoch": epoch, "MU95": "yes" if tuning.keeps_utility(at, initial["MU"])
               else "no", "seeds": f"{len(ok)}/{len(per_seed)}"}
        for col in ("AUES", "MU95_FQ", "MU95_FS"):
            name = col.replace("_", " ")  # "MU95 FQ": the best FQ at MU >= 95% of the initial model's
            row[name], row[f"{name}{SPREAD}"] = tuning.mean_std(ok[col]) if len(ok) else (np.nan, np.nan)
        if pooled is not None:
            row["AUES all lrs"] = float(pooled[label])
        rows.append(row)
    return pd.DataFrame(rows)


def redraw(profile: Profile, forget: str, part: str, first: Study) -> Study | None:
    """The arms of `part` on the second draw of the models (`experiments.second_draw`: original and retain
    trained from another seed; its own masks, injection and initial point), each at `first`'s selected lr and
    epoch (no new sweep, so no "AUES all lrs") with every seed of the grid for the arms with seeds and seed 0 for
    the others; None where the models are given (the paper profiles)."""
    from paperlib.studies.palu import second_draw

    other = second_draw(profile)
    return None if other is None else study(other, forget, part, selected=first.selected)


def combined_table(*studies: Study) -> pd.DataFrame:
    """The tables of several studies, one below the other (notebook 09's `tables/09_aues_mu95`)."""
    return pd.concat([s.table() for s in studies], ignore_index=True).drop(columns="label")


def _planned_model(profile: Profile, stage: str) -> str:
    """The published checkpoint of `stage` ("original" or e.g. "retain95"), or what the pipeline fine-tunes."""
    published = profile.model.original if stage == "original" else profile.model.retain.format(retain=stage)
    return published or f"{profile.model.base} fine-tuned on TOFU ({stage})"


def plan(profile: Profile) -> list[dict[str, Any]]:
    """Notebook 09's runs in `profile` from its settings alone (the dry run): the original / retain fine-tuning
    when the model has no published TOFU checkpoints (e.g. OLMo-2), the injection, then per arm one run per
    learning rate of the grid and one per further seed for the arms with seeds, every epoch evaluated in both,
    and (tiny models) those seeds and seed 0 at the selected lr on the second draw's models (`redraw`; masks are
    computed on the fly: not listed)."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.engine import unlearn
    from paperlib.studies import palu as experiments

    s, forget = scale(profile), profile.benchmark.forget
    tofu.check_split(forget, tofu.FORGET_SPLITS)
    n, retain = experiments._forget_size(profile, forget), tofu.retain_of(forget)
    out = [{"model": profile.model.base, "method": "finetune", "hyperparameters": {"stage": stage},
            "n_examples": n * 100 // int(forget[-2:]) - (n if stage == retain else 0),
            "epochs": profile.finetune.epochs} for stage in ("original", retain)
           if not (profile.model.original if stage == "original" else profile.model.retain)]
    out.append({"model": _planned_model(profile, retain), "method": "inject", "n_examples": n, "passes": 2,
                "hyperparameters": {"mask": f"random_down {s.ratio}", "budgets": len(budgets(profile))},
                "epochs": profile.finetune.epochs})
    injected = f"{_planned_model(profile, retain)} + forget set in {s.ratio:.0%} of down_proj"
    arms_ = [(_planned_model(profile, "original"), loss, m, m in s.seed_masks) for loss in s.losses for m in s.masks]
    arms_ += [(injected, loss, m, True) for loss in s.oracle_losses for m in ORACLE_MASKS]
    for model, loss, mask, seeds in arms_:
        needs, own = unlearn.resolve(profile, loss)[0].needs(), tuning.grid(profile, loss)
        common = {"model": model, "method": loss, "n_examples": n, "epochs": own.epochs,
                  "passes": 2 if needs.retain else 1, "reference": bool(needs.ref)}
        draw = ((f"{model} (draw {experiments.DRAW_SEED})", experiments.DRAW_SEED)  # `redraw`: the selected lr
                if experiments.second_draw(profile) is not None else None)     # on the second draw's models
        out += protocol.plan_rows(profile, loss, common, {"mask": mask}, seeds,
                                  seed_evals=own.epochs if own.every_epoch else 1, draw=draw)
    return out
