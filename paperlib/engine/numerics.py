"""Which CPU kernels compute paperlib's numbers, and what a result's bytes depend on.

torch chooses its CPU kernels by the machine's instruction set: ATen's vectorised kernels (softmax, norms,
reductions, AdamW) come in AVX2 and AVX-512 builds, and MKL's GEMM takes a code path per processor. The same
training run then gives other bytes on another CPU, and after thousands of steps other numbers (measured on
this project's machine: the mini base model's weights differ between the native AVX-512 kernels and the
AVX2 ones). So on import paperlib asks for the AVX2 kernels everywhere (`PINNED`: ATen's
ATEN_CPU_CAPABILITY=avx2, MKL's conditional numerical reproducibility MKL_CBWR=AVX2, oneDNN's
ONEDNN_MAX_CPU_ISA=AVX2) unless the variables are already set or PAPERLIB_NATIVE_CPU=1 asks for the machine's
fastest kernels. Together with one intra-op thread (`paperlib.engine.threads`) every Intel CPU with AVX2 (since
2013) computes the tiny profiles' results to the same bytes under the locked packages (MKL documents its
AVX2 branch for Intel CPUs; on other x86 CPUs it falls back to its own dispatch, so GEMM may round otherwise
there: `signature()` then records another MKL branch and the cache keys differ).
Variables read when torch loads its kernels only take effect if paperlib is imported before torch runs any
(the notebooks, the CLI and the tests do so); `signature()` reads what torch and MKL actually use, so a
process that imported torch first gets other cache keys rather than wrong cache hits.

Not bit-reproducible across: non-Intel x86 CPUs (MKL), another torch / MKL build, arm64 (no AVX2), GPUs
(cuBLAS and cuDNN pick kernels per GPU model and library version; the paper profile), another PAPERLIB_THREADS.
`signature()` is part of every cache key; `record()` is what a run's provenance stores.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
from functools import cache
from pathlib import Path
from typing import Any

NATIVE_VAR = "PAPERLIB_NATIVE_CPU"  # 1: the machine's fastest CPU kernels instead of the pinned AVX2 ones
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
# mkl_cbwr.h: the branch MKL runs (MKL_CBWR_BRANCH query); 1 = off (the processor's own path)
MKL_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX",
                10: "AVX2", 11: "AVX512_MIC", 12: "AVX512", 13: "AVX512_MIC_E1", 14: "AVX512_E1"}
MKL_STRICT = 0x10000
CPU_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def native() -> bool:
    """True when PAPERLIB_NATIVE_CPU=1 (the machine's fastest kernels, results tied to this CPU)."""
    return os.environ.get(NATIVE_VAR, "").strip() not in ("", "0")


def apply() -> None:
    """Ask for the pinned kernels (`PINNED`) for this process and its children, unless native() or already
    set. Called on `import paperlib`."""
    if native():
        return
    for key, value in PINNED.items():
        os.environ.setdefault(key, value)


def _mkl_branch() -> str | None:
    """MKL's code path as MKL reports it (its service symbol inside torch's CPU library), else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    lib = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    try:
        get = ctypes.CDLL(str(lib)).mkl_serv_cbwr_get
    except (OSError, AttributeError):
        return None
    get.restype = ctypes.c_int
    code = int(get(ctypes.c_int(1)))
    branch = MKL_BRANCHES.get(code & ~MKL_STRICT, str(code & ~MKL_STRICT))
    return branch + (",STRICT" if code & MKL_STRICT else "")


def signature() -> dict[str, Any]:
    """What a result's bytes depend on besides the code and the config: torch (and CUDA) version, the device
    type, the CPU kernels torch and MKL run, the intra-op threads. Part of every cache key."""
    import torch

    from paperlib.engine import threads

    cuda = torch.cuda.is_available()
    return {"torch": torch.__version__, "device": "cuda" if cuda else "cpu",
            "cuda": torch.version.cuda if cuda else None,
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "mkl": _mkl_branch(),
            "threads": threads.count()}


@cache
def cpu() -> dict[str, Any]:
    """The processor: model name and the instruction-set flags that select kernels (Linux /proc/cpuinfo)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and name in ("", platform.machine()):
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return {"model": name, "arch": platform.machine(), "flags": [f for f in CPU_FLAGS if f in flags]}


def record() -> dict[str, Any]:
    """Provenance: the signature, the processor, and the variables that chose the kernels."""
    env = {k: os.environ.get(k) for k in (*PINNED, NATIVE_VAR, "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**signature(), "cpu": cpu(), "env": env}
