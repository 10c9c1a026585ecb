"""Every notebook: paired with their percent sources, executed in the smoke profile with papermill, each
writing the files the README's table names; the paper profile's dry run resolves without the hub."""

from __future__ import annotations

import re
import socket
import sys

import nbformat
from conftest import ROOT

from paperlib import runner

sys.path.insert(0, str(ROOT / "tools"))
from make_notebook import cells  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXTENSIONS = {"figures": (".pdf", ".png"), "tables": (".csv", ".md", ".tex")}


def readme_outputs() -> dict[str, list[str]]:
    """{notebook stem: ["figures/00_x", "tables/00_y", ...]} from the README's notebook table."""
    out = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\|\s*\[(\d\d_\w+)\]", line)
        if m:
            out[m.group(1)] = re.findall(r"`((?:figures|tables)/[\w.-]+)`", line.split("|")[-2])
    return out


def test_notebooks_match_their_sources():
    prefixes = [nb.stem[:2] for nb in NOTEBOOKS]
    assert len(set(prefixes)) == len(prefixes) and all(re.fullmatch(r"\d\d_\w+", nb.stem) for nb in NOTEBOOKS)
    for nb in NOTEBOOKS:
        stored = nbformat.read(nb, as_version=4)
        source = cells((ROOT / "notebooks" / "src" / f"{nb.stem}.py").read_text())
        assert [(c.cell_type, c.source) for c in stored.cells] == [(c.cell_type, c.source) for c in source], nb.name
        assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code"), f"{nb.name} has outputs"
        assert stored.cells[0].cell_type == "markdown" and stored.cells[0].source.startswith("# ")  # the title
        assert stored.cells[1].metadata.get("tags") == ["parameters"]  # right after it (papermill's tag)
        assert "profile" in stored.cells[1].source and "What we see" in "".join(c.source for c in stored.cells)
        assert [c.id for c in stored.cells] == [c.id for c in source]  # stable ids: regenerating changes nothing


def test_readme_lists_every_notebook():
    assert sorted(readme_outputs()) == [nb.stem for nb in NOTEBOOKS]
    assert all(readme_outputs().values())


def test_smoke_profile_writes_every_file(tmp_path):
    """Every notebook runs headless in the smoke profile and writes what the README says (in a temp folder)."""
    params = {"figures_dir": str(tmp_path / "figures"), "tables_dir": str(tmp_path / "tables")}
    results = runner.reproduce("smoke", out_dir=tmp_path / "executed", parameters=params)
    failed = [r.describe() for r in results if not r.ok]
    assert not failed, failed
    for stem, outputs in readme_outputs().items():
        assert (tmp_path / "executed" / "smoke" / f"{stem}.ipynb").is_file()
        for out in outputs:
            folder = out.split("/")[0]
            for ext in EXTENSIONS[folder]:
                assert (tmp_path / f"{out}{ext}").is_file(), f"{stem} did not write {out}{ext}"
    md = (tmp_path / "tables" / "01_tofu_main.md").read_text()
    assert "mini benchmark, tiny model" in md or "smoke" in md
    assert "(paper)" not in md


def test_paper_dry_run_needs_no_hub(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    planned = runner.plan("paper")
    runs = [r for rs in planned.values() for r in rs]
    assert {r.method for r in planned["01_main_results"]} >= {"PALU", "NPO", "GA", "TPO"}
    # TOFU checkpoints, the base a stage fine-tunes, or MUSE's published targets
    hub = ("open-unlearning/", "allenai/", "meta-llama/", "muse-bench/")
    assert all(r.model.startswith(hub) and r.gpu_hours > 0 for r in runs if r.epochs)
    assert "total:" in runner.format_plan(planned)
