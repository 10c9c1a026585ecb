"""paperlib.report: paper style, figure and table writers, reference numbers."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from paperlib import report  # noqa: E402

OURS = pd.DataFrame({"method": ["Original", "GA", "PALU"], "FQ": [2.5e-9, 0.031, 0.65],
                     "MU": [0.61, 0.42, 0.6], "epochs": [0, 5, 5]})


def test_save_figure_writes_pdf_and_png_with_same_bytes_on_rerun(tmp_path: Path) -> None:
    with report.paper_style():
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 0, 1], color=report.method_color("PALU"))
    first = report.save_figure(fig, "00_curve", folder=tmp_path / "figures")
    assert [p.name for p in first] == ["00_curve.pdf", "00_curve.png"]
    assert first[0].read_bytes().startswith(b"%PDF") and first[1].read_bytes().startswith(b"\x89PNG")
    pdf, png = first[0].read_bytes(), first[1].read_bytes()
    report.save_figure(fig, "00_curve", folder=tmp_path / "figures")
    assert first[0].read_bytes() == pdf and first[1].read_bytes() == png  # no dates in the metadata
    assert b"CreationDate" not in pdf
    plt.close(fig)
    with pytest.raises(ValueError, match="no extension"):
        report.save_figure(fig, "00_curve.png", folder=tmp_path)


def test_paper_style_is_scoped_and_settable() -> None:
    before = matplotlib.rcParams["font.size"]
    with report.paper_style():
        assert matplotlib.rcParams["font.size"] == report.PAPER_RC["font.size"]
        assert matplotlib.rcParams["pdf.fonttype"] == 42
    assert matplotlib.rcParams["font.size"] == before
    with matplotlib.rc_context():
        report.set_paper_style()
        assert matplotlib.rcParams["axes.labelsize"] == report.PAPER_RC["axes.labelsize"]


def test_method_colours_are_fixed_distinct_and_palu_stands_out() -> None:
    methods = ["GA", "GD", "NPO", "SimNPO", "DPO", "WGA", "TPO", "PDU", "UnDIAL", "Unilogit", "RMU", "CE-U",
               "PALU", "Original", "Retain"]
    assert set(report.METHOD_COLORS) == set(methods)
    assert len(set(report.METHOD_COLORS.values())) == len(methods)
    assert report.method_color("palu") == report.method_color("PALU") == "#d62728"
    assert report.method_color("GradDiff") == report.method_color("GD")
    assert report.method_color("ce_u") == report.method_color("CE-U")
    with pytest.raises(ValueError, match="unknown method 'Foo'; allowed: GA, GD"):
        report.method_color("Foo")
    palette = report.method_palette(x for x in ["NPO", "PALU N=3", "PALU", "NPO"])
    assert palette["NPO"] == report.METHOD_COLORS["NPO"] and palette["PALU"] == "#d62728"
    assert palette["PALU N=3"] == report.FALLBACK_COLORS[0]
    assert report.method_markers(["PALU", "GA"]) == {"PALU": "*", "GA": "o"}


def test_mini_table_is_labelled_and_has_no_paper_numbers(tmp_path: Path) -> None:
    table = report.with_paper_numbers(OURS, "mini")
    assert not any("(paper)" in c for c in table.columns)
    csv, md, tex = report.save_table(table, "01_tofu_main", folder=tmp_path, caption="TOFU forget10")
    assert [p.name for p in (csv, md, tex)] == ["01_tofu_main.csv", "01_tofu_main.md", "01_tofu_main.tex"]
    back = pd.read_csv(csv)
    assert set(back["setting"]) == {"mini benchmark, tiny model"}
    assert back["FQ"].tolist() == OURS["FQ"].tolist()  # full precision in CSV
    text = md.read_text()
    assert text.splitlines()[0] == "**TOFU forget10 — mini benchmark, tiny model**"
    assert "| Original | 2.50e-09 | 0.6100 | 0 |" in text  # p-value in scientific notation
    assert "setting" not in text and "paper" not in text
    latex = tex.read_text()
    assert r"\caption{TOFU forget10 (mini benchmark, tiny model)}" in latex and r"\toprule" in latex
    assert "2.50e-09" in latex and "paper" not in latex


def test_profile_argument_labels_a_plain_table(tmp_path: Path) -> None:
    csv, md, _ = report.save_table(OURS, "05_topk", folder=tmp_path, profile="smoke")
    assert pd.read_csv(csv)["setting"].str.startswith("mini benchmark, tiny model").all()
    assert "mini benchmark, tiny model" in md.read_text().splitlines()[0]
    with pytest.raises(ValueError, match="profile 'big'; allowed: smoke, mini, paper"):
        report.save_table(OURS, "05_topk", folder=tmp_path, profile="big")


def test_paper_profile_puts_reference_numbers_beside_ours(tmp_path: Path) -> None:
    table = report.with_paper_numbers(OURS, "paper")
    assert list(table.columns[:5]) == ["method", "FQ", "FQ (paper)", "MU", "MU (paper)"]
    assert table.loc[2, "FQ (paper)"] == 0.7126 and table.loc[0, "FQ (paper)"] == 5.87e-14
    csv, md, tex = report.save_table(table, "01_tofu_main", folder=tmp_path, profile="paper")
    assert pd.read_csv(csv)["FQ (paper)"].tolist() == [5.87e-14, 5.95e-11, 0.7126]
    assert "| PALU | 0.6500 | 0.7126 | 0.6000 | 0.6238 | 5 |" in md.read_text()
    assert "mini" not in md.read_text() and "mini" not in tex.read_text()
    ou = report.with_paper_numbers(OURS, "paper", split="forget10")
    assert ou.loc[0, "FQ (open-unlearning)"] == 4.35e-25 and math.isnan(ou.loc[1, "FQ (open-unlearning)"])


def test_mini_numbers_are_never_shown_as_the_papers(tmp_path: Path) -> None:
    table = report.with_paper_numbers(OURS, "paper").drop(columns="setting")
    with pytest.raises(ValueError, match="mini numbers are never shown beside the paper's"):
        report.save_table(table, "01_tofu_main", folder=tmp_path, profile="mini")
    with pytest.raises(ValueError, match="expected one value starting with 'mini benchmark"):
        report.save_table(report.with_paper_numbers(OURS, "paper"), "x", folder=tmp_path, profile="mini")
    with pytest.raises(ValueError, match="profile 'big'"):
        report.with_paper_numbers(OURS, "big")
    with pytest.raises(ValueError, match="column 'name'"):
        report.with_paper_numbers(OURS, "paper", on="name")
    with pytest.raises(ValueError, match="split 'forget01' has no reference numbers; allowed: forget05, forget10"):
        report.with_paper_numbers(OURS, "paper", split="forget01")


def test_paper_numbers_hold_the_reference_values() -> None:
    ref = report.paper_numbers()
    palu = ref[(ref.source == "PALU") & (ref.method == "PALU")].iloc[0]
    original = ref[(ref.source == "PALU") & (ref.method == "Original")].iloc[0]
    assert palu["FQ"] == 0.7126 and palu["Rw-TR"] == 0.6069 and palu["split"] == "forget05"
    assert original["FQ"] == 5.87e-14 and original["EM"] == 0.9988
    ga = ref[(ref.source == "PALU") & (ref.method == "GA")].iloc[0]
    assert ga["MU"] == 0.558 and math.isnan(ga["Fluency"])
    assert list(ref[ref.source == "PALU"].method) == ["Original", "Retain", "GA", "GD", "DPO", "NPO", "SimNPO",
                                                      "PDU", "TPO", "PALU"]
    simnpo = ref[(ref.source == "open-unlearning") & (ref.method == "SimNPO")].iloc[0]
    assert simnpo["FQ"] == 1.47e-198 and simnpo["split"] == "forget10"
    assert list(ref.columns[4:]) == ["FQ", "MU", "Fluency", "EM", "F-TR", "Ra-TR", "R-TR", "Rw-TR"]


@pytest.mark.parametrize("value, text", [(5.87e-14, "5.87e-14"), (0.7126, "0.7126"), (1.0, "1.0000"),
                                         (12.345, "12.35"), (12345.6, "12346"), (3, "3"), (float("nan"), ""),
                                         (None, ""), (0.0, "0"), ("GA", "GA"), (-2e-4, "-2.00e-04")])
def test_format_number(value, text) -> None:
    assert report.format_number(value) == text


def test_markdown_escapes_and_marks_missing() -> None:
    md = report.to_markdown(pd.DataFrame({"a|b": ["x|y"], "v": [float("nan")]}))
    assert md.splitlines() == ["| a\\|b | v |", "|:---|---:|", "| x\\|y | – |"]


def test_a_saved_spread_says_what_it_is_over(tmp_path: Path) -> None:
    table = pd.DataFrame({"method": ["PALU"], "FQ": [0.5], "FQ sd": [0.1]})
    with pytest.raises(ValueError, match="names the spread"):
        report.save_table(table, "x", folder=tmp_path, caption="PALU (mean ± sd)", profile="mini")
    md = report.save_table(table, "x", folder=tmp_path, caption="PALU (mean ± sd over seeds)", profile="mini")[1]
    assert "0.5000 ± 0.1000" in md.read_text() and "mean ± sd over seeds" in md.read_text()
    report.save_table(table.drop(columns="FQ sd"), "y", folder=tmp_path, profile="mini")  # no spread, no caption


def test_save_note_writes_one_markdown_paragraph(tmp_path):
    from paperlib import report

    path = report.save_note("  A sentence.\n", "01_frontier", tmp_path)
    assert path == tmp_path / "01_frontier.md" and path.read_text() == "A sentence.\n"
    with pytest.raises(ValueError, match="output name"):
        report.save_note("x", "../escape", tmp_path)
