"""RWKU as a plug-in of the study protocol: each target unlearned on its own from its forget corpus, starting
from the base model (`rwku.evaluate`); FQ = 100 - forget All, MU = neighbour All; the reference MU is the base
model's neighbour All on that target."""

from __future__ import annotations

from typing import Any

from paperlib.benchmarks import Benchmark, register
from paperlib.benchmarks.rwku import evaluate as rwku
from paperlib.engine import executors
from paperlib.methods import tuning


def overrides(profile: Any, method: str, lr: float, seed: int, stop_epoch: int) -> dict:
    """A run's settings: no retain term (`rwku.NO_RETAIN`), the tuning schedule, the profile's batch size."""
    s = rwku.settings(profile)
    out = {**rwku.NO_RETAIN.get(method, {}), **tuning.run_overrides(profile, method, lr, seed, stop_epoch)}
    if s.batch_size:
        out["batch_size"] = s.batch_size
    return out


def request(profile: Any, target: str, method: str, point: Any, forget_corpus: str | None = None
            ) -> executors.Request:
    """The planned RWKU run of `method` on `target` at `point`: `unlearn.unlearn_text` on the target's forget
    corpus (`forget_corpus`: default the profile's) from the base model, the "rwku" evaluator."""
    text = rwku.corpus(profile, target, spans=method in rwku.SPAN_METHODS, forget_corpus=forget_corpus)
    return executors.Request(profile, method, overrides=overrides(profile, method, point.lr, point.seed,
                                                                  point.stop_epoch),
                             eval_every_epoch=point.every_epoch, model=rwku.base_model(profile), corpus=text,
                             evaluator=rwku.EVALUATOR, eval_args=rwku.eval_args(profile, target))


def scores(summary: dict) -> dict:
    """An RWKU evaluation's row: its columns, FQ and MU (`rwku.scores`)."""
    return {**summary, **rwku.scores(summary)}


def reference(profile: Any) -> dict[str, float]:
    """Per target, the base model's neighbour All (`rwku.original_rows`, cached evaluations)."""
    original = rwku.original_rows(profile)
    return {t: float(mu) for t, mu in zip(original["target"], original["MU"])}


BENCHMARK = register(Benchmark("rwku", rwku.METHODS, lambda profile: rwku.target_names(profile), request, scores,
                               reference, rwku.TABLE_COLUMNS))
