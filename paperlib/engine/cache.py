"""Run cache: every expensive result lives in `<root>/<kind>/<key>/`.

The key hashes the run's config together with a fingerprint of the source code that computes that kind of
result and with the numerics it was computed under (`paperlib.engine.numerics.signature`: torch version, device, CPU
kernels, threads). The code is that of the modules `CODE` names for the kind and of every paperlib module they
import, directly or not (`code_modules`), except the `INERT` ones that cannot change a result (progress bars,
paths, this cache): a changed loss, metric or data recipe recomputes without a manual version bump, wherever
in the import graph it sits, while an edit to an inert module (e.g. report.py) invalidates nothing.

A folder is complete only when it holds the marker `COMPLETE`; it is built in a temporary sibling and
renamed into place at the end, so a killed run never leaves a folder that looks complete. A file lock
stops two processes from building the same run at once. At completion a manifest (`cache_manifest.json`:
kind, key, code fingerprint, numerics signature, every file's size, sha256 and mtime) is written; on every
load the stored config is compared with the key's config and the files with the manifest (sizes always,
sha256 of files up to `SMALL_FILE` bytes, larger files, i.e. weights, again by their stored digest when their
size or mtime changed). Every build runs at `paperlib.engine.threads.count()` intra-op threads (`threads.pinned`).
An entry that fails is reported (a `CacheWarning` naming the folder and what differs) and rebuilt, never
served. `verify_cache` / `prune_cache` (`paperlib cache verify|prune`) check a whole cache.

A notebook reads the same entries many times (every `unlearn()` call checks the benchmark, tokenizer and
model entries it builds on): a check that passed is remembered for the rest of the process, keyed by the
entry's path, kind, config and code fingerprint, together with the stat of every file in the folder
(name, size, mtime, ctime, inode). A later check whose stat matches skips the re-hash; any change on disk
(a write, even one that restores the mtime, changes the ctime; a replaced file has a new inode; an added
or removed file changes the listing) makes it verify in full again. Like git's "racily clean" rule, a check
is remembered only when every file's timestamps are `RACY_NS` older than the check's start, so a write in
the same clock tick as the check cannot go unnoticed. `deep` checks are never skipped.
"""

from __future__ import annotations

import ast
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from paperlib.engine import numerics, provenance, threads
from paperlib.engine.errors import CacheWarning, PaperlibError

MARKER = "COMPLETE"
RUN_CONFIG = "run_config.json"
MANIFEST = "cache_manifest.json"
CACHE_VERSION = 4  # bump only for a change the code fingerprint cannot see (e.g. a library upgrade)
SMALL_FILE = 8 << 20  # files up to this size are re-hashed on every load
PACKAGE = Path(__file__).resolve().parents[1]  # paperlib/
# kind -> the module(s) whose functions build that result; the fingerprint covers them and every paperlib module
# they import (`code_modules`), so a root is enough (a test checks that each `cached_run` call site is covered)
CODE: dict[str, tuple[str, ...]] = {
    "benchmark": ("benchmarks/tofu/pipeline", "benchmarks/tofu/mini"),
    "tokenizer": ("benchmarks/tofu/pipeline",),
    "model": ("benchmarks/tofu/pipeline",),
    "eval": ("benchmarks/tofu/pipeline",),
    "inject": ("studies/injection",),
    "inject-selection": ("studies/injection",),  # the budget's choice reads the injected models' evaluations
    "unlearn": ("engine/unlearn",),
    "spans": ("benchmarks/spans",),
    "loss-timing": ("studies/timing",),  # notebook 07's loss timing (studies.timing.cached_loss_timing)
    "kl-analysis": ("studies/distill",),  # notebook 10's soft-target KL analysis (distill.figure5)
    "loc-study": ("studies/localization",),  # notebook 09's sweeps, selections and curves (localization.study)
    # MUSE (paperlib.benchmarks.muse): its benchmark folder, target / retrained models, automatic spans, evaluations
    "muse-benchmark": ("benchmarks/muse/models", "benchmarks/muse/mini"),
    "muse-model": ("benchmarks/muse/models",),
    "muse-spans": ("benchmarks/muse/evaluate",),
    "muse-eval": ("benchmarks/muse/evaluate",),
    # RWKU (paperlib.benchmarks.rwku): benchmark, tokenizer, base model, the zero-shot forget texts, evaluations
    "rwku-benchmark": ("benchmarks/rwku/settings", "benchmarks/rwku/mini"),
    "rwku-tokenizer": ("benchmarks/rwku/base",),
    "rwku-model": ("benchmarks/rwku/base",),
    "rwku-generated": ("benchmarks/rwku/evaluate",),
    "rwku-eval": ("benchmarks/rwku/evaluate",),
}
# modules that cannot change a cached result (their imports are not followed either): no fingerprint covers them
INERT = frozenset({
    *(f"engine/{m}" for m in ("cache", "provenance", "progress", "paths", "errors", "executors", "threads",
                              "numerics", "checks", "stamps")),
    "report", "report/plots", "report/docsite", "runner", "cli", "studies/claims", "benchmarks/tofu/standins",
    "studies/calibration", "studies/muse_calibration", "studies/rwku_calibration"})
