"""CPU thread budget: parallel torch processes must not oversubscribe the cores.

Two torch processes that each start one thread per core slow each other down by an order of magnitude on a
2-core machine (every BLAS / OpenMP kernel spins its threads against the other process's). `configure(workers)`
gives this process `max(1, cores // workers)` torch intra-op threads and exports the same number as
OMP_NUM_THREADS / MKL_NUM_THREADS / OPENBLAS_NUM_THREADS for the kernels and child processes started after it
(papermill kernels inherit the environment). A value the user already exported wins.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
# What the user exported before paperlib set anything: `configure` writes os.environ, and a later call for
# several workers must not take this process's own value for the user's.
USER_ENV = {k: v for k in ENV_VARS if (v := os.environ.get(k))}


def cores() -> int:
    """CPU cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def per_worker(workers: int = 1) -> int:
    """Threads for each of `workers` parallel processes: max(1, cores // workers)."""
    return max(1, cores() // max(1, int(workers)))


def env(workers: int = 1, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The thread variables for one of `workers` processes; values set in `environ` (default: what the user
    exported before paperlib changed anything, USER_ENV) are kept, and an exported OMP_NUM_THREADS is also
    the default of the other two."""
    environ = USER_ENV if environ is None else environ
    n = environ.get("OMP_NUM_THREADS") or str(per_worker(workers))  # an exported OMP_NUM_THREADS sets the rest
    return {k: environ.get(k) or n for k in ENV_VARS}


def configure(workers: int = 1, environ: Mapping[str, str] | None = None) -> int:
    """Export the thread variables for one of `workers` parallel processes and, when torch is already
    imported, set its intra-op threads to match (a later `import torch` reads OMP_NUM_THREADS itself);
    returns the thread count. An exported OMP_NUM_THREADS decides it; `environ`: the values to keep instead of
    the user's (a worker process passes the budget its parent gave it: its own USER_ENV was captured from the
    parent's environment, which may hold the parent's all-cores value)."""
    values = env(workers, environ)
    os.environ.update(values)
    try:
        n = max(1, int(values["OMP_NUM_THREADS"]))
    except ValueError:
        n = per_worker(workers)
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
