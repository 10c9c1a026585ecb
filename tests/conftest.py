"""Shared fixtures: the real TOFU files and open-unlearning logs live in ../shared/data (never copied here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Tests share the project's run cache, so `make test` and `make reproduce` reuse each other's models.
os.environ.setdefault("PAPERLIB_CACHE", str(ROOT / "runs"))
SHARED = Path(os.environ.get("PAPERLIB_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of the real test data (TOFU sets, span files, open-unlearning logs)."""
    if not SHARED.is_dir():
        pytest.fail(f"shared test data not found at {SHARED}; set PAPERLIB_SHARED_DATA")
    return SHARED