# kinds this process may read but never build (comma-separated; `paperlib.engine.executors.environment` sets it in
# kernels whose unlearning runs an executor computes, so an unplanned run fails instead of training there)
READ_ONLY_ENV = "PAPERLIB_READ_ONLY"
RACY_NS = 2_000_000_000  # a check is remembered only if every file's mtime and ctime are this much older
_VERIFIED: dict[tuple, tuple] = {}  # memo key of a passed check -> stat signature of the folder then
_TMP = re.compile(r"^\.(?P<key>[^.]+)\.(?:tmp|old)-(?P<pid>\d+)$")


def cache_root() -> Path:
    """`$PAPERLIB_CACHE` or the project's `runs/` (`engine.paths.project_root`, whatever the working directory)."""
    from paperlib.engine.paths import runs_dir  # issue 9: never a cwd-relative ./runs (JupyterLab runs in notebooks/)

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


def _module_files(name: str) -> list[Path]:
    """The file of module `name` ("engine/unlearn"; a package's name is its `__init__.py`), or none."""
    path = PACKAGE / name
    for f in (path.with_suffix(".py"), path / "__init__.py"):
        if f.is_file():
            return [f]
    return []


def source_code(f: Path) -> bytes:
    """What a fingerprint reads of source file `f`: its syntax tree without docstrings (comments, docstrings and
    layout change no result, so editing them re-keys nothing)."""
    tree = ast.parse(f.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def _imports(name: str) -> set[str]:
    """The paperlib modules (CODE-style names, e.g. "data/tofu") that module `name` imports anywhere in its
    source, function bodies included."""
    found: set[str] = set()
    for f in _module_files(name):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("paperlib"):
                base = node.module.removeprefix("paperlib").lstrip(".").replace(".", "/")
                for alias in node.names:
                    sub = f"{base}/{alias.name}".lstrip("/")
                    found.add(sub if _module_files(sub) else base)
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("paperlib.").replace(".", "/") for a in node.names
                          if a.name.startswith("paperlib.")}
    return {m for m in found if m and _module_files(m)}


@cache
def _closure(modules: tuple[str, ...], stamp: tuple) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = [m for m in modules if m not in INERT]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [m for m in _imports(name) if m not in INERT and m not in seen]
    return tuple(sorted(seen))


def _package_stamp() -> tuple:
    """(path, size, mtime) of every .py file of the package (os.scandir: a warm notebook asks thousands of times)."""
    out = []

    def walk(folder: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path)
                elif entry.name.endswith(".py"):
                    st = entry.stat()
                    out.append((entry.path, st.st_size, st.st_mtime_ns))

    walk(str(PACKAGE))
    return tuple(sorted(out))


def closure(modules: tuple[str, ...]) -> tuple[str, ...]:
    """`modules` and every paperlib module they import, directly or not, less the `INERT` ones."""
    return _closure(tuple(modules), _package_stamp())


def code_modules(kind: str) -> tuple[str, ...]:
    """The modules whose source makes the code fingerprint of `kind`: the closure of `CODE[kind]`."""
    return closure(CODE.get(kind, ()))


