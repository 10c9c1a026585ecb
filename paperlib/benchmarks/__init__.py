"""Benchmarks as plug-ins of the study protocol (`paperlib.studies.protocol`).

A benchmark tells the protocol five things, and nothing else about it is needed to tune every method on it:
which targets it unlearns one at a time (one forget set: a single target), how to plan one unlearning run
(`request`: starting model, forget / retain data, evaluator), what a run's evaluation means for the tuning
rule (`scores`: its table columns plus FQ, higher = more forgotten, and MU, the utility the MU95 rule keeps),
the utility of the model unlearning starts from (`reference`), and its table's columns (and, optionally, the
further columns of a seed run read from its folder: `final`). A benchmark is one folder, `<name>/`: its data
loader, mini generator, models, evaluation and metrics, and `plugin.py`, which registers it. `register` adds one
(a test registers a toy benchmark: tests/test_benchmarks.py); `get` finds one by name, importing the built-in
plug-ins (`<name>/plugin.py` of every folder here: TOFU, MUSE, RWKU) on first use. The plug-ins sit outside the
cache keys of the benchmark's models, evaluations and runs (they only say how to plan and read them), so
editing one re-keys nothing (`tests/test_cache.py`).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paperlib.engine.errors import PaperlibError


@dataclass(frozen=True)
class Benchmark:
    """One benchmark behind the tuning protocol (see the module docstring)."""

    name: str
    methods: tuple[str, ...]  # the methods its study runs by default
    targets: Callable[[Any], list[str]]  # profile -> what is unlearned, one at a time
    request: Callable[..., Any]  # (profile, target, method, protocol.Point, **options) -> executors.Request
    scores: Callable[[dict], dict]  # one evaluation summary -> its table row, with "FQ" and "MU"
    reference: Callable[[Any], dict[str, float]]  # profile -> target -> MU of the model unlearning starts from
    columns: tuple[str, ...]  # its table's columns
    # a seed run's further columns, read from its run folder (`protocol.execute`'s dict; e.g. MUSE's bootstrap
    # CIs of its final evaluation): with it, each seed run ends at the selected epoch and is evaluated there;
    # without, seed 0 is the sweep's own row at that epoch
    final: Callable[[dict], dict] | None = None


REGISTRY: dict[str, Benchmark] = {}


def register(benchmark: Benchmark) -> Benchmark:
    """Add `benchmark` under its name (a second, different one under a taken name is an error)."""
    if REGISTRY.get(benchmark.name, benchmark) is not benchmark:
        raise ValueError(f"benchmark {benchmark.name!r} is already registered")
    REGISTRY[benchmark.name] = benchmark
    return benchmark


def unregister(name: str) -> None:
    """Remove benchmark `name` (tests that register a toy benchmark clean up with it)."""
    REGISTRY.pop(name, None)


def builtin() -> list[str]:
    """The plug-in modules of this folder's benchmarks (`<name>/plugin.py`; each registers its benchmark when
    imported)."""
    return sorted(f"{m.name}.plugin" for m in pkgutil.iter_modules(__path__)
                  if m.ispkg and (Path(__path__[0]) / m.name / "plugin.py").is_file())


def get(name: str) -> Benchmark:
    """The benchmark registered as `name` (the built-in plug-ins are imported on first use)."""
    if name not in REGISTRY:
        for module in builtin():
            importlib.import_module(f"{__name__}.{module}")
    if name not in REGISTRY:
        raise PaperlibError(f"unknown benchmark {name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
