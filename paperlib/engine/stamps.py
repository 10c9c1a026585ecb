"""Whether a notebook's executed copy is up to date, so that `paperlib reproduce` (and `make reproduce`) skips
it the way `make` skips a target.

A stamp beside the executed copy (`<name>.stamp.json`) records what the notebook was executed from: its bytes, its
parameters and kernel, paperlib's source, the installed packages and Python, the machine, the thread and cache
settings its kernel saw, and the list of files of the shared real data (`paths.shared_data_dir`); and what it
wrote: the executed copy and every table, figure and note saved through `paperlib.report` (which lists them in the
file named by `OUTPUTS_ENV` while the runner executes the notebook), each with its SHA-256. A notebook is up to
date when every input is unchanged and every output is still there, byte for byte. A stamp is written only after a
successful execution and removed before one starts, so a failed or killed run never leaves one behind.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

OUTPUTS_ENV = "PAPERLIB_OUTPUTS"  # set for a notebook's kernel: the file where `record` lists what it wrote
SUFFIX = ".stamp.json"
PACKAGE = Path(__file__).resolve().parents[1]  # paperlib/


def _sha256(path: Path) -> str:
    # the cache's digest (one place for how a file is hashed); imported here so that `report` stays light
    from paperlib.engine.cache import file_digest

    return file_digest(path)


def context(env: Mapping[str, str]) -> str:
    """Digest of what every notebook of one `reproduce` call shares: paperlib's source, the installed packages,
    Python, the machine, the kernels' paperlib / thread variables (`env`, CUDA_VISIBLE_DEVICES left out: a
    worker's slot) and the shared data's file list (path, size, mtime)."""
    from paperlib.engine.paths import shared_data_dir

    h = hashlib.sha256()
    for f in sorted(PACKAGE.rglob("*.py")):
        h.update(f"{f.relative_to(PACKAGE)}\n".encode())
        h.update(f.read_bytes())
    shared = shared_data_dir()
    files = sorted(p for p in shared.rglob("*") if p.is_file()) if shared.is_dir() else []
    h.update(json.dumps({
        "packages": sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()),
        "python": sys.version, "machine": [platform.machine(), platform.platform(), os.cpu_count()],
        "env": {k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"},
        "shared": [(str(p.relative_to(shared)), p.stat().st_size, p.stat().st_mtime_ns) for p in files],
    }, sort_keys=True).encode())
    return h.hexdigest()


def inputs(notebook: Path, parameters: Mapping[str, Any], kernel: str, shared_context: str) -> str:
    """Digest of one notebook's inputs: its bytes, parameters and kernel, and the `context` of the call."""
    blob = {"notebook": _sha256(Path(notebook)), "parameters": parameters, "kernel": kernel,
            "context": shared_context}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def stamp_path(executed: Path) -> Path:
    return Path(executed).with_suffix(SUFFIX)


def manifest_path(executed: Path) -> Path:
    """Where the notebook's kernel lists the files it writes (`record`) while it runs."""
    return Path(executed).with_suffix(".outputs.txt")


def is_fresh(executed: Path, digest: str) -> bool:
    """The stamp of `executed` names `digest` as its inputs, and the executed copy and every file the notebook
    wrote are unchanged."""
    try:
        stamp = json.loads(stamp_path(executed).read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("inputs") != digest:
        return False
    files = {str(Path(executed).resolve()): stamp.get("executed"), **stamp.get("outputs", {})}
    return all(Path(p).is_file() and _sha256(Path(p)) == d for p, d in files.items())


def begin(executed: Path) -> Path:
    """Before an execution: remove the stamp and return an empty output manifest (its path: `OUTPUTS_ENV`)."""
    stamp_path(executed).unlink(missing_ok=True)
    manifest = manifest_path(executed)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text("")
    return manifest


def finish(executed: Path, digest: str) -> None:
    """After a successful execution: the stamp (inputs, the executed copy's and every listed output's digest);
    the caller removes the manifest (whatever the outcome)."""
    manifest = manifest_path(executed)
    listed = dict.fromkeys(manifest.read_text().splitlines()) if manifest.is_file() else {}
    outputs = {p: _sha256(Path(p)) for p in listed if p and Path(p).is_file()}
    stamp = {"inputs": digest, "executed": _sha256(Path(executed)), "outputs": outputs}
    tmp = stamp_path(executed).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=1, sort_keys=True))
    tmp.replace(stamp_path(executed))


def record(paths: Iterable[str | Path]) -> None:
    """List `paths` as written by the running notebook (a no-op outside `paperlib reproduce`)."""
    manifest = os.environ.get(OUTPUTS_ENV)
    if manifest:
        with open(manifest, "a") as f:
            f.writelines(f"{Path(p).resolve()}\n" for p in paths)
