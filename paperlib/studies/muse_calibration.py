"""Is mini-MUSE faithful? Its target / retrained statistics and its baselines' sweep against real MUSE's.

`statistics(sanity, sweep, n_questions)` reads issue 23's statistics from notebook 11's tables (`muse.sanity`,
the sweep of `studies.muse.tune`); `targets` states every target against `REAL` (open-unlearning's
reproduction of MUSE News and Books, the numbers of ../shared/spec/benchmarks.md; a test reads them back from
there); `fidelity_table` lays them out for notebook 11. `DESIGNS` lists every design of the miniature tried, in
order; `measure` builds one (`make calibrate-muse DESIGN=<name>`) into `RECORD`. A design is judged by these
statistics and the baselines of `BASELINES` only: never PALU, a PALU variant or a claim.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from paperlib import report
from paperlib.engine import paths
from paperlib.engine.config import TrainConfig
from paperlib.engine.errors import PaperlibError
from paperlib.studies.calibration import Target

BASELINES = ("GA", "GD", "NPO")  # the only methods a design may be judged by (issue 23: "NPO or GA/GD")
# Real MUSE, x 100 (open-unlearning's reproduction, docs/repro.md; ../shared/spec/benchmarks.md)
REAL = {"News": {"target": {"KnowMem-f": 64, "VerbMem": 58, "PrivLeak": -99.8, "KnowMem-r": 56},
                 "retrained": {"KnowMem-f": 33, "VerbMem": 20, "PrivLeak": 0, "KnowMem-r": 56}},
        "Books": {"target": {"KnowMem-f": 47, "VerbMem": 100, "PrivLeak": -57.3, "KnowMem-r": 69},
                  "retrained": {"KnowMem-f": 30, "VerbMem": 14, "PrivLeak": 0, "KnowMem-r": 69}}}
RATIO_SLACK = 0.15  # a retrained / target ratio counts as met within 0.15 of the real range (News .. Books)
RETAIN_TOLERANCE = 0.10  # KnowMem-retain of target and retrained within 10% of each other
PRIVLEAK_TARGET = -50.0  # the target's PrivLeak below this
PRIVLEAK_RETRAINED = 5.0  # |the retrained model's PrivLeak| at most this
QUESTION_POINTS = 2.0  # one KnowMem-retain question moves the score by at most this many points
KEEP_RETAIN = 0.90  # a baseline's point counts when it keeps this share of the target's KnowMem-retain


def real_statistics() -> dict[str, dict[str, float]]:
    """Per real corpus: retrained / target ratios of KnowMem-forget, VerbMem and KnowMem-retain."""
    return {name: {f"{col} ratio": m["retrained"][col] / m["target"][col]
                   for col in ("KnowMem-f", "VerbMem", "KnowMem-r")} | {"target PrivLeak": m["target"]["PrivLeak"]}
            for name, m in REAL.items()}


def statistics(sanity: pd.DataFrame, sweep: pd.DataFrame | None, n_questions: int) -> dict[str, Any]:
    """Issue 23's statistics: retrained / target ratios, the PrivLeaks, the points one KnowMem-retain question
    is worth (`n_questions` asked), and per baseline of a sweep (`paperlib.studies.muse.tune`'s rows) whether a
    point moves VerbMem or KnowMem-forget below the target's 95% CI while keeping `KEEP_RETAIN` of its
    KnowMem-retain."""
    t, r = (sanity.set_index("model").loc[m] for m in ("Target", "Retrained"))
    out: dict[str, Any] = {f"{c} ratio": float(r[c] / t[c]) if t[c] else float("nan")
                           for c in ("KnowMem-f", "VerbMem", "KnowMem-r")}
    out.update({"target PrivLeak": float(t["PrivLeak"]), "retrained PrivLeak": float(r["PrivLeak"]),
                "question points": 100.0 / n_questions,
                "models": {m: {c: float(row[c]) for c in ("VerbMem", "KnowMem-f", "KnowMem-r", "PrivLeak")}
                           for m, row in (("target", t), ("retrained", r))}})
    if sweep is not None:  # MUSE's forgetting rule (`claims.muse_forgetters`) on every sweep point
        from paperlib.studies.claims import MUSE_TARGET, muse_forgetters

        ok = sweep[(sweep["status"] == "completed") & sweep["method"].isin(BASELINES)]
        points = ok.assign(point=[f"point {i}" for i in range(len(ok))])
        target = sanity[sanity["model"] == "Target"].assign(point=MUSE_TARGET)
        moved = points["point"].isin(muse_forgetters(pd.concat([target, points]), points["point"], by="point"))
        keeps = points["KnowMem-r"] >= KEEP_RETAIN * t["KnowMem-r"]
        out["baselines moving"] = sorted(set(points[moved & keeps]["method"]))
    return out


def targets(stats: Mapping[str, Any]) -> list[Target]:
    """Issue 23's MUSE targets for `statistics`' result (real values: `REAL`)."""
    real = real_statistics()
    out = []
    for col in ("KnowMem-f", "VerbMem"):
        lo, hi = sorted(real[c][f"{col} ratio"] for c in real)
        quote = " / ".join(f"{real[c][f'{col} ratio']:.2f}" for c in real)
        out.append(Target(f"{col} retrained / target", stats[f"{col} ratio"], max(0.0, lo - RATIO_SLACK),
                          hi + RATIO_SLACK, quote))
    out += [Target("KnowMem-r retrained / target", stats["KnowMem-r ratio"], 1 - RETAIN_TOLERANCE,
                   1 + RETAIN_TOLERANCE, "1.00 / 1.00"),
            Target("target PrivLeak", stats["target PrivLeak"], -100.0, PRIVLEAK_TARGET,
                   f"{REAL['News']['target']['PrivLeak']:g} / {REAL['Books']['target']['PrivLeak']:g}"),
            Target("retrained PrivLeak", stats["retrained PrivLeak"], -PRIVLEAK_RETRAINED, PRIVLEAK_RETRAINED, "0 / 0"),
            Target("points per KnowMem-r question", stats["question points"], 0.0, QUESTION_POINTS, "–")]
    if "baselines moving" in stats:
        out.append(Target(f"a baseline ({'/'.join(BASELINES)}) forgets keeping {KEEP_RETAIN:.0%} KnowMem-r",
                          float(bool(stats["baselines moving"])), 1.0, 1.0, "NPO, GradDiff, RMU at lr 1e-5"))
    return out


def fidelity_table(stats: Mapping[str, Any]) -> pd.DataFrame:
    """One row per target: statistic, mini value, real value (News / Books), target range, met (yes / no)."""
    return pd.DataFrame([{"statistic": t.name, "mini": t.mini, "real (News / Books)": t.real,
                          "target": f"[{t.low:.3g}, {t.high:.3g}]", "met": "yes" if t.met else "no"}
                         for t in targets(stats)])


def models_table(stats: Mapping[str, Any]) -> pd.DataFrame:
    """Target and retrained model, mini vs real News / Books (x 100): the numbers behind the ratios."""
    rows = []
    for which in ("target", "retrained"):
        rows.append({"model": which, "source": "mini", **stats["models"][which]})
        rows += [{"model": which, "source": f"real {name}", **REAL[name][which]} for name in REAL]
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------- designs
@dataclass(frozen=True)
class Design:
    """One design of mini-MUSE that was tried: `name`, what changed and why, and its knobs: fields of
    `mini_muse.MiniMuseConfig` or `muse_models.MuseSettings` (absent: the mini profile's value)."""

    name: str
    change: str
    knobs: tuple[tuple[str, Any], ...] = ()


def design_settings(design: Design):
    """The mini profile's MUSE settings with `design`'s knobs."""
    from paperlib.benchmarks.muse import mini as mini_muse
    from paperlib.benchmarks.muse import models as muse_models

    s = muse_models.SETTINGS["mini"]
    bench = {f.name for f in fields(mini_muse.MiniMuseConfig)}
    top = {f.name for f in fields(muse_models.MuseSettings)} - {"mini"}
    bad = [k for k, _ in design.knobs if k not in bench | top]
    if bad:
        allowed = ", ".join(sorted(bench | top))
        raise PaperlibError(f"design {design.name!r}: unknown knob {bad[0]!r}; allowed: {allowed}")
    mini = replace(s.mini, **{k: v for k, v in design.knobs if k in bench})
    return replace(s, mini=mini, **{k: v for k, v in design.knobs if k in top})


def measure(design: Design, sweep: bool = True) -> dict[str, Any]:
    """Build (or read from the cache) a design's target and retrained models, their `statistics` and, with
    `sweep`, the baselines' sweep on notebook 11's grid (seed 0). Minutes per stage (0 for cached ones)."""
    from paperlib.benchmarks.muse import evaluate as muse
    from paperlib.benchmarks.muse import models as muse_models
    from paperlib.engine.config import get_profile
    from paperlib.studies import muse as muse_study

    p, s = get_profile("mini"), replace(design_settings(design), methods=BASELINES)
    out: dict[str, Any] = {"minutes": {}}
    with muse_models.using("mini", s):
        t = time.time()
        sanity = muse.sanity(p)
        out["minutes"]["models"], t = (time.time() - t) / 60, time.time()
        table = muse_study.tune(p, seeds=False)["sweep"] if sweep else None
        if sweep:
            out["minutes"]["sweep"] = (time.time() - t) / 60
        n = len(muse_models.load_data(p).knowmem["retain_qa"])
    return out | statistics(sanity, table, n)


RECORD = paths.project_root() / "benchmarks" / "muse_calibration.json"  # every design measured, in order


def load_record(path: Path = RECORD) -> list[dict]:
    return json.loads(path.read_text()) if path.is_file() else []


def record_table(record: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per measured design (in the order tried): what changed, every statistic, targets met, minutes."""
    rows = []
    for e in record:
        checks = targets(e)
        rows.append({"design": e["name"], "change": e["change"],
                     **{t.name: t.mini for t in checks if not t.name.startswith("a baseline")},
                     "baselines moving": ", ".join(e.get("baselines moving", [])) or "none",
                     "targets met": f"{sum(t.met for t in checks)}/{len(checks)}",
                     "minutes": sum(e["minutes"].values()) if e.get("minutes") else float("nan")})  # m0: not timed
    return pd.DataFrame(rows)


def chosen(record: list[Mapping[str, Any]]) -> str | None:
    """The rule that picks the mini profile's design: among the measured designs meeting every target, the one
    with the fewest fine-tuning epochs (the earliest on a tie); None when no design meets them all."""
    from paperlib.benchmarks.muse import models as muse_models

    default = muse_models.MuseSettings().train.epochs  # a design without a "train" knob: the 60 before issue 23
    ok = [e for e in record if all(t.met for t in targets(e))]
    epochs = [(e.get("knobs", {}).get("train") or {}).get("epochs", default) for e in ok]
    return ok[epochs.index(min(epochs))]["name"] if ok else None


def save_record_table(record: list[Mapping[str, Any]], folder: str | Path = "") -> None:
    report.save_table(record_table(record), "11_muse_calibration", folder,
                      caption="Every design of mini-MUSE tried, in order (benchmarks/muse_calibration.json); "
                              "minutes on 2 cores", profile="mini")


# The tiny models' fine-tuning before m3 (MuseSettings' default; m0-m2 name it, so that they rebuild as measured)
TRAIN_60 = TrainConfig(lr=3e-3, epochs=60, batch_size=8, warmup_epochs=1.0, schedule="cosine", weight_decay=0.0)

# Every design tried, in order. The rule, fixed when m2 met every target and before m3 was measured: the mini
# profile takes the cheapest design (fewest training steps) that meets every target (`targets`); a test checks
# that the settings are its knobs.
DESIGNS: tuple[Design, ...] = (
    Design("m0-scratch", "before issue 23 (commit 9c57a8b; numbers from its tables/11_muse_*): tiny models trained "
           "from scratch, 3 wordings per sentence, 2 sentences, one KnowMem question per event (21), no earlier "
           "coverage", (("init", "scratch"), ("n_templates", 3), ("sentences", 2), ("questions", 1),
                        ("prior_share", 0.0), ("train", TRAIN_60))),
    Design("m1-base-prior", "target / retrained fine-tuned from mini-TOFU's pretrained base (issue 23); 6 wordings "
           "per sentence and a closing sentence (m0's retrained model copied the shared wording: VerbMem ratio "
           "0.57 vs real 0.14-0.34); every question type asked (63 questions: m0's one question was 4.8 points); "
           "half of every split's facts in an earlier coverage both models read (m0's retrained model knew no "
           "forget answer: ratio 0 vs real 0.52-0.64)",
           (("init", "base"), ("n_templates", 6), ("sentences", 3), ("questions", 3), ("prior_share", 0.5),
            ("train", TRAIN_60))),
    Design("m2-longer-verbmem", "m1 with VerbMem's true continuation 32 words instead of 16 (64 new tokens instead "
           "of 32): m1's retrained model still scored VerbMem 0.54 of the target's, from the opening sentence's "
           "wording that the prompt gives away (a scratch check on m1's models: 0.36 at 32 words); earlier "
           "coverage of 70% of the facts instead of 50% (m1's ratio 0.37 sat at the range's edge; m1's retrained "
           "model kept 73% of the covered facts, so 70% aims at real News's 0.52)",
           (("init", "base"), ("n_templates", 6), ("sentences", 3), ("questions", 3), ("prior_share", 0.7),
            ("gt_words", 32), ("verbmem_new_tokens", 64), ("train", TRAIN_60))),
    Design("m3-30-epochs", "m2 (every target met) fine-tuned 30 epochs instead of 60: the models take 14 of notebook "
           "11's minutes per draw (issue 23 bounds its cold time); kept only if every target still holds",
           (("init", "base"), ("n_templates", 6), ("sentences", 3), ("questions", 3), ("prior_share", 0.7),
            ("gt_words", 32), ("verbmem_new_tokens", 64), ("train", replace(TRAIN_60, epochs=30)))),
)
