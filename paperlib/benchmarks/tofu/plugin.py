"""TOFU as a plug-in of the study protocol: one target, the forget split (forget01 / 05 / 10), unlearned from the
original model on its QA pairs with the profile's settings for every run (`profile_settings`); its row is every
number of the TOFU summary with the PALU table's columns, FQ = forget quality, MU = model utility; the reference
MU is the original model's (its cached evaluation)."""

from __future__ import annotations

from typing import Any

from paperlib import methods
from paperlib.benchmarks import Benchmark, register
from paperlib.benchmarks.tofu import metrics, pipeline
from paperlib.engine import executors, unlearn
from paperlib.engine.errors import PaperlibError
from paperlib.methods import tuning


def profile_settings(profile: Any, method: str) -> dict:
    """The settings of `profile.unlearn` that apply to `method`: TrainConfig (and reference) fields always, a
    hyperparameter when the method has it; a key no method knows is refused."""
    settings = dict(getattr(profile, "unlearn", ()))
    known = {*unlearn.TRAIN_KEYS, *unlearn.REFERENCE_KEYS}
    every_hparam = {name for m in methods.names(ablation=True) for name in methods.hparam_names(m)}
    unknown = [k for k in settings if k.removeprefix("train.") not in known | every_hparam]
    if unknown:
        raise PaperlibError(f"profile unlearn settings {unknown}; allowed: TrainConfig fields "
                            f"({', '.join(unlearn.TRAIN_KEYS)}) or a method's hyperparameter")
    mine = {*known, *methods.hparam_names(method)}
    return {k: v for k, v in settings.items() if k.removeprefix("train.") in mine}


def request(profile: Any, target: str, method: str, point: Any, settings: dict | None = None) -> executors.Request:
    """The planned TOFU run of `method` on forget split `target` at `point` (`paperlib.engine.executors`): the
    profile's settings for every run (`profile_settings`) below the run's own `settings`, the tuning grid's
    schedule; no weights kept."""
    overrides = {**profile_settings(profile, method), **(settings or {}),
                 **tuning.run_overrides(profile, method, point.lr, point.seed, point.stop_epoch)}
    return executors.Request(profile, method, target, overrides, eval_every_epoch=point.every_epoch,
                             save_model=False)


def scores(summary: dict | None) -> dict:
    """Every number of a TOFU summary, with the PALU table's column names for its columns (FQ, MU among them)."""
    if not summary:
        return {}
    return {**{k: float(v) for k, v in summary.items()}, **metrics.palu_columns(summary)}


def original_mu(profile: Any, forget: str) -> float:
    """Model utility of the original model (the MU95 rule's reference; its cached evaluation)."""
    _, summary = pipeline.evaluation(profile, pipeline.original_model(profile), forget)
    return float(summary["model_utility"])


def targets(profile: Any) -> list[str]:
    """The profile's forget split (a notebook may ask for another: `request` takes any)."""
    return [profile.benchmark.forget]


def reference(profile: Any) -> dict[str, float]:
    """The original model's MU on the profile's forget split."""
    return {forget: original_mu(profile, forget) for forget in targets(profile)}


BENCHMARK = register(Benchmark("tofu", tuple(methods.names()), targets, request, scores, reference,
                               tuple(metrics.PALU_COLUMNS)))
