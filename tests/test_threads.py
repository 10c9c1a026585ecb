"""engine.threads and paperlib.engine.numerics: one thread per process whatever the environment says, the pinned CPU
kernels, and a stage that gives the same bytes whatever OMP_NUM_THREADS is (no timing assertions)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paperlib.engine import cache, numerics, threads
from paperlib.engine.errors import PaperlibError

ROOT = Path(__file__).resolve().parents[1]


def _clean_env(**extra: str) -> dict[str, str]:
    drop = {*threads.ENV_VARS, threads.VAR, numerics.NATIVE_VAR, *numerics.PINNED}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def _python(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(**env), capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return out.stdout.strip()


def test_thread_count_is_one_unless_paperlib_threads_says_otherwise(monkeypatch):
    monkeypatch.delenv(threads.VAR, raising=False)
    assert threads.count() == 1
    monkeypatch.setenv(threads.VAR, "3")
    assert threads.count() == 3 and threads.env() == {threads.VAR: "3", **{k: "3" for k in threads.ENV_VARS}}
    monkeypatch.setattr(threads, "cores", lambda: 8)
    assert threads.default_workers() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(threads.VAR, bad)
        with pytest.raises(PaperlibError, match=f"PAPERLIB_THREADS='{bad}'; allowed: a whole number >= 1"):
            threads.count()


def test_default_workers_fill_the_machine(monkeypatch):
    monkeypatch.delenv(threads.VAR, raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 8)
    assert threads.default_workers() == 8  # 8 cores: 8 kernels of one thread, not 2 of 4


def test_import_pins_one_thread_and_avx2_kernels_whatever_was_exported():
    code = ("import paperlib, torch, os; from paperlib.engine import numerics; "
            "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'], numerics.signature()['cpu_kernels'])")
    out = _python(code, OMP_NUM_THREADS="3", MKL_NUM_THREADS="3").split()
    assert out[:2] == ["1", "1"]
    if "avx2" in numerics.cpu()["flags"]:
        assert out[2] == "AVX2"


def test_native_cpu_opts_out_of_the_pinned_kernels():
    code = "import paperlib, os; print(os.environ.get('ATEN_CPU_CAPABILITY', 'unset'))"
    assert _python(code) == "avx2"
    assert _python(code, PAPERLIB_NATIVE_CPU="1") == "unset"


def test_cache_key_covers_the_numerics(monkeypatch):
    sig = numerics.signature()
    assert set(sig) == {"torch", "device", "cuda", "cpu_kernels", "mkl", "threads"}
    key = cache.config_hash({"a": 1}, "eval")
    assert cache.config_hash({"a": 1}, "eval", sig) == key
    assert cache.config_hash({"a": 1}, "eval", {**sig, "threads": sig["threads"] + 1}) != key
    assert cache.config_hash({"a": 1}, "eval", {**sig, "cpu_kernels": "AVX512"}) != key
    monkeypatch.setenv(threads.VAR, str(threads.count() + 1))
    assert cache.config_hash({"a": 1}, "eval") != key  # another thread count: another entry, never a wrong hit


def test_a_build_runs_at_the_pinned_thread_count(tmp_path):
    import torch

    seen = []
    before, other = torch.get_num_threads(), threads.count() + 1
    torch.set_num_threads(other)
    try:
        cache.cached_run("eval", {"probe": 1}, lambda out: seen.append(torch.get_num_threads()), root=tmp_path)
        assert seen == [threads.count()] and torch.get_num_threads() == other  # restored after the build
    finally:
        torch.set_num_threads(before)
    entry = cache.run_dir("eval", {"probe": 1}, tmp_path)
    assert cache.read_manifest(entry)["numerics"] == numerics.signature()
    provenance = json.loads((entry / "provenance.json").read_text())
    assert provenance["numerics"]["cpu"]["arch"] and "env" in provenance["numerics"]


STAGES = """
import hashlib, json, os, sys
from pathlib import Path
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import unlearn
from paperlib.engine.config import get_profile
P = get_profile("smoke")
folders = [pipeline.benchmark_source(P), pipeline.tokenizer_path(P), pipeline.base_model(P), pipeline.original_model(P),
           str(unlearn.unlearn(P, "NPO", P.benchmark.forget, {"epochs": 1},
                               options=unlearn.RunOptions(progress=False)))]
RECORDS = {"provenance.json", "cache_manifest.json", "COMPLETE"}  # where and when it ran, not results
def untimed(v):  # wall-clock seconds (status.json's timing) are measurements, not results
    if isinstance(v, dict):
        return {k: untimed(x) for k, x in v.items() if not k.endswith("seconds")}
    return [untimed(x) for x in v] if isinstance(v, list) else v
out = {}
for folder in folders:
    for f in sorted(Path(folder).rglob("*")):
        if f.is_file() and f.name not in RECORDS:
            data = f.read_bytes()
            if f.name == "status.json":
                data = json.dumps(untimed(json.loads(data)), sort_keys=True).encode()
            out[f"{Path(folder).parent.name}/{f.relative_to(folder)}"] = hashlib.sha256(data).hexdigest()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_stages_give_the_same_bytes_at_1_and_3_threads(tmp_path):
    """Benchmark, tokenizer, base, original and an NPO run (with its evaluations) in two empty caches, the
    process told OMP_NUM_THREADS=1 and 3: every output file the same bytes. Without the pin (threads.count
    returning the exported value) the models differ at once."""
    runs = {n: json.loads(_python(STAGES, OMP_NUM_THREADS=str(n), PAPERLIB_CACHE=str(tmp_path / f"t{n}"))
                          .splitlines()[-1]) for n in (1, 3)}
    assert runs[1].keys() == runs[3].keys() and any(k.startswith("model/") for k in runs[1])
    differ = [k for k in runs[1] if runs[1][k] != runs[3][k]]
    assert not differ, differ
