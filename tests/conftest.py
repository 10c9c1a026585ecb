"""Shared fixtures: the real TOFU files and open-unlearning logs live in ../shared/data (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The tests' own run cache (kept between sessions, ignored by git), never the project's runs/: a test may build
# entries `make reproduce` never would (toy methods, patched settings), and what the committed tables come from
# must not depend on whether `make test` ran first. PAPERLIB_TEST_CACHE moves it (an exported PAPERLIB_CACHE does not).
TEST_CACHE = Path(os.environ.get("PAPERLIB_TEST_CACHE") or ROOT / ".test-runs")
os.environ["PAPERLIB_CACHE"] = str(TEST_CACHE)
# The suite checks correctness, not the committed bytes (its cache is its own): it computes with every core
# (PAPERLIB_THREADS, part of its cache keys) instead of one thread per process, which halves its time on 2 cores.
# Tests of the one-thread default run their code in subprocesses without it (tests/test_threads.py).
os.environ.setdefault("PAPERLIB_THREADS", str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                              else os.cpu_count() or 1))
SHARED = Path(os.environ.get("PAPERLIB_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real test data (TOFU sets, span files, open-unlearning logs)."""
    if not SHARED.is_dir():
        pytest.fail(f"shared test data not found at {SHARED}; set PAPERLIB_SHARED_DATA")
    return SHARED
