"""Run cache: every expensive result lives in `<root>/<kind>/<hash of its config>/`.

A folder is complete only when it holds the marker `COMPLETE`; it is built in a temporary sibling and
renamed into place at the end, so a killed run never leaves a folder that looks complete. A file lock
stops two processes from building the same run at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "COMPLETE"
RUN_CONFIG = "run_config.json"
CACHE_VERSION = 2  # bump when a change makes old cached results wrong


def cache_root() -> Path:
    """`$PAPERLIB_CACHE` or the project's `runs/` (`paperlib.paths.project_root`, whatever the working directory)."""
    from paperlib.paths import runs_dir

    return Path(os.environ.get("PAPERLIB_CACHE") or runs_dir())


def to_jsonable(config: Any) -> Any:
    """Dataclasses, paths and tuples as plain JSON values."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {str(k): to_jsonable(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [to_jsonable(v) for v in config]
    if isinstance(config, Path):
        return str(config)
    return config


def config_hash(config: Any) -> str:
    """Stable 16-hex-digit hash of a config (dataclass, dict or JSON value)."""
    blob = json.dumps({"v": CACHE_VERSION, "config": to_jsonable(config)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_dir(kind: str, config: Any, root: str | Path | None = None) -> Path:
    """Folder of the run `kind` with this config (complete or not)."""
    return Path(root or cache_root()) / kind / config_hash(config)


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def cached_run(kind: str, config: Any, build: Callable[[Path], None], force: bool = False,
               root: str | Path | None = None) -> Path:
    """Return the complete run folder for `config`, calling `build(tmp_dir)` to fill it if needed.

    `build` writes its files into the folder it is given; the config (`run_config.json`) and the marker are
    written after it returns, then the folder is renamed into place atomically.
    """
    final = run_dir(kind, config, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(final) and not force:
            return final
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            build(tmp)
            (tmp / RUN_CONFIG).write_text(json.dumps(to_jsonable(config), indent=1, sort_keys=True))
            (tmp / MARKER).write_text("")
            if final.exists():
                old = final.parent / f".{final.name}.old-{os.getpid()}"
                final.rename(old)
                shutil.rmtree(old)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final
