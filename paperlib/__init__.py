"""paperlib.

Importing it fixes how this process computes, before torch loads its kernels: the pinned CPU kernels
(`paperlib.engine.numerics`) and one intra-op thread (`paperlib.engine.threads`), so that results are the same bytes on
every machine.

The package is five folders (README, "Architecture"): `engine` (cache, training loop, one unlearning run,
executors), `methods` (the registry of methods, their losses, masks), `benchmarks` (TOFU, MUSE, RWKU: data, mini
generator, models, evaluation, metrics), `studies` (the tuning protocol and the papers' questions) and `report`.
`paperlib.losses` and `paperlib.metrics` stay importable as before (the public functions of
shared/spec/api.md).
"""

import importlib as _importlib

from paperlib.engine import errors as _errors
from paperlib.engine import numerics as _numerics
from paperlib.engine import threads as _threads

_numerics.apply()
try:
    _threads.configure()
except _errors.PaperlibError:  # a bad PAPERLIB_THREADS: reported in one line where it is used (the CLI, a run)
    pass

_PUBLIC = {"losses": "paperlib.methods.losses", "metrics": "paperlib.benchmarks.tofu.metrics"}


def __getattr__(name: str):
    """`from paperlib import losses, metrics`: the public modules, imported on first use."""
    if name in _PUBLIC:
        return _importlib.import_module(_PUBLIC[name])
    raise AttributeError(f"module 'paperlib' has no attribute {name!r}")
