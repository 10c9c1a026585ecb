"""What produced a run folder, recorded beside its config: `provenance.json` with the Python and package
versions, the torch build (version, CUDA / cuDNN, git revision), the device, the numerics (CPU model and the
instruction-set flags that select kernels, the kernels torch and MKL ran, threads: `paperlib.engine.numerics.record`)
and the seed(s) of the config.

`paperlib.engine.cache.cached_run` writes it into every folder it completes (before the manifest, so the manifest
covers it). It is a record, not the cache key: a run built under other package versions is still served (bump
`cache.CACHE_VERSION` for a library change that alters results), and the record says which; what decides
the bytes on one software stack (torch version, device, CPU kernels, threads) is also in the key.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

FILE = "provenance.json"


@cache
def packages() -> dict[str, str]:
    """{distribution name (lower case): version} of every installed distribution."""
    out = {}
    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        if name:
            out[name] = dist.version
    return dict(sorted(out.items()))


def torch_build() -> dict[str, Any]:
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"version": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "git": getattr(torch.version, "git_version", None), "debug": torch.version.debug,
            "threads": torch.get_num_threads()}


def device() -> dict[str, Any]:
    """The device a run in this process uses (`engine.models.auto_device`'s choice) and what else is visible."""
    import torch

    info: dict[str, Any] = {"machine": platform.machine(), "processor": platform.processor(),
                            "cpu_count": os.cpu_count(), "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["type"] = "cuda"
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    else:
        info["type"] = "cpu"
    return info


def seeds(config: Any) -> dict[str, Any]:
    """Every `seed` field of a config (JSON value), by its path, e.g. {"train.seed": 0}."""
    found: dict[str, Any] = {}

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                path = f"{where}.{k}".lstrip(".")
                if k == "seed" and not isinstance(v, (dict, list)):
                    found[path] = v
                else:
                    walk(v, path)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{where}[{i}]")

    walk(config, "")
    return found


def record(config: Any = None) -> dict[str, Any]:
    """The provenance of a run with this config (a JSON value, e.g. `cache.to_jsonable(config)`)."""
    from paperlib.engine import numerics

    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch_build(),
            "device": device(), "numerics": numerics.record(), "seeds": seeds(config), "packages": packages()}


def write(folder: str | Path, config: Any = None) -> Path:
    """Write `provenance.json` into `folder`; returns its path."""
    path = Path(folder) / FILE
    path.write_text(json.dumps(record(config), indent=1, sort_keys=True))
    return path
