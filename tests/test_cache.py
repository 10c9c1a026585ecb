"""Run cache: config hashing, atomic completion, reuse, force, killed builds; integrity checks (issue 11)."""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from paperlib.engine import cache
from paperlib.engine.errors import CacheWarning


@dataclass(frozen=True)
class Cfg:
    lr: float = 1e-3
    name: str = "a"


def test_hash_is_stable_and_sensitive():
    assert cache.config_hash(Cfg()) == cache.config_hash(Cfg())
    assert cache.config_hash(Cfg()) == cache.config_hash({"lr": 1e-3, "name": "a"})
    assert cache.config_hash(Cfg(lr=2e-3)) != cache.config_hash(Cfg())
    assert len(cache.config_hash(Cfg())) == 16


def test_build_once_then_reuse_then_force(tmp_path):
    calls = []

    def build(out):
        calls.append(out)
        (out / "result.txt").write_text(str(len(calls)))

    first = cache.cached_run("kind", Cfg(), build, root=tmp_path)
    again = cache.cached_run("kind", Cfg(), build, root=tmp_path)
    assert first == again and len(calls) == 1 and cache.is_complete(first)
    assert json.loads((first / cache.RUN_CONFIG).read_text()) == {"lr": 1e-3, "name": "a"}
    forced = cache.cached_run("kind", Cfg(), build, root=tmp_path, force=True)
    assert forced == first and (forced / "result.txt").read_text() == "2"
    assert [p.name for p in (tmp_path / "kind").iterdir() if not p.name.endswith(".lock")] == [first.name]


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path):
    def broken(out):
        (out / "half.txt").write_text("partial")
        raise KeyboardInterrupt  # a killed run

    with pytest.raises(KeyboardInterrupt):
        cache.cached_run("kind", Cfg(), broken, root=tmp_path)
    final = cache.run_dir("kind", Cfg(), root=tmp_path)
    assert not final.exists() and not cache.is_complete(final)
    assert not [p for p in (tmp_path / "kind").iterdir() if ".tmp-" in p.name]
    # a later run builds it for real
    done = cache.cached_run("kind", Cfg(), lambda out: (out / "ok").write_text("1"), root=tmp_path)
    assert cache.is_complete(done) and (done / "ok").is_file()


def test_folder_without_marker_is_rebuilt(tmp_path):
    final = cache.run_dir("kind", Cfg(), root=tmp_path)
    final.mkdir(parents=True)
    (final / "stale.txt").write_text("from a run killed before the marker")
    out = cache.cached_run("kind", Cfg(), lambda o: (o / "fresh.txt").write_text("1"), root=tmp_path)
    assert (out / "fresh.txt").is_file() and not (out / "stale.txt").exists()


# ----------------------------------------------------------------------------------------- integrity (issue 11)
def _weights_build(out):
    (out / "model.safetensors").write_bytes(b"w" * 4096)
    (out / "result.json").write_text('{"fq": 0.5}')


def _entry(tmp_path, cfg=Cfg()):
    return cache.cached_run("kind", cfg, _weights_build, root=tmp_path)


def _rebuilds(tmp_path, cfg=Cfg()) -> bool:
    calls = []

    def build(out):
        calls.append(1)
        _weights_build(out)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        cache.cached_run("kind", cfg, build, root=tmp_path)
    return len(calls) == 1


def test_edited_config_is_detected_and_rebuilt(tmp_path):
    path = _entry(tmp_path, Cfg(lr=1e-3))
    stored = json.loads((path / cache.RUN_CONFIG).read_text())
    (path / cache.RUN_CONFIG).write_text(json.dumps({**stored, "lr": 0.5}))
    assert any("lr: 0.5 (stored) vs 0.001 (key)" in p for p in cache.check_entry(path, "kind", Cfg(lr=1e-3)))
    with pytest.warns(CacheWarning, match=f"{path.name}.*lr: 0.5"):
        again = cache.cached_run("kind", Cfg(lr=1e-3), _weights_build, root=tmp_path)
    assert json.loads((again / cache.RUN_CONFIG).read_text())["lr"] == 1e-3 and not cache.check_entry(again)


def test_truncated_weights_are_detected_and_rebuilt(tmp_path):
    path = _entry(tmp_path)
    (path / "model.safetensors").write_bytes(b"w" * 100)
    assert cache.check_entry(path) == ["model.safetensors has 100 bytes, recorded 4096"]
    with pytest.warns(CacheWarning, match="model.safetensors has 100 bytes"):
        cache.cached_run("kind", Cfg(), _weights_build, root=tmp_path)
    assert (path / "model.safetensors").stat().st_size == 4096


