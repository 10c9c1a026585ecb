"""What a warm reproduce (every run cached) still pays per notebook (issue 15): notebook 07's loss timing is
measured once per code version and machine, kept in the run cache and re-read by a warm run, measured again on
request or on another machine / thread count; a notebook kernel's imports leave out what it never uses.
(The remembered cache checks: tests/test_cache.py.)"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from paperlib.engine import cache
from paperlib.studies import timing

ARGS = ([1, 4], [16], 4, 2)  # ks, vocab sizes, tokens, repeats: a few milliseconds


@pytest.fixture
def timings(tmp_path, monkeypatch):
    """Count the real measurements; the run cache in a temporary folder."""
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path))
    calls = []
    real = timing.loss_timing

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(timing, "loss_timing", counting)
    return calls


def _timing(force=False):
    ks, vocab, tokens, repeats = ARGS
    return timing.cached_loss_timing(ks, vocab, tokens=tokens, repeats=repeats, force=force)


def test_a_warm_run_rereads_the_timing_it_measured(timings, tmp_path):
    table, measured = _timing()
    assert len(timings) == 1 and list(table.columns) == ["V", "K", "loss", "ms", "ms sd"]
    again, measured_again = _timing()
    assert len(timings) == 1  # not measured again
    pd.testing.assert_frame_equal(table, again)
    assert measured == measured_again and measured["torch"] == torch.__version__
    assert measured["threads"] == torch.get_num_threads() and measured["measured_at"].endswith("UTC")
    (entry,) = [p for p in (tmp_path / timing.LOSS_TIMING).iterdir() if not p.name.startswith(".")]
    assert cache.check_entry(entry, timing.LOSS_TIMING, deep=True) == []


def test_force_and_another_machine_measure_again(timings, monkeypatch):
    _timing()
    _timing(force=True)
    assert len(timings) == 2
    real = timing.machine_identity
    monkeypatch.setattr(timing, "machine_identity", lambda: {**real(), "threads": real()["threads"] + 1})
    _, measured = _timing()
    assert len(timings) == 3 and measured["threads"] == torch.get_num_threads() + 1


def test_the_timing_key_covers_the_loss_code():
    assert {"methods/losses", "studies/timing"} <= set(cache.code_modules(timing.LOSS_TIMING))


def test_timing_note_says_when_and_where():
    note = timing.timing_note({"measured_at": "2026-11-23 21:30 UTC", "cpu": "Some CPU", "threads": 1,
                                    "torch": "2.13.0"})
    assert note == "measured 2026-11-23 21:30 UTC on Some CPU, 1 thread, torch 2.13.0"


def test_notebook_imports_leave_out_nbformat():
    """nbformat (with its JSON-schema validator ~0.9 s) is only needed to collect claims from executed copies."""
    code = ("import sys; from paperlib import report; from paperlib.methods import tuning; "
            "from paperlib.report import plots; from paperlib.studies import claims, palu; "
            "print('nbformat' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
