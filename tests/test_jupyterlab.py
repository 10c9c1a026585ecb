"""The JupyterLab experience (issue 9): outputs and the run cache resolve from the project root whatever the
working directory; notebooks open as papers (title first, then parameters, the same sections everywhere,
metadata JupyterLab would not rewrite); tables shown formatted; a notebook run as JupyterLab runs it
(kernel in notebooks/, no PAPERLIB_CACHE) reuses the project's runs and writes the project's figures/."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from paperlib import report
from paperlib.engine import cache, paths

sys.path.insert(0, str(ROOT / "tools"))
import make_notebook  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SECTIONS = ("## Computation", "## Outputs", "## What we see")


def _project(folder: Path) -> Path:
    """A minimal paperlib project folder: pyproject.toml, notebooks/, empty figures/ and tables/."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "figures").mkdir()
    (folder / "tables").mkdir()
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    return folder


# ------------------------------------------------------------------------------------------------ paths

def test_project_root_from_any_working_directory(tmp_path, monkeypatch):
    copy = _project(tmp_path / "copy")
    monkeypatch.chdir(copy / "notebooks")
    assert paths.project_root() == copy.resolve()
    assert paths.figures_dir("") == copy.resolve() / "figures"
    assert paths.tables_dir(None) == copy.resolve() / "tables"
    assert paths.figures_dir("elsewhere") == Path("elsewhere")  # an explicit folder is used as given
    monkeypatch.delenv("PAPERLIB_CACHE", raising=False)
    assert cache.cache_root() == copy.resolve() / "runs"
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "mine"))
    assert cache.cache_root() == tmp_path / "mine"
    # outside any project: the folder above the installed (editable) package
    monkeypatch.chdir(tmp_path)
    assert paths.project_root() == ROOT
    # a folder with a pyproject.toml of another project is not ours
    other = tmp_path / "other"
    (other / "notebooks").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert paths.project_root(other / "notebooks") == ROOT


def test_save_without_folder_writes_into_the_project(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    copy = _project(tmp_path / "copy")
    monkeypatch.chdir(copy / "notebooks")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    assert report.save_figure(fig, "00_x", "")[0] == copy.resolve() / "figures" / "00_x.pdf"
    plt.close(fig)
    csv = report.save_table(pd.DataFrame({"a": [1.0]}), "00_y", profile="smoke")[0]
    assert csv == copy.resolve() / "tables" / "00_y.csv" and csv.is_file()
    assert not (copy / "notebooks" / "figures").exists() and not (copy / "notebooks" / "tables").exists()


# ----------------------------------------------------------------------------------------- show tables

def test_show_formats_like_the_paper(capsys):
    df = pd.DataFrame({"method": ["Original", "PALU"], "FQ": [2.62e-22, 0.123456789],
                       "status": [np.nan, "completed"], "train s": [np.nan, 4.12849]})
    labelled = report.with_paper_numbers(df, "mini")
    view = report.table_view(labelled, "mini", caption="TOFU forget10")
    html, text = view._repr_html_(), repr(view)
    for out in (html, text):
        assert "2.62e-22" in out and "0.1235" in out and "4.1285" in out and report.MISSING in out
        assert "NaN" not in out and "nan" not in out
        assert out.count("mini benchmark, tiny model") == 1  # once above the table, not per row
    assert "setting" not in html and "<th" in html and 'class="row_heading' not in html  # no index column
    assert html == report.table_view(labelled, "mini", caption="TOFU forget10")._repr_html_()  # same bytes on rerun
    assert report.show(df, "smoke") is None  # a cell ending with show() has no Out[] value
    with pytest.raises(ValueError, match="profile"):
        report.show(df, "big")


# ----------------------------------------------------------------------------------- notebook structure

def test_markdown_headings_keep_their_level():
    cells = make_notebook.cells("# %% [markdown]\n# # Title\n#\n# **Question.** Why?\n"
                                "# %%\nprofile = 'mini'\n# %% [markdown]\n# ## What we see\n")
    assert cells[0].source == "# Title\n\n**Question.** Why?"
    assert cells[2].source == "## What we see"
    assert [c.id for c in cells] == ["cell-00", "cell-01", "cell-02"]
    with pytest.raises(ValueError, match="percent format"):
        make_notebook.cells("# %% [markdown]\n#Title\n")


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reads_like_a_paper(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.validate(nb)
    first, params = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {nb_path.stem[:2]} · ")
    assert "**Question.**" in first.source and "**Paper's claim" in first.source
    assert params.cell_type == "code" and params.metadata.get("tags") == ["parameters"]
    assert [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])] == [params]
    for name in ("profile", "figures_dir", "tables_dir"):
        assert f"\n{name} = " in f"\n{params.source}"
    assert 'figures_dir = ""' in params.source and 'tables_dir = ""' in params.source
    headings = [line for c in nb.cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("#")]
    assert [h for h in headings if h.startswith("# ")] == [first.source.splitlines()[0]]  # one H1: the title
    assert [h for h in headings if h in SECTIONS] == list(SECTIONS)
    assert nb.cells[-2].source.startswith("## What we see")
    # no cell ends with a bare save call (its list of paths would be printed as the cell's value)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip():
            last = cell.source.strip().splitlines()[-1]
            assert not last.startswith(("report.save_", "report.with_paper")), (nb_path.name, last)
    # what JupyterLab 4 writes when it opens the notebook: equal values, so the notebook stays unmodified
    assert nb.metadata.kernelspec == make_notebook.KERNELSPEC
    info = dict(nb.metadata.language_info)
    assert info.pop("version").count(".") == 2
    expected = make_notebook.language_info()
    expected.pop("version")
    assert info == expected
    assert nb.nbformat == 4 and nb.nbformat_minor >= 5
    assert [c.id for c in nb.cells] == [f"cell-{i:02d}" for i in range(len(nb.cells))]


