"""paperlib.threads: parallel workers split the cores, exported values win (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

from paperlib import threads


def test_workers_split_the_cores(monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 8)
    assert [threads.per_worker(w) for w in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert threads.env(2, environ={}) == {k: "4" for k in threads.ENV_VARS}
    assert threads.env(2, environ={"OMP_NUM_THREADS": "3"}) == {k: "3" for k in threads.ENV_VARS}
    assert threads.env(2, environ={"MKL_NUM_THREADS": "5"})["MKL_NUM_THREADS"] == "5"


def test_configure_binds_torch_in_a_fresh_process():
    code = ("import os; from paperlib import threads; n = threads.configure(2); import torch; "
            "print(n, torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])")
    env = {k: v for k, v in os.environ.items() if k not in threads.ENV_VARS}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    n = max(1, threads.cores() // 2)
    assert out.stdout.split() == [str(n), str(n), str(n)]


def test_configure_sets_an_already_imported_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    for k in threads.ENV_VARS:
        monkeypatch.setenv(k, "")  # restored (or removed) after the test, like everything configure sets
    try:
        assert threads.configure(threads.cores()) == 1
        assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)