def test_same_size_edit_of_a_small_file_is_detected(tmp_path):
    path = _entry(tmp_path)
    (path / "result.json").write_text('{"fq": 0.9}')
    assert cache.check_entry(path) == ["result.json content differs from its recorded sha256"]
    assert _rebuilds(tmp_path)


def test_large_file_checked_by_stored_digest_when_touched(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "SMALL_FILE", 10)  # every file counts as large here
    path = _entry(tmp_path)
    weights = path / "model.safetensors"
    assert cache.check_entry(path) == []
    weights.write_bytes(b"x" * 4096)  # same size, new mtime: re-hashed against the stored digest
    assert cache.check_entry(path) == ["model.safetensors content differs from its recorded sha256"]


def test_missing_marker_manifest_or_file_means_rebuild(tmp_path):
    path = _entry(tmp_path)
    (path / cache.MARKER).unlink()
    assert "no COMPLETE marker" in cache.check_entry(path)[0]
    assert _rebuilds(tmp_path) and cache.check_entry(path) == []
    (path / cache.MANIFEST).unlink()
    assert cache.check_entry(path) == [f"no readable {cache.MANIFEST}"]
    assert _rebuilds(tmp_path)
    (path / "result.json").unlink()
    assert cache.check_entry(path) == ["result.json is missing"]
    (path / "extra.txt").write_text("x")
    assert "extra.txt is not in the manifest (added after completion)" in cache.check_entry(path)


def test_key_covers_the_code_of_that_kind(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "losses.py").write_text("A = 1\n")
    (pkg / "report.py").write_text("B = 1\n")
    (pkg / "data" / "encoding.py").write_text("C = 1\n")
    monkeypatch.setattr(cache, "PACKAGE", pkg)
    monkeypatch.setitem(cache.CODE, "kind", ("losses", "data/encoding"))
    before = cache.run_dir("kind", Cfg(), root=tmp_path)
    (pkg / "report.py").write_text("B = 2  # unrelated edit\n")
    assert cache.run_dir("kind", Cfg(), root=tmp_path) == before
    (pkg / "losses.py").write_text("A = 2  # a changed loss\n")
    changed = cache.run_dir("kind", Cfg(), root=tmp_path)
    assert changed != before
    assert cache.run_dir("other", Cfg(), root=tmp_path).name != changed.name  # kinds never share keys


STUDY_KINDS = ("loss-timing", "kl-analysis", "loc-study")  # caches of a study's own results
STUDY_CODE = ("engine/executors", "benchmarks")  # the study side: these, paperlib/studies/* and the plug-ins


def test_no_trained_or_evaluated_result_is_keyed_by_study_code():
    """Models, benchmarks, evaluations and unlearning runs (TOFU, and MUSE / RWKU through their evaluator's code)
    cover no study module and no benchmark plug-in (`paperlib.benchmarks`): the protocol, a plug-in, a table or
    a figure can change without re-keying a trained run."""
    from paperlib.benchmarks.muse import evaluate as muse  # noqa: F401 (registers the "muse" evaluator)
    from paperlib.benchmarks.rwku import evaluate as rwku  # noqa: F401 (registers the "rwku" evaluator)
    from paperlib.engine import corpus

    def study_side(modules, own=()):
        return sorted(m for m in modules if m not in own and (m.startswith("studies/") or m.endswith("/plugin")
                                                               or m in STUDY_CODE))

    for kind in set(cache.CODE) - set(STUDY_KINDS):  # a stage that trains (injection) may sit beside its study
        assert not study_side(cache.code_modules(kind), own=cache.CODE[kind]), kind
    for name in ("muse", "rwku"):
        own = Path(corpus.get_evaluator(name).__code__.co_filename).resolve().relative_to(cache.PACKAGE)
        assert not study_side(cache.closure((own.with_suffix("").as_posix(), *corpus.EVALUATOR_CODE[name]))), name
    assert study_side(cache.code_modules("loc-study"))  # the rule sees study code where it is there


def test_no_import_circle():
    """The import graph the fingerprints follow (function-level imports included) has no circle: a module's
    closure never comes back to it through another module."""
    names = sorted(f.relative_to(cache.PACKAGE).with_suffix("").as_posix().removesuffix("/__init__")
                   for f in cache.PACKAGE.rglob("*.py") if f.parent != cache.PACKAGE or f.name != "__init__.py")
    graph = {m: cache._imports(m) - {m} for m in names}
    circles = [m for m in names if any(m in _reach(graph, d) for d in graph[m])]
    assert not circles, circles


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += graph.get(m, set())
    return seen