def test_kernel_metadata_matches_ipykernel():
    """The language_info make_notebook writes is the one ipykernel answers in kernel_info."""
    from ipykernel.ipkernel import IPythonKernel

    assert make_notebook.language_info() == IPythonKernel.language_info


# ------------------------------------------------------------------------------- run as JupyterLab does

def _run_in_notebooks_folder(copy: Path, nb_name: str, out: Path) -> nbformat.NotebookNode:
    import papermill

    papermill.execute_notebook(str(copy / "notebooks" / nb_name), str(out), parameters={"profile": "smoke"},
                               kernel_name="python3", cwd=str(copy / "notebooks"), progress_bar=False)
    return nbformat.read(out, as_version=4)


def _run_folders(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.glob("*/*") if p.is_dir()}


@pytest.mark.slow
def test_notebook_run_as_jupyterlab_does(tmp_path, monkeypatch):
    """Kernel started in <project>/notebooks, no PAPERLIB_CACHE: the first run fills <project>/runs, the
    second reuses it (no new run folder) and writes <project>/figures and tables, with no stderr output."""
    copy = _project(tmp_path / "project")
    nb_name = "00_benchmark_and_models.ipynb"
    shutil.copy(ROOT / "notebooks" / nb_name, copy / "notebooks" / nb_name)
    monkeypatch.delenv("PAPERLIB_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)  # the test process's folder must not matter either

    _run_in_notebooks_folder(copy, nb_name, tmp_path / "warm.ipynb")  # warms <project>/runs
    runs = copy / "runs"
    assert runs.is_dir() and not (copy / "notebooks" / "runs").exists()
    warm = _run_folders(runs)
    assert warm
    for folder in ("figures", "tables"):
        shutil.rmtree(copy / folder)
        (copy / folder).mkdir()

    nb = _run_in_notebooks_folder(copy, nb_name, tmp_path / "second.ipynb")
    assert _run_folders(runs) == warm, "the second run created new run folders: the cache was not reused"
    assert {p.name for p in (copy / "figures").iterdir()} >= {"00_training_curves.pdf", "00_truth_ratios.png"}
    assert {p.name for p in (copy / "tables").iterdir()} >= {"00_models.csv", "00_dataset_stats.md"}
    assert sorted(p.name for p in (copy / "notebooks").iterdir()) == [nb_name]  # nothing written beside it
    stderr = [(i, o.text[:200]) for i, c in enumerate(nb.cells) for o in c.get("outputs", [])
              if o.output_type == "stream" and o.name == "stderr"]
    assert not stderr, stderr
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    shown = [o for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert shown and all("NaN" not in o["data"]["text/html"] for o in shown)
    results = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "execute_result"]
    assert not results, [o["data"].get("text/plain", "")[:100] for o in results]  # no stray return values
