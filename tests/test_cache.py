"""Run cache: config hashing, atomic completion, reuse, force, killed builds."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from paperlib import cache


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
