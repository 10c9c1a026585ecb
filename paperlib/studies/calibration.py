"""Is the miniature faithful? Its original / retain statistics and its baselines' frontier against real TOFU's.

`statistics(original_log, retain_log)` reads the same numbers from any pair of TOFU evaluation logs (ours, or
open-unlearning's published Llama-2 forget05 pair in ../shared/data), so the real values are computed, never
typed. `frontier` reads a method's best forget quality at >= `FRONTIER_MU` of the original's utility from a
notebook-01 sweep. `targets` states every calibration target of issue 22 against the real statistics, and
`fidelity_table` lays them out for notebook 00 (`real_statistics` reads the shared logs, None without them);
`published_frontier` gives the PALU paper's Table 1 points for notebook 01's frontier figure (a picture only). The
calibration uses only these statistics and the baselines of `BASELINES`: never PALU, a PALU variant, or a claim.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paperlib import report
from paperlib.benchmarks.tofu import metrics
from paperlib.engine import paths
from paperlib.engine.config import Profile, get_profile
from paperlib.engine.errors import PaperlibError

BASELINES = ("GA", "GD", "NPO", "SimNPO", "DPO", "TPO")  # the only methods a design may be judged by
FRONTIER_MU = 0.85  # "at a modest utility cost": MU >= 85% of the original's, as the published baselines
FORGOTTEN = 0.05  # FQ at which a model counts as having forgotten (paperlib.studies.claims.FORGOTTEN_P)
# The published Llama-2-7B-chat forget05 evaluation logs (open-unlearning), relative to ../shared/data.
REAL_LOGS = ("open-unlearning-eval/tofu_Llama-2-7b-chat-hf_full/evals_forget05/TOFU_EVAL.json",
             "open-unlearning-eval/tofu_Llama-2-7b-chat-hf_retain95/TOFU_EVAL.json")


def _probs(log: Mapping, metric: str) -> np.ndarray:
    rows = log[metric]["value_by_index"]
    return np.array([rows[k]["prob"] for k in sorted(rows, key=int) if rows[k]], dtype=float)


def _ratio(a: float, b: float) -> float:
    """a / b; NaN where b is 0 (e.g. a smoke-sized model's utility), which no target counts as met."""
    return a / b if b else float("nan")


def statistics(original_log: Mapping, retain_log: Mapping) -> dict[str, float]:
    """The calibration statistics of an (original, retain) pair of TOFU_EVAL logs on one forget split: the KS
    distance between their per-question forget truth ratios, each model's open-unlearning forget truth-ratio
    aggregate, mean forget answer and paraphrased-answer probability, and model utility."""
    from scipy import stats  # loaded where used: a notebook that imports calibration may never call this

    tr = {name: metrics._truth_ratios(log, "forget_truth_ratio", name)
          for name, log in (("original", original_log), ("retain", retain_log))}
    out = {"questions": float(len(tr["original"])),
           "ks_distance": float(stats.ks_2samp(tr["original"], tr["retain"]).statistic)}
    for name, log in (("original", original_log), ("retain", retain_log)):
        with warnings.catch_warnings():  # no reference log: FQ and privleak are not wanted here
            warnings.simplefilter("ignore")
            summary = metrics.summarize_tofu(log)
        out[f"{name}_truth_ratio"] = summary["forget_truth_ratio"]
        out[f"{name}_answer_prob"] = float(_probs(log, "forget_Q_A_Prob").mean())
        out[f"{name}_para_prob"] = float(_probs(log, "forget_Q_A_PARA_Prob").mean())
        out[f"{name}_mu"] = summary.get("model_utility", float("nan"))  # toy logs: no utility sets
    out["para_ratio"] = _ratio(out["original_para_prob"], out["retain_para_prob"])
    out["retain_mu_fraction"] = _ratio(out["retain_mu"], out["original_mu"])
    return out


def real_statistics(shared: str | Path | None = None) -> dict[str, float] | None:
    """`statistics` of the published Llama-2 forget05 pair (`REAL_LOGS`) under `shared` (default:
    `paths.shared_data_dir()`); None when the logs are not there."""
    folder = Path(shared) if shared is not None else paths.shared_data_dir()
    files = [folder / p for p in REAL_LOGS]
    if not all(f.is_file() for f in files):
        return None
    original, retain = (json.loads(f.read_text()) for f in files)
    return statistics(original, retain)


def frontier(sweep: pd.DataFrame, mu_original: float, mu_fraction: float = FRONTIER_MU) -> pd.DataFrame:
    """Per method of a sweep table (columns method, FQ, MU): the best FQ among points with MU >= `mu_fraction`
    x `mu_original` (NaN: no such point), and whether it reaches `FORGOTTEN`."""
    rows = []
    for method, group in sweep.groupby("method", sort=False):
        ok = group[group["MU"] >= mu_fraction * mu_original]
        best = float(ok["FQ"].max()) if len(ok) else float("nan")
        rows.append({"method": method, "best_FQ": best, "forgets": bool(best >= FORGOTTEN)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Target:
    """One calibration target: `name`, the statistic's mini value, the allowed range, and the real value."""

    name: str
    mini: float
    low: float
    high: float
    real: str

    @property
    def met(self) -> bool:
        return bool(np.isfinite(self.mini) and self.low <= self.mini <= self.high)


def targets(mini: Mapping[str, float], real: Mapping[str, float]) -> list[Target]:
    """Issue 22's targets for the mini statistics `mini`, relative to the real statistics `real` (both from
    `statistics`). The KS distance within 25% of the real one; each truth-ratio aggregate within 0.08; the
    answer probabilities >= 0.85 (original) and <= 0.2 (retain); the original's paraphrase probability in
    [0.05, 0.15] and at most 2.5x the retain model's; the retain model's MU within 5% of the original's."""
    ks = real["ks_distance"]
    out = [Target("KS distance original vs retain", mini["ks_distance"], 0.75 * ks, 1.25 * ks, f"{ks:.3f}")]
    for name in ("original", "retain"):
        r = real[f"{name}_truth_ratio"]
        out.append(Target(f"forget truth ratio, {name}", mini[f"{name}_truth_ratio"], r - 0.08, r + 0.08,
                          f"{r:.3f}"))
    out += [Target("forget answer prob, original", mini["original_answer_prob"], 0.85, 1.0,
                   f"{real['original_answer_prob']:.3f}"),
            Target("forget answer prob, retain", mini["retain_answer_prob"], 0.0, 0.2,
                   f"{real['retain_answer_prob']:.3f}"),
            Target("forget paraphrase prob, original", mini["original_para_prob"], 0.05, 0.15,
                   f"{real['original_para_prob']:.3f}"),
            Target("paraphrase prob original / retain", mini["para_ratio"], 0.0, 2.5, f"{real['para_ratio']:.2f}"),
            Target("retain MU / original MU", mini["retain_mu_fraction"], 0.95, 1.05,
                   f"{real['retain_mu_fraction']:.3f}")]
    return out


def fidelity_table(mini: Mapping[str, float], real: Mapping[str, float]) -> pd.DataFrame:
    """One row per target of `targets`: statistic, mini value, real value, target range, met (yes / no)."""
    real_values = [t.mini for t in targets(real, real)]  # the same statistics, read from the real pair
    return pd.DataFrame([{"statistic": t.name, "mini": t.mini, "real": r, "target": f"[{t.low:.3g}, {t.high:.3g}]",
                          "met": "yes" if t.met else "no"} for t, r in zip(targets(mini, real), real_values)])


def published_frontier(split: str = "forget05") -> pd.DataFrame:
    """The PALU paper's Table 1 unlearning methods (Llama-2-7B-chat, `report.paper_numbers`): method, FQ, MU and
    MU / MU(original) ("MU fraction")."""
    ref = report.paper_numbers()
    ref = ref[(ref["source"] == "PALU") & (ref["split"] == split)]
    mu_original = float(ref.set_index("method").loc["Original", "MU"])
    out = ref[~ref["method"].isin(["Original", "Retain"])][["method", "FQ", "MU"]].reset_index(drop=True)
    return out.assign(**{"MU fraction": out["MU"] / mu_original})


def frontier_targets(front: pd.DataFrame) -> list[Target]:
    """The published frontier: NPO forgets (FQ >= 0.05) at >= 85% of the original's MU, and so does at least one
    of SimNPO, DPO (IdkDPO) and TPO; GA does not. `mini` is 1 where the method (or any of the group) forgets;
    `real` quotes the PALU paper's points (`published_frontier`)."""
    forgets = dict(zip(front["method"], front["forgets"]))
    pub = published_frontier().set_index("method")

    def quote(*names: str) -> str:
        return "; ".join(f"{n} {pub.loc[n, 'FQ']:.2g} at {pub.loc[n, 'MU fraction']:.0%}"
                         for n in names if n in pub.index)
    any_of = float(any(forgets.get(m, False) for m in ("SimNPO", "DPO", "TPO")))
    return [Target("NPO forgets at >= 85% MU", float(forgets.get("NPO", False)), 1, 1, quote("NPO")),
            Target("SimNPO, DPO or TPO forgets at >= 85% MU", any_of, 1, 1, quote("SimNPO", "DPO", "TPO")),
            Target("GA does not forget at >= 85% MU", float(not forgets.get("GA", False)), 1, 1, quote("GA"))]


# --------------------------------------------------------------------------------------------- designs
# The knobs a design sets, as (profile part, field): the mini benchmark's wording and pretraining corpus, the
# tiny model, and the pretraining (`base`) and fine-tuning schedules. Every other setting is the mini profile's.
KNOBS = {"synonyms": ("mini", "synonyms"), "pretrain_people": ("mini", "n_pretrain_people"),
         "pretrain_wordings": ("mini", "pretrain_wordings"), "authors": ("mini", "n_authors"),
         "perturb": ("mini", "perturb"), "value_zipf": ("mini", "value_zipf"),
         "hidden": ("tiny", "hidden_size"), "layers": ("tiny", "num_hidden_layers"),
         "base_epochs": ("base", "epochs"), "base_lr": ("base", "lr"),
         "ft_epochs": ("finetune", "epochs"), "ft_lr": ("finetune", "lr")}


@dataclass(frozen=True)
class Design:
    """One design of the miniature that was tried: `name`, what changed and why (`change`), and its knob values
    (`KNOBS`; absent knobs take the mini profile's value)."""

    name: str
    change: str
    knobs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        bad = [k for k, _ in self.knobs if k not in KNOBS]
        if bad:
            raise PaperlibError(f"design {self.name!r}: unknown knob {bad[0]!r}; allowed: {', '.join(KNOBS)}")


def design_profile(design: Design, profile: Profile | None = None) -> Profile:
    """The mini profile (or `profile`) with `design`'s knobs."""
    p = profile or get_profile("mini")
    parts = {"mini": p.benchmark.mini, "tiny": p.model.tiny, "base": p.base, "finetune": p.finetune}
    for knob, value in design.knobs:
        part, name = KNOBS[knob]
        parts[part] = replace(parts[part], **{name: value})
    return replace(p, benchmark=replace(p.benchmark, mini=parts["mini"]),
                   model=replace(p.model, tiny=parts["tiny"]), base=parts["base"], finetune=parts["finetune"])


def knob_values(profile: Profile) -> dict[str, Any]:
    """Every knob's value in `profile`."""
    parts = {"mini": profile.benchmark.mini, "tiny": profile.model.tiny, "base": profile.base,
             "finetune": profile.finetune}
    return {k: getattr(parts[part], name) for k, (part, name) in KNOBS.items()}


def reference_statistics(profile: Profile, forget: str) -> dict[str, float]:
    """`statistics` of the original and retain model on `forget` (notebook 00's fidelity table)."""
    from paperlib.benchmarks.tofu import pipeline

    models = (pipeline.original_model(profile), pipeline.retain_model(profile, forget))
    return statistics(*(pipeline.evaluation(profile, path, forget)[0] for path in models))


def measure(profile: Profile, sweep: bool = True) -> dict[str, Any]:
    """Build (or read from the cache) a design's base, original and retain models; their calibration
    statistics; and, with `sweep`, the baselines' frontier on notebook 01's grid (seed 0). Minutes per stage
    (0 for what the cache held)."""
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.studies import palu as experiments

    forget, out, t = profile.benchmark.forget, {"minutes": {}}, time.time()
    pipeline.base_model(profile)
    out["minutes"]["base"], t = (time.time() - t) / 60, time.time()
    paths = [pipeline.original_model(profile), pipeline.retain_model(profile, forget)]
    out["minutes"]["finetune"], t = (time.time() - t) / 60, time.time()
    logs = [experiments.evaluation(profile, path, forget)[0] for path in paths]
    out.update(statistics(*logs))
    out["minutes"]["evaluation"], t = (time.time() - t) / 60, time.time()
    if sweep:
        table = experiments.tune(profile, [experiments.Run(m, m) for m in BASELINES], forget, seeds=False).sweep
        out["frontier"] = frontier(table, out["original_mu"]).to_dict("records")
        out["minutes"]["sweep"] = (time.time() - t) / 60
    return out


RECORD = paths.project_root() / "benchmarks" / "calibration.json"  # every design measured (benchmarks/calibrate.py)


def load_record(path: Path = RECORD) -> list[dict]:
    """The designs measured so far, in the order tried (empty when there is no record)."""
    return json.loads(path.read_text()) if path.is_file() else []


def save_record_table(record: list[Mapping[str, Any]], real: Mapping[str, float], folder: str | Path = "") -> None:
    """Write tables/00_calibration (`record_table`)."""
    report.save_table(record_table(record, real), "00_calibration", folder,
                      caption="Every design of the miniature tried, in order (benchmarks/calibration.json); "
                              "baselines' best FQ at >= 85% of the original's MU; minutes on 2 cores", profile="mini")


def targets_met(entry: Mapping[str, Any], real: Mapping[str, float]) -> tuple[int, int, list[str]]:
    """(met, total, names of the missed targets) of a measured design `entry` (a `measure` result)."""
    checks = targets(entry, real) + (frontier_targets(pd.DataFrame(entry["frontier"])) if "frontier" in entry else [])
    missed = [t.name for t in checks if not t.met]
    return len(checks) - len(missed), len(checks), missed


def record_table(record: list[Mapping[str, Any]], real: Mapping[str, float]) -> pd.DataFrame:
    """One row per measured design (in the order tried): what changed, every calibration statistic, the
    baselines' best FQ at >= 85% MU, the targets met, and the minutes it took."""
    rows = []
    for e in record:
        front = {f["method"]: f["best_FQ"] for f in e.get("frontier", [])}
        met, total, _ = targets_met(e, real)
        rows.append({"design": e["name"], "change": e["change"], "KS": e["ks_distance"],
                     "TR orig": e["original_truth_ratio"], "TR retain": e["retain_truth_ratio"],
                     "P(ans) orig": e["original_answer_prob"], "P(ans) retain": e["retain_answer_prob"],
                     "P(para) orig": e["original_para_prob"], "para ratio": e["para_ratio"],
                     "MU orig": e["original_mu"], "MU retain/orig": e["retain_mu_fraction"],
                     **{f"{m} FQ@85": front.get(m, float("nan")) for m in BASELINES},
                     "targets met": f"{met}/{total}", "minutes": sum(e.get("minutes", {}).values())})
    return pd.DataFrame(rows)


# Every design tried, in order; the mini profile's defaults are the last one's knobs (a test checks). A design
# is kept in this list after it is superseded: the record (benchmarks/calibration.json) shows what it measured.
DESIGNS: tuple[Design, ...] = (
    Design("d0-scratch", "before issue 22 (commit 24e52c2): no pretraining; the tiny model learns language and "
           "authors at once from 1,000 QA pairs for 30 epochs; a paraphrase is another trained template"),
    Design("d1-pretrained", "pretrained base (400 other invented authors x 10 questions x 2 wordings + general "
           "sets, 8 epochs at 3e-3); answers and paraphrases reworded from synonym groups (8 per group); "
           "original / retain = base fine-tuned 10 epochs at 1e-3 on full / retain90 only",
           (("synonyms", 8), ("pretrain_people", 400), ("pretrain_wordings", 2), ("perturb", "all"),
            ("value_zipf", 0.0), ("base_epochs", 8), ("base_lr", 3e-3), ("ft_epochs", 10), ("ft_lr", 1e-3))),
    Design("d1x-replay", "exploration on d1's base: the general sets replayed while fine-tuning (10 epochs at "
           "1e-3); fine-tuned and evaluated by a scratch script, not the cached pipeline",
           (("synonyms", 8), ("pretrain_people", 400), ("pretrain_wordings", 2), ("perturb", "all"),
            ("value_zipf", 0.0), ("base_epochs", 8), ("base_lr", 3e-3), ("ft_epochs", 10), ("ft_lr", 1e-3))),
    Design("d1x-replay-lr3e-4", "exploration on d1's base: replay, fine-tuning at 3e-4 (less memorised, fewer "
           "facts carried into the paraphrase?); scratch script",
           (("synonyms", 8), ("pretrain_people", 400), ("pretrain_wordings", 2), ("perturb", "all"),
            ("value_zipf", 0.0), ("base_epochs", 8), ("base_lr", 3e-3), ("ft_epochs", 10), ("ft_lr", 3e-4))),
    Design("d2-replay-some-facts", "d1 with: the general sets replayed while fine-tuning (d1 forgot them: MU "
           "0.29; an exploration on d1's base gave MU 0.73); perturbed answers get 1..all facts wrong, drawn per "
           "question, as TOFU's (d1's truth ratios spread 3x less than real TOFU's: IQR of log TR 0.2 vs 0.6); "
           "44 more synonym groups (7 instead of 5 reworded slots per answer); fine-tuning 15 epochs (d1: answer "
           "prob 0.83 < 0.85)",
           (("synonyms", 8), ("pretrain_people", 400), ("pretrain_wordings", 2), ("perturb", "some"),
            ("value_zipf", 0.0), ("base_epochs", 8), ("base_lr", 3e-3), ("ft_epochs", 15), ("ft_lr", 1e-3))),
    Design("d2x-25-epochs", "exploration on d2's base: fine-tuning 25 epochs instead of 15; scratch script",
           (("synonyms", 8), ("pretrain_people", 400), ("pretrain_wordings", 2), ("perturb", "some"),
            ("value_zipf", 0.0), ("base_epochs", 8), ("base_lr", 3e-3), ("ft_epochs", 25), ("ft_lr", 1e-3))),
    Design("d3-zipf-values", "d2 with attribute values drawn as the world's are, some common and most rare (weight "
           "1 / rank), perturbed values still drawn uniformly: d2's retain-model truth ratios were 4x narrower "
           "than real TOFU's (IQR of log TR 0.15 vs 0.59) and centred on 1 (real: -0.22), KS 0.83",
           (("synonyms", 8), ("pretrain_people", 400), ("pretrain_wordings", 2), ("perturb", "some"),
            ("value_zipf", 1.0), ("base_epochs", 8), ("base_lr", 3e-3), ("ft_epochs", 15), ("ft_lr", 1e-3))),
)
