"""Threads: a fixed intra-op thread count per process, parallelism across processes.

A reduction split over n threads adds its terms in another order for another n, so the same training run
gives other bytes at another thread count (measured here: the mini base model differs at 1 and 2 threads on
an AVX-512 machine). paperlib's results must not depend on the core count or on OMP_NUM_THREADS, so every
process that imports paperlib computes with `count()` torch intra-op threads: 1, unless `PAPERLIB_THREADS`
says otherwise (a deliberate choice of speed over portability; the cache key records it, see
`paperlib.engine.numerics.signature`). The runner and the executors scale across processes instead, one per core by
default (`default_workers`). `configure()` exports the count as OMP_NUM_THREADS / MKL_NUM_THREADS /
OPENBLAS_NUM_THREADS (for kernels and child processes) and sets an already imported torch; `pinned()` holds it
around one computation whatever the caller set since.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from paperlib.engine.errors import PaperlibError

VAR = "PAPERLIB_THREADS"  # torch intra-op threads of every paperlib process (default 1: bit-reproducible)
DEFAULT = 1
ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def count() -> int:
    """Intra-op threads of every computation: `$PAPERLIB_THREADS`, default 1."""
    text = os.environ.get(VAR, "").strip() or str(DEFAULT)
    if not text.isdigit() or int(text) < 1:
        raise PaperlibError(f"{VAR}={text!r}; allowed: a whole number >= 1 (default {DEFAULT}: results that "
                            "are the same bytes on every machine)")
    return int(text)


def default_workers() -> int:
    """Parallel worker processes that fill the machine: cores // threads per process (at least 1)."""
    return max(1, cores() // count())


def env() -> dict[str, str]:
    """The thread variables every paperlib process and its children get."""
    n = str(count())
    return {VAR: n, **{k: n for k in ENV_VARS}}


def _set_torch(n: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def configure() -> int:
    """Export the thread variables (`env`) and, when torch is already imported, set its intra-op threads
    (a later `import torch` reads OMP_NUM_THREADS itself); returns the thread count."""
    os.environ.update(env())
    n = count()
    _set_torch(n)
    return n


@contextlib.contextmanager
def pinned() -> Iterator[int]:
    """torch at `count()` intra-op threads inside the block (a cached build), as before it afterwards."""
    import torch

    before, n = torch.get_num_threads(), count()
    _set_torch(n)
    try:
        yield n
    finally:
        _set_torch(before)