@cache
def _source_digest(modules: tuple[str, ...], stamp: tuple) -> str:
    h = hashlib.sha256()
    for name in modules:
        files = _module_files(name)
        h.update(f"module {name}: {len(files)} file(s)\n".encode())
        for f in files:
            h.update(f"{f.relative_to(PACKAGE)}\n".encode())
            h.update(source_code(f))
    return h.hexdigest()[:16]


def code_fingerprint(kind: str) -> str:
    """Digest of the source of the modules that compute results of `kind` (`code_modules`; other kinds: none).
    One walk of the package per call (a warm notebook asks thousands of times); the sources are read again only
    after a file of the package changed."""
    stamp = _package_stamp()
    return _source_digest(_closure(tuple(CODE.get(kind, ())), stamp), stamp)


def config_hash(config: Any, kind: str | None = None, signature: dict | None = None) -> str:
    """Stable 16-hex-digit hash of a config (dataclass, dict or JSON value); with `kind`, of the config, the
    code fingerprint of that kind and the numerics (`signature`, default this process's
    `numerics.signature()`): the cache key."""
    blob = {"v": CACHE_VERSION, "config": to_jsonable(config)}
    if kind is not None:
        blob["code"] = code_fingerprint(kind)
        blob["numerics"] = numerics.signature() if signature is None else signature
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def run_dir(kind: str, config: Any, root: str | Path | None = None) -> Path:
    """Folder of the run `kind` with this config (complete or not)."""
    return Path(root or cache_root()) / kind / config_hash(config, kind)


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> Iterator[Path]:
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name not in (MARKER, MANIFEST):
            yield p


