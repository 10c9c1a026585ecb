"""MUSE as a plug-in of the study protocol: one target (the profile's corpus: News, Books or mini-MUSE),
unlearned from the target model on its raw forget text (PALU with automatic spans); FQ = 1 - mean(VerbMem,
KnowMem-forget), MU = KnowMem-retain; the reference MU is the target model's. A seed run's row carries the
bootstrap CIs of its own final evaluation (`final`), so every seed run ends at the selected epoch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paperlib.benchmarks import Benchmark, register
from paperlib.benchmarks.muse import evaluate as muse
from paperlib.benchmarks.muse.metrics import EVAL_FILE
from paperlib.engine import executors
from paperlib.methods import tuning


def targets(profile: Any) -> list[str]:
    """The one corpus a profile unlearns ("mini-muse", "muse-news" or "muse-books")."""
    s = muse.settings(profile)
    return ["mini-muse" if s.mini else f"muse-{s.corpus}"]


def request(profile: Any, target: str, method: str, point: Any) -> executors.Request:
    """The planned MUSE run of `method` at `point`: `unlearn.unlearn_text` on the forget text (PALU: with the
    automatic spans, `muse.auto_spans`) from the target model, the "muse" evaluator."""
    spans = muse.auto_spans(profile) if method == "PALU" else None
    return executors.Request(profile, method, overrides=tuning.run_overrides(profile, method, point.lr, point.seed,
                                                                             point.stop_epoch),
                             eval_every_epoch=point.every_epoch, model=str(muse.target_model(profile)),
                             corpus=muse.corpus(profile, spans), evaluator=muse.EVALUATOR,
                             eval_args=muse.engine_eval_args(profile))


def final(info: dict) -> dict:
    """The bootstrap 95% CIs (over items) of a run's final evaluation, read from its MUSE_EVAL.json."""
    log = Path(info["path"]) / EVAL_FILE
    if info["summary"] is None or not log.is_file():
        return {}
    return {k: v for k, v in muse.table_columns(info["summary"], json.loads(log.read_text())).items()
            if k.endswith(" CI")}


def reference(profile: Any) -> dict[str, float]:
    """The target model's KnowMem-retain (`muse.target_mu`, its cached evaluation)."""
    return {targets(profile)[0]: muse.target_mu(profile)}


BENCHMARK = register(Benchmark("muse", muse.METHODS, targets, request, muse.table_row, reference,
                               tuple(muse.COLUMNS), final=final))