def test_stale_fingerprint_and_orphans_are_pruned(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "losses.py").write_text("A = 1\n")
    monkeypatch.setattr(cache, "PACKAGE", pkg)
    monkeypatch.setitem(cache.CODE, "kind", ("losses",))
    root = tmp_path / "runs"
    old = _entry(root)
    (pkg / "losses.py").write_text("A = 2\n")
    new = _entry(root)
    assert new != old
    orphan = root / "kind" / f".{new.name}.tmp-999999"  # a killed build's folder
    orphan.mkdir()
    (orphan / "half").write_text("x")
    incomplete = root / "kind" / "0123456789abcdef"
    incomplete.mkdir()
    assert set(cache.verify_cache(root)) == {str(old), str(incomplete)}
    assert "stale" in cache.verify_cache(root)[str(old)][0]
    listed = cache.prune_cache(root, dry_run=True)
    assert {p for p, _ in listed} == {str(old), str(orphan), str(incomplete)}
    assert old.exists() and orphan.exists()  # dry run removes nothing
    cache.prune_cache(root)
    assert not old.exists() and not orphan.exists() and not incomplete.exists() and new.exists()
    assert cache.verify_cache(root) == {}


def test_leftover_temporaries_of_a_key_are_removed_on_the_next_build(tmp_path):
    final = cache.run_dir("kind", Cfg(), root=tmp_path)
    final.parent.mkdir(parents=True)
    orphan = final.parent / f".{final.name}.tmp-999999"
    orphan.mkdir()
    _entry(tmp_path)
    assert not orphan.exists()


# ----------------------------------------------------------------------------------------- remembered checks (issue 15)
def _count_digests(monkeypatch) -> list:
    calls = []
    real = cache.file_digest

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(cache, "file_digest", counting)
    return calls


def _settled(monkeypatch):
    """Remember checks of entries as soon as their files are older than the check (no 2 s wait); the sleeps
    put a few clock ticks between build, check and edit."""
    monkeypatch.setattr(cache, "RACY_NS", 0)
    time.sleep(0.05)


