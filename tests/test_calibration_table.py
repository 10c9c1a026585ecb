"""Notebook 00's fidelity table (`calibration.fidelity_table`) on the published Llama-2 forget05 logs, and the
reference lines and published points of the FQ / MU figures (`paperlib.report.plots`)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from paperlib import report
from paperlib.engine import paths
from paperlib.methods.tuning import MU_FRACTION
from paperlib.report import plots
from paperlib.studies import calibration
from paperlib.studies.claims import FORGOTTEN_P

matplotlib.use("Agg")


def test_fidelity_table_of_the_real_pair_against_itself(shared_data):
    real = calibration.real_statistics(shared_data)
    assert real is not None
    table = calibration.fidelity_table(real, real)
    assert list(table.columns) == ["statistic", "mini", "real", "target", "met"]
    assert len(table) == len(calibration.targets(real, real))
    assert (table["mini"] == table["real"]).all() and (table["met"] == "yes").all()
    by = table.set_index("statistic")["real"]
    # hand-checkable: the published pair's numbers (shared/spec/benchmarks.md, PALU Table 1's F-TR columns)
    assert by["KS distance original vs retain"] == pytest.approx(0.39)
    assert by["forget truth ratio, original"] == pytest.approx(0.5113, abs=1e-4)
    assert by["forget truth ratio, retain"] == pytest.approx(0.6696, abs=1e-4)
    assert by["forget paraphrase prob, original"] == pytest.approx(0.1013, abs=1e-4)
    assert real["retain_para_prob"] == pytest.approx(0.0626, abs=1e-4)
    assert by["paraphrase prob original / retain"] == pytest.approx(0.1013 / 0.0626, rel=1e-3)
    assert table.set_index("statistic").loc["KS distance original vs retain", "target"] == "[0.292, 0.488]"


def test_fidelity_table_says_which_targets_fail(shared_data):
    real = calibration.real_statistics(shared_data)
    mini = {**real, "ks_distance": 0.1}  # far below 75% of the real 0.39
    met = calibration.fidelity_table(mini, real).set_index("statistic")["met"]
    assert met["KS distance original vs retain"] == "no" and (met.drop("KS distance original vs retain") == "yes").all()


def test_real_statistics_without_the_shared_data(tmp_path, monkeypatch):
    assert calibration.real_statistics(tmp_path) is None
    monkeypatch.setenv(paths.SHARED_DATA_ENV, str(tmp_path))
    assert paths.shared_data_dir() == tmp_path and calibration.real_statistics() is None


def test_published_frontier_is_the_palu_table():
    pub = calibration.published_frontier().set_index("method")
    ref = report.paper_numbers().query("source == 'PALU'").set_index("method")
    assert list(pub.index) == ["GA", "GD", "DPO", "NPO", "SimNPO", "PDU", "TPO", "PALU"]
    assert (pub["FQ"] == ref.loc[pub.index, "FQ"]).all()
    assert pub.loc["NPO", "MU fraction"] == pytest.approx(ref.loc["NPO", "MU"] / ref.loc["Original", "MU"])


# ------------------------------------------------------------------------------------------------ figures

REFS = pd.DataFrame({"method": ["Original", "Retain"], "FQ": [1e-30, 1.0], "MU": [0.8, 0.79]})


def _hlines(ax) -> list[float]:
    """The y of every horizontal line spanning the axes (axhline)."""
    return [float(line.get_ydata()[0]) for line in ax.get_lines()
            if list(line.get_xdata()) == [0, 1] and len(set(line.get_ydata())) == 1]


def _vlines(ax) -> list[float]:
    return [float(line.get_xdata()[0]) for line in ax.get_lines()
            if list(line.get_ydata()) == [0, 1] and len(set(line.get_xdata())) == 1]


def _sweep() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [{"label": label, "method": label, "lr": lr, "epoch": e, "status": "completed",
             "FQ": 10.0 ** -(10 * e), "MU": 0.8 - 0.05 * e}
            for label in ("GA", "NPO", "WGA", "PALU") for lr in (1e-4, 1e-3) for e in (1, 2)]
    sweep = pd.DataFrame(rows)
    return sweep, sweep[(sweep["lr"] == 1e-4) & (sweep["epoch"] == 1)]


def test_frontier_draws_the_published_points_on_the_mu_fraction_axis():
    sweep, selected = _sweep()
    pub = calibration.published_frontier()
    fig = plots.frontier(sweep, selected, 0.8, references=REFS, published=pub)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    assert list(panels) == ["GA", "NPO", "WGA", "PALU"]
    for name, ax in panels.items():
        marks = [c for c in ax.collections if c.get_label() == "published"]
        if name == "WGA":  # no published number
            assert not marks
            continue
        (mark,) = marks
        expected = pub.set_index("method").loc[name]
        assert mark.get_offsets().tolist() == [[pytest.approx(expected["MU fraction"]), pytest.approx(expected["FQ"])]]
        assert FORGOTTEN_P in _hlines(ax) and 1e-20 in _hlines(ax)  # the original's 1e-30, on the floor
        assert _vlines(ax) == [MU_FRACTION]
        # the sweep's points are drawn at MU / MU(original)
        xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections if c.get_label() != "published"])
        assert set(np.round(xs, 6)) == {0.9375, 0.875}  # MU 0.75 and 0.7 of 0.8
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "forgotten" in legend and plots.PUBLISHED in legend
    fig.clf()
    no_published = plots.frontier(sweep, selected, 0.8, MU_FRACTION)  # the old call still works
    assert not [c for ax in no_published.axes for c in ax.collections if c.get_label() == "published"]


def test_fq_figures_mark_forgotten_the_original_and_the_mu_floor():
    sweep, selected = _sweep()
    seeds = selected.assign(seed=0)
    ax = plots.fq_mu_scatter(seeds, REFS).axes[0]
    assert FORGOTTEN_P in _hlines(ax) and _vlines(ax) == [pytest.approx(MU_FRACTION * 0.8)]
    assert any(t.get_text().startswith("forgotten") for t in ax.get_legend().get_texts())
    curves = sweep.drop(columns="method").rename(columns={"label": "method"})
    fig = plots.metric_lines(curves, "epoch", ["FQ", "MU"], hue="method", references=REFS)
    fq, mu = fig.axes[:2]
    assert FORGOTTEN_P in _hlines(fq) and 1e-30 in _hlines(fq)
    assert _hlines(mu) == [pytest.approx(MU_FRACTION * 0.8)]
    assert FORGOTTEN_P in _hlines(plots.metric_lines(curves, "epoch", ["FQ"]).axes[0])  # without references too
    long = pd.concat([pd.DataFrame({"method": sweep["label"], "metric": m, "value": sweep[m]}) for m in ("FQ", "MU")])
    fq, mu = plots.bars(long, references=REFS).axes[:2]
    assert FORGOTTEN_P in _hlines(fq) and _hlines(mu) == [pytest.approx(MU_FRACTION * 0.8)]