def write_manifest(folder: Path, kind: str, key: str) -> dict:
    """Record kind, key, code fingerprint and every file's size, mtime and sha256 in `folder/MANIFEST`."""
    files = {}
    for p in _files(folder):
        st = p.stat()
        files[p.relative_to(folder).as_posix()] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                    "sha256": file_digest(p)}
    manifest = {"kind": kind, "key": key, "code": code_fingerprint(kind), "numerics": numerics.signature(),
                "version": CACHE_VERSION, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return manifest


def read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths where two JSON values differ, e.g. ['train.lr: 0.5 (stored) vs 0.001 (key)']."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(a.keys() | b.keys()) for d in _diff(a.get(k), b.get(k), f"{where}.{k}".lstrip("."))]
    if a != b:
        return [f"{where or 'config'}: {json.dumps(a)[:40]} (stored) vs {json.dumps(b)[:40]} (key)"]
    return []


def _signature(path: Path) -> tuple:
    """Stat of everything in the folder, subfolders included (name, type, size, mtime, ctime, inode), in name
    order (os.scandir: several times faster than Path.rglob, and a check can run thousands of times)."""
    out = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as it:
            for entry in it:
                st = entry.stat(follow_symlinks=False)
                out.append((prefix + entry.name, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, f"{prefix}{entry.name}/")

    walk(str(path), "")
    return tuple(sorted(out))


def _memo_key(path: Path, kind: str, config: Any) -> tuple:
    blob = None if config is None else json.dumps(to_jsonable(config), sort_keys=True)
    return str(path.resolve()), kind, code_fingerprint(kind), CACHE_VERSION, SMALL_FILE, blob


def forget_verified() -> None:
    """Drop every remembered check (the next check of each entry re-hashes its files)."""
    _VERIFIED.clear()


def check_entry(path: str | Path, kind: str | None = None, config: Any = None, deep: bool = False) -> list[str]:
    """What is wrong with the cache folder `path` ([] = nothing): marker, manifest, stored config (against
    `config` when given, else against the folder name), and every file against the manifest. `deep`
    re-hashes every file (else only files up to SMALL_FILE and files whose size or mtime changed).
    With `kind` given and not `deep`, a check that passed earlier in this process is not repeated while
    nothing in the folder changed (see the module docstring)."""
    path = Path(path)
    if deep or kind is None:
        return _check_entry(path, kind, config, deep)
    key = _memo_key(path, kind, config)
    try:
        before = _signature(path)
    except OSError:
        before = None
    if before is not None and _VERIFIED.get(key) == before:
        return []
    _VERIFIED.pop(key, None)
    start = time.time_ns()
    problems = _check_entry(path, kind, config, deep)
    if not problems and before:
        try:
            after = _signature(path)
        except OSError:
            after = None
        newest = max((max(s[3], s[4]) for s in before), default=start)
        if after == before and newest < start - RACY_NS:
            _VERIFIED[key] = before
    return problems


def _check_entry(path: Path, kind: str | None, config: Any, deep: bool) -> list[str]:
    if not is_complete(path):
        return [f"no {MARKER} marker (an interrupted build)"]
    manifest = read_manifest(path)
    if manifest is None:
        return [f"no readable {MANIFEST}"]
    kind = kind or manifest.get("kind")
    problems = []
    try:
        stored = json.loads((path / RUN_CONFIG).read_text())
    except (OSError, ValueError) as err:
        return [f"{RUN_CONFIG} unreadable ({type(err).__name__})"]
    if config is not None:
        problems += [f"{RUN_CONFIG} differs from the key's config: {d}"
                     for d in _diff(stored, json.loads(json.dumps(to_jsonable(config))))[:5]]
    elif config_hash(stored, kind, manifest.get("numerics") or {}) != path.name:
        if manifest.get("code") != code_fingerprint(kind):
            problems.append(f"stale: built by other code (fingerprint {manifest.get('code')} vs current "
                            f"{code_fingerprint(kind)})")
        else:
            problems.append(f"{RUN_CONFIG} does not hash to the folder name (edited config)")
    if manifest.get("key") != path.name:
        problems.append(f"manifest key {manifest.get('key')} is not the folder name {path.name}")
    present = {p.relative_to(path).as_posix(): p for p in _files(path)}
    for rel, meta in sorted(manifest["files"].items()):
        p = present.pop(rel, None)
        if p is None:
            problems.append(f"{rel} is missing")
            continue
        st = p.stat()
        if st.st_size != meta.get("size"):
            problems.append(f"{rel} has {st.st_size} bytes, recorded {meta.get('size')}")
        elif (deep or st.st_size <= SMALL_FILE or st.st_mtime_ns != meta.get("mtime_ns")) \
                and file_digest(p) != meta.get("sha256"):
            problems.append(f"{rel} content differs from its recorded sha256")
    problems += [f"{rel} is not in the manifest (added after completion)" for rel in sorted(present)]
    return problems


def check_may_build(kind: str, final: Path) -> None:
    """Refuse to build a `kind` entry in a process that may only read that kind (`READ_ONLY_ENV`)."""
    if kind in os.environ.get(READ_ONLY_ENV, "").split(","):
        raise PaperlibError(f"{kind} run {final.name} is not in the cache, and this process may only read {kind} "
                            f"runs ({READ_ONLY_ENV}={os.environ[READ_ONLY_ENV]}: its executor computes them); "
                            "allowed: a run planned through paperlib.engine.executors.run_all before it is read")


def cached_run(kind: str, config: Any, build: Callable[[Path], None], force: bool = False,
               root: str | Path | None = None) -> Path:
    """Return the complete, verified run folder for `config`, calling `build(tmp_dir)` to fill it if needed.

    `build` writes its files into the folder it is given; the config (`run_config.json`), the manifest and
    the marker are written after it returns, then the folder is renamed into place atomically. A complete
    folder that fails `check_entry` is reported (CacheWarning) and rebuilt. Under `accelerate launch` with
    several processes every process builds or none does (see `_cached_run_together`).
    """
    group = _process_group()
    if group is not None:
        return _cached_run_together(kind, config, build, force, root, group)
    return _cached_run_locked(kind, config, build, force, root)


def _cached_run_locked(kind: str, config: Any, build: Callable[[Path], None], force: bool,
                       root: str | Path | None) -> Path:
    final = run_dir(kind, config, root)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _remove_leftovers(final)  # we hold the lock: any temporary folder of this key is a dead process's
        if final.exists() and not force:
            problems = check_entry(final, kind, config)
            if not problems:
                return final
            if is_complete(final):
                warnings.warn(f"cache entry {final} failed its integrity check ({'; '.join(problems)}); "
                              "rebuilding it", CacheWarning, stacklevel=2)
        check_may_build(kind, final)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            with threads.pinned():  # PAPERLIB_THREADS intra-op threads, whatever the caller set (in the key)
                build(tmp)
            (tmp / RUN_CONFIG).write_text(json.dumps(to_jsonable(config), indent=1, sort_keys=True))
            provenance.write(tmp, to_jsonable(config))  # package versions, torch build, device, seeds
            write_manifest(tmp, kind, final.name)
            (tmp / MARKER).write_text("")
            if final.exists():
                old = final.parent / f".{final.name}.old-{os.getpid()}"
                final.rename(old)
                shutil.rmtree(old)
            tmp.rename(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _process_group() -> int | None:
    """This process's rank under `accelerate launch` / torchrun with several processes (the process group is
    set up here if it is not yet: ACCELERATE_USE_CPU=1 for CPU processes), else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    return state.process_index if state.num_processes > 1 else None


def _cached_run_together(kind: str, config: Any, build: Callable[[Path], None], force: bool,
                         root: str | Path | None, rank: int) -> Path:
    """`cached_run` under several processes. A build may train, and the one training loop all-reduces across
    the processes, so every process builds or none does: the main process decides (is the entry complete and
    sound?) and builds into the cache under the lock, the others build the same into a scratch folder, and
    all meet at the end (a process waiting on the lock while the main one trains would deadlock it)."""
    import tempfile

    import torch.distributed as dist

    final = run_dir(kind, config, root)
    decision = [bool(force or not final.exists() or check_entry(final, kind, config))] if rank == 0 else [None]
    dist.broadcast_object_list(decision, src=0)
    if decision[0]:
        check_may_build(kind, final)  # the same answer in every process (one environment)
        if rank == 0:
            _cached_run_locked(kind, config, build, True, root)
        else:
            with tempfile.TemporaryDirectory() as scratch:
                build(Path(scratch))
    dist.barrier()
    return final


def _remove_leftovers(final: Path) -> None:
    for p in final.parent.glob(f".{final.name}.*-*"):
        if _TMP.match(p.name) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------------------- whole-cache tools
def _lock_free(lock_path: Path) -> bool:
    """True if no process holds the build lock of that entry (so its temporaries are orphans)."""
    if not lock_path.exists():
        return True
    with open(lock_path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


def _entries(root: Path) -> Iterator[tuple[str, Path]]:
    if not root.is_dir():
        return
    for kind_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for p in sorted(kind_dir.iterdir()):
            yield kind_dir.name, p


def verify_cache(root: str | Path | None = None, deep: bool = True) -> dict[str, list[str]]:
    """{entry folder: problems} for every entry of the cache that is incomplete, stale or corrupt."""
    out = {}
    for kind, p in _entries(Path(root or cache_root())):
        if p.is_dir() and not p.name.startswith("."):
            problems = check_entry(p, kind, deep=deep)
            if problems:
                out[str(p)] = problems
    return out


def prune_cache(root: str | Path | None = None, dry_run: bool = False) -> list[tuple[str, str]]:
    """Remove (or with `dry_run` only list) what no run will ever serve: temporary folders of dead
    processes (`.KEY.tmp-PID`, `.KEY.old-PID`), incomplete entries, entries of stale code fingerprints,
    and corrupt entries (lock files stay: removing one could let two builders in). Entries being built
    (lock held) are left alone.
    Returns [(path, reason)]."""
    removed = []
    for _, p in _entries(Path(root or cache_root())):
        m = _TMP.match(p.name)
        if m and p.is_dir():
            if _lock_free(p.parent / f".{m['key']}.lock"):
                removed.append((p, "temporary folder of a dead process"))
        elif p.is_dir() and not p.name.startswith("."):
            problems = check_entry(p, deep=False)
            if problems and _lock_free(p.parent / f".{p.name}.lock"):
                removed.append((p, "; ".join(problems)))
    if not dry_run:
        for p, _ in removed:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
    return [(str(p), why) for p, why in removed]