def test_a_passed_check_is_remembered_but_a_tampered_entry_is_still_refused(tmp_path, monkeypatch):
    path = _entry(tmp_path)
    _settled(monkeypatch)
    digests = _count_digests(monkeypatch)
    assert cache.check_entry(path, "kind", Cfg()) == [] and digests  # first check: hashes the files
    digests.clear()
    assert cache.check_entry(path, "kind", Cfg()) == [] and not digests  # unchanged: remembered
    time.sleep(0.05)
    result = path / "result.json"
    st = result.stat()
    result.write_text('{"fq": 0.9}')  # same size, and the mtime put back: only the ctime tells
    os.utime(result, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert result.stat().st_mtime_ns == st.st_mtime_ns and result.stat().st_size == st.st_size
    assert cache.check_entry(path, "kind", Cfg()) == ["result.json content differs from its recorded sha256"]
    assert cache.check_entry(path, "kind", Cfg()) == ["result.json content differs from its recorded sha256"]
    with pytest.warns(CacheWarning, match="result.json content differs"):
        cache.cached_run("kind", Cfg(), _weights_build, root=tmp_path)
    assert cache.check_entry(path, "kind", Cfg()) == []


def test_a_remembered_check_notices_added_removed_and_replaced_files(tmp_path, monkeypatch):
    path = _entry(tmp_path)
    _settled(monkeypatch)
    assert cache.check_entry(path, "kind", Cfg()) == []
    (path / "extra.txt").write_text("x")
    assert "extra.txt is not in the manifest (added after completion)" in cache.check_entry(path, "kind", Cfg())
    (path / "extra.txt").unlink()
    time.sleep(0.05)
    assert cache.check_entry(path, "kind", Cfg()) == []
    weights = path / "model.safetensors"
    st = weights.stat()
    spare = path.parent / "spare"
    spare.write_bytes(b"x" * 4096)
    os.utime(spare, ns=(st.st_atime_ns, st.st_mtime_ns))
    spare.replace(weights)  # same name, size and mtime: another file (inode)
    assert cache.check_entry(path, "kind", Cfg()) == ["model.safetensors content differs from its recorded sha256"]
    (path / "result.json").unlink()
    assert cache.check_entry(path, "kind", Cfg())[0] == "model.safetensors content differs from its recorded sha256"


def test_a_remembered_check_is_per_config_and_never_replaces_a_deep_one(tmp_path, monkeypatch):
    path = _entry(tmp_path)
    _settled(monkeypatch)
    assert cache.check_entry(path, "kind", Cfg()) == []
    assert any("name" in p for p in cache.check_entry(path, "kind", Cfg(name="b")))  # another config: checked
    digests = _count_digests(monkeypatch)
    assert cache.check_entry(path, "kind", Cfg(), deep=True) == [] and digests  # deep: always re-hashed
    digests.clear()
    assert cache.check_entry(path, "kind", Cfg()) == [] and not digests
    cache.forget_verified()
    assert cache.check_entry(path, "kind", Cfg()) == [] and digests


def test_a_fresh_entry_is_not_remembered(tmp_path, monkeypatch):
    """Files written less than RACY_NS before a check could change again within the same clock tick: such a
    check is not remembered (the next one hashes again)."""
    path = _entry(tmp_path)
    digests = _count_digests(monkeypatch)
    assert cache.check_entry(path, "kind", Cfg()) == [] and digests
    digests.clear()
    assert cache.check_entry(path, "kind", Cfg()) == [] and digests


def test_the_suite_never_writes_into_the_project_run_cache():
    """The tests' cache is their own (tests/conftest.py): `make test` before `make reproduce` changes nothing of
    what the committed tables are computed from."""
    from paperlib.engine import paths

    assert cache.cache_root().resolve() != paths.runs_dir().resolve()
    assert not cache.cache_root().resolve().is_relative_to(paths.runs_dir().resolve())


def test_every_cached_run_call_site_is_in_its_kinds_fingerprint():
    """The module that builds an entry (where `cached_run(kind, ...)` is called) is covered by that kind's code
    fingerprint, so an edit to the build itself re-keys it (the tokenizer's corpus, assembled in pipeline.py,
    once was not)."""
    import ast
    import importlib

    sites = []
    for f in sorted(cache.PACKAGE.rglob("*.py")):
        module = f.relative_to(cache.PACKAGE).with_suffix("").as_posix()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "cached_run" and node.args:
                arg = node.args[0]
                kind = arg.value if isinstance(arg, ast.Constant) else getattr(
                    importlib.import_module("paperlib." + module.replace("/", ".")), arg.id)
                sites.append((module, kind))
    assert len(sites) >= 15 and {k for _, k in sites} <= set(cache.CODE)
    assert [(m, k) for m, k in sites if m not in cache.code_modules(k)] == []


def test_fingerprint_follows_imports_but_not_inert_modules():
    mods = cache.code_modules("model")
    assert {"benchmarks/tofu/pipeline", "engine/train", "engine/models", "benchmarks/tofu/mini",
            "engine/encoding"} <= set(mods)
    assert not set(mods) & cache.INERT
    assert "report" not in cache.code_modules("unlearn")  # editing a figure re-keys no training run
    assert "studies/calibration" not in cache.code_modules("loss-timing")  # notebook 00's analysis, not cached


def test_source_code_drops_docstrings_comments_and_layout_only(tmp_path):
    """What a fingerprint reads of a file: the same for sources that differ in docstrings, comments and line
    breaks; different for any other change, a string constant that is not a docstring included."""
    def read(text: str) -> bytes:
        (tmp_path / "m.py").write_text(text)
        return cache.source_code(tmp_path / "m.py")

    base = read('"""Module."""\n\ndef f(x):\n    """Doc."""\n    return x + 1\n\n\nclass C:\n    """Doc."""\n')
    assert read("def f(x):  # comment\n    return (x +\n            1)\n\n\nclass C:\n    pass\n") == base
    assert read('"""Other."""\ndef f(x):\n    """Other."""\n    return x + 1\nclass C:\n    """Other."""\n') == base
    assert read('"""Module."""\ndef f(x):\n    """Doc."""\n    return x + 2\nclass C:\n    pass\n') != base
    assert read('def f(x):\n    "Doc."\n    "a string"\n    return x + 1\nclass C:\n    pass\n') != base


def test_fingerprint_is_the_digest_of_the_sources_and_follows_an_edit(tmp_path, monkeypatch):
    """The fingerprint hashes the closure's sources (computed here by hand); an edit of a module in the closure
    changes it at once, an edit of an inert module (report) does not."""
    import hashlib
    import shutil

    copy = tmp_path / "paperlib"
    shutil.copytree(cache.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cache, "PACKAGE", copy)

    def by_hand(kind: str) -> str:
        h = hashlib.sha256()
        for name in cache.code_modules(kind):
            files = cache._module_files(name)
            h.update(f"module {name}: {len(files)} file(s)\n".encode())
            for f in files:
                h.update(f"{f.relative_to(copy)}\n".encode() + cache.source_code(f))
        return h.hexdigest()[:16]

    before = cache.code_fingerprint("unlearn")
    assert before == by_hand("unlearn")
    with open(copy / "report" / "__init__.py", "a") as f:
        f.write("INERT_EDIT = 1\n")
    assert cache.code_fingerprint("unlearn") == before
    losses = copy / "methods" / "losses.py"
    losses.write_text(losses.read_text().replace('"""', '"""Reworded. ', 1) + "# a comment\n")
    assert cache.code_fingerprint("unlearn") == before  # a docstring or a comment is not code
    with open(losses, "a") as f:
        f.write("AN_EDIT = 1\n")
    after = cache.code_fingerprint("unlearn")
    assert after != before and after == by_hand("unlearn")
