"""The website's assembly (`paperlib.report.docsite`) and the README as a front door. The site built from the smoke
profile's executed notebooks, and its headless-browser check, are in tests/test_notebooks.py."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest
from conftest import ROOT

from paperlib.report import docsite
from paperlib.studies import claims

README = ROOT / "README.md"
FRONT_DOOR_BYTES = 10 * 1024


def _notebook(path, title="# 00 · A title\n\n**Question.** Does it work?\n\n**Paper's claim.** Yes.",
              code="x = 1", exception=None):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(title), nbformat.v4.new_code_cell(code)]
    if exception is not None:
        nb.metadata["papermill"] = {"exception": exception, "parameters": {"profile": "smoke"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def _pair(tmp_path, names=("00_first", "01_main_results")):
    for name in names:
        _notebook(tmp_path / "notebooks" / f"{name}.ipynb")
    return tmp_path / "notebooks", tmp_path / "executed" / "smoke"


def test_missing_executed_notebooks_stop_with_one_line(tmp_path, capsys):
    notebooks, executed = _pair(tmp_path)
    executed.mkdir(parents=True)
    with pytest.raises(docsite.DocsError, match=r"^no executed notebooks in .*smoke: `paperlib reproduce "
                                                r"--profile smoke` executes them, then `make docs`$"):
        docsite.notebook_pages(executed, notebooks)
    _notebook(executed / "00_first.ipynb", exception=False)
    with pytest.raises(docsite.DocsError) as err:
        docsite.notebook_pages(executed, notebooks)
    assert "not executed yet: 01_main_results" in str(err.value) and "00_first" not in str(err.value)
    assert "`paperlib reproduce --profile smoke --only 01` makes it" in str(err.value)
    # `make docs` before `make reproduce`: one line on stderr, exit code 1, no traceback
    assert docsite.main(["--executed", str(tmp_path / "executed" / "mini"), "--notebooks", str(notebooks),
                         "--out", str(tmp_path / "site")]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "`make reproduce` executes them" in out.err
    assert "Traceback" not in out.err


def test_front_page_flags_failed_and_stale_notebooks(tmp_path):
    notebooks, executed = _pair(tmp_path)
    _notebook(executed / "00_first.ipynb", exception=True)
    _notebook(executed / "01_main_results.ipynb", code="x = 2", exception=False)  # the source has x = 1 now
    pages = docsite.notebook_pages(executed, notebooks)
    assert [(p.stem, p.failed, p.stale, p.profile) for p in pages] == [
        ("00_first", True, False, "smoke"), ("01_main_results", False, True, "smoke")]
    assert pages[0].title == "00 · A title" and pages[0].question == "Does it work?"
    front = docsite.index_markdown(pages, "| method |\n|---|\n| PALU |\n")
    assert "[00_first](notebooks/00_first.ipynb): its execution failed" in front
    assert "[01_main_results](notebooks/01_main_results.ipynb): executed from an older version" in front
    assert "| PALU |" in front and "profile `smoke`" in front


def test_build_is_strict_about_links(tmp_path):
    """A guide's link to a missing page or anchor stops `make docs` with mkdocs' warnings in one line (the
    clean build is tests/test_notebooks.py's, from the smoke notebooks)."""
    stems = [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]  # docs/ links each one
    notebooks, executed = _pair(tmp_path, stems)
    for name in stems:
        _notebook(executed / f"{name}.ipynb", exception=False)
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    with (docs / "cli.md").open("a") as f:
        f.write("\n[gone](nope.md), [anchor](tuning.md#no-such-section)\n")
    with pytest.raises(docsite.DocsError) as err:
        docsite.build(executed, tmp_path / "site", notebooks_dir=notebooks, docs_dir=docs, echo=print)
    assert "\n" not in str(err.value) and "'nope.md'" in str(err.value) and "#no-such-section" in str(err.value)


def test_site_copy_drops_progress_widgets(tmp_path):
    path = _notebook(tmp_path / "nb.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.metadata["widgets"] = {"state": {}}
    nb.cells[1].outputs = [
        nbformat.v4.new_output("display_data", {docsite.WIDGET: {"model_id": "x"}, "text/plain": "Loading 0%"}),
        nbformat.v4.new_output("stream", text="run 1/2 done\n"),
        nbformat.v4.new_output("display_data", {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    nbformat.write(nb, path)
    docsite._for_site(path, tmp_path / "site.ipynb")
    kept = nbformat.read(tmp_path / "site.ipynb", as_version=4)
    assert "widgets" not in kept.metadata
    assert [o.output_type for o in kept.cells[1].outputs] == ["stream", "display_data"]
    assert "image/png" in kept.cells[1].outputs[1].data


def test_guide_links_that_leave_docs_point_at_site_pages():
    text = ("[01](../notebooks/01_main_results.ipynb#outputs), [speed](../benchmarks/results.md), "
            "[home](../README.md), [tuning](tuning.md), [gone](../notebooks/99_gone.ipynb)")
    assert docsite._rewrite_links(text, {"01_main_results"}) == (
        "[01](notebooks/01_main_results.ipynb#outputs), [speed](speed.md), [home](index.md), [tuning](tuning.md), "
        "[gone](../notebooks/99_gone.ipynb)")  # left as it is: the strict build reports it


def test_every_guide_is_in_the_site_and_linked_from_the_readme():
    listed = [name for _, guides in docsite.GUIDES for _, name in guides]
    assert len(set(listed)) == len(listed)
    assert set(listed) - {"speed.md"} == {p.name for p in (ROOT / "docs").glob("*.md")}
    readme = README.read_text()
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)(?:#[\w-]+)?\)", readme))
    assert linked == set(listed) - {"speed.md"}, "every docs page is one click from the README"
    for target in re.findall(r"\]\(([^)#\s]+)", readme):  # every relative link of the README resolves
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_readme_is_a_front_door_with_the_generated_tables(tmp_path):
    """At most 10 KB, and its verdict and main tables are exactly what `make reproduce` writes between the
    markers (runner.write_claims -> claims.write_markdown) from the committed tables."""
    readme = README.read_text()
    assert len(readme.encode()) <= FRONT_DOOR_BYTES, f"README is {len(readme.encode())} bytes (front door: 10 KB)"
    assert readme.count(claims.README_BEGIN) == 1 and readme.count(claims.README_END) == 1
    for name in claims.README_TABLES:
        assert readme.count(f"<!-- table:{name}:begin -->") == 1 and readme.count(f"<!-- table:{name}:end -->") == 1
    tables = tmp_path / "tables"
    tables.mkdir()
    for name in ("claims", *claims.README_TABLES):
        shutil.copy(ROOT / "tables" / f"{name}.md", tables / f"{name}.md")
    copy = tmp_path / "README.md"
    copy.write_text(readme.replace(claims.README_END, "stale row\n" + claims.README_END))
    claims.write_markdown([], "mini", tables, copy)  # no new verdicts: keeps those of tables/claims.md
    assert copy.read_text() == readme
