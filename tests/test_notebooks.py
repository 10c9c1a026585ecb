"""Every notebook: paired with their percent sources, executed in the smoke profile with papermill, each
writing the files docs/notebooks.md's table names; the website built from those executed copies (`make docs`):
a page per notebook with its figures and verdict, checked in headless Chromium; the paper profile's dry run
resolves without the hub."""

from __future__ import annotations

import html
import http.server
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from functools import partial
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from paperlib import runner
from paperlib.report import docsite
from paperlib.studies import claims

sys.path.insert(0, str(ROOT / "tools"))
from make_notebook import cells  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXTENSIONS = {"figures": (".pdf", ".png"), "tables": (".csv", ".md", ".tex")}


def documented_outputs() -> dict[str, list[str]]:
    """{notebook stem: ["figures/00_x", "tables/00_y", ...]} from the notebook table of docs/notebooks.md."""
    out = {}
    for line in (ROOT / "docs" / "notebooks.md").read_text().splitlines():
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


def test_docs_list_every_notebook():
    assert sorted(documented_outputs()) == [nb.stem for nb in NOTEBOOKS]
    assert all(documented_outputs().values())


PLANNED = ("09", "11", "12")  # run under an executor: every unlearning run a worker's, none the kernel's


def _unlearn_entries() -> set[str]:
    from paperlib.engine import cache, unlearn

    folder = cache.cache_root() / unlearn.KIND
    return {str(p.resolve()) for p in folder.iterdir() if cache.is_complete(p)} if folder.is_dir() else set()


def run_planned(folder: Path, executor, params: dict) -> tuple[list, set[str], set[str]]:
    """Notebooks `PLANNED` in the smoke profile under `executor`, their kernels only allowed to read unlearning
    runs (`paperlib.engine.executors.environment`), every worker logging the folder it returns: (results, the unlearning
    runs they added to the cache, the folders the workers returned)."""
    from paperlib.engine import executors

    log, before = folder / "jobs.log", _unlearn_entries()
    env = {**executors.environment(executor), executors.JOB_LOG: str(log)}
    results = runner.reproduce("smoke", only=PLANNED, parameters=params,
                               paths=runner.Paths(out_dir=folder / "executed"), execution=runner.Execution(env=env))
    by_workers = {str(Path(p).resolve()) for p in log.read_text().split()} if log.is_file() else set()
    return results, _unlearn_entries() - before, by_workers


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """Every notebook executed once in the smoke profile (a temp folder): (folder, results); the executed copies
    are in <folder>/executed/smoke, the tables and figures in <folder>/tables and <folder>/figures. Notebooks
    `PLANNED` run under a pool of two worker processes (`executors.GpuPool`, as `--executor gpus:0,1`): what
    they added to the run cache and what the workers returned are in <folder>/planned.json."""
    from paperlib.engine import executors

    tmp_path = tmp_path_factory.mktemp("smoke_run")
    params = {"figures_dir": str(tmp_path / "figures"), "tables_dir": str(tmp_path / "tables")}
    rest = [nb.stem for nb in NOTEBOOKS if not nb.stem.startswith(PLANNED)]
    results = runner.reproduce("smoke", only=rest, parameters=params,
                               paths=runner.Paths(out_dir=tmp_path / "executed"))
    planned, built, by_workers = run_planned(tmp_path, executors.GpuPool(("0", "1")), params)
    (tmp_path / "planned.json").write_text(json.dumps({"built": sorted(built), "by_workers": sorted(by_workers)}))
    return tmp_path, sorted(results + planned, key=lambda r: r.notebook)


def test_smoke_profile_writes_every_file(smoke_run):
    """Every notebook runs headless in the smoke profile and writes what docs/notebooks.md says."""
    tmp_path, results = smoke_run
    failed = [r.describe() for r in results if not r.ok]
    assert not failed, failed
    for stem, outputs in documented_outputs().items():
        assert (tmp_path / "executed" / "smoke" / f"{stem}.ipynb").is_file()
        for out in outputs:
            folder = out.split("/")[0]
            for ext in ("",) if out.endswith(".md") else EXTENSIONS[folder]:  # a note: one .md file
                assert (tmp_path / f"{out}{ext}").is_file(), f"{stem} did not write {out}{ext}"
    md = (tmp_path / "tables" / "01_tofu_main.md").read_text()
    assert "mini benchmark, tiny model" in md or "smoke" in md
    assert "(paper)" not in md


def test_planned_notebooks_train_nothing_in_the_kernel(smoke_run):
    """Notebooks 09, 11 and 12 under an executor (two worker processes): every unlearning run they added to the
    cache is a folder a worker returned, none was computed by the kernel, which may only read them."""
    tmp_path, results = smoke_run
    assert all(r.ok for r in results if r.notebook.startswith(PLANNED))
    record = json.loads((tmp_path / "planned.json").read_text())
    built, by_workers = set(record["built"]), set(record["by_workers"])
    assert len(built) >= 10 and built <= by_workers, sorted(built - by_workers)


@pytest.mark.mini
def test_planned_notebooks_under_submitit_local(tmp_path, monkeypatch):
    """The same under `--executor local` (submitit's LocalExecutor, a process per run: minutes beyond CI's
    budget, so `make test-mini` runs it), with a cache of its own."""
    from paperlib.engine import executors

    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "runs"))
    params = {"figures_dir": str(tmp_path / "figures"), "tables_dir": str(tmp_path / "tables")}
    local = executors.Slurm(folder=str(tmp_path / "jobs"), cluster="local", gpus_per_run=0, cpus_per_run=1,
                            max_parallel=2)
    results, built, by_jobs = run_planned(tmp_path, local, params)
    assert all(r.ok for r in results), [r.describe() for r in results if not r.ok]
    assert len(built) >= 10 and built <= by_jobs, sorted(built - by_jobs)


# ------------------------------------------------------------------------------- the website (make docs)

@pytest.fixture(scope="module")
def smoke_executed(request) -> Path:
    """The smoke run's executed notebooks; PAPERLIB_SMOKE_EXECUTED=DIR reuses those of an earlier
    `paperlib reproduce --profile smoke --out X` (DIR = X/smoke) instead of executing them again."""
    given = os.environ.get("PAPERLIB_SMOKE_EXECUTED")
    if given:
        return Path(given)
    folder, _ = request.getfixturevalue("smoke_run")
    return folder / "executed" / "smoke"


@pytest.fixture(scope="module")
def smoke_site(smoke_executed, tmp_path_factory):
    """The website built from the smoke run's executed notebooks, as `make docs` builds it: (index, seconds)."""
    out = tmp_path_factory.mktemp("docs") / "site"
    start = time.perf_counter()
    index = docsite.build(smoke_executed, out, echo=lambda line: None)
    return index, time.perf_counter() - start


def _text(page: str) -> str:
    """A page's visible text, whitespace collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    page = re.sub(r"</?(strong|em|b|i|code|a|span)\b[^>]*>", "", page)  # inline: no space in their place
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _png_outputs(notebook: Path) -> int:
    nb = nbformat.read(notebook, as_version=4)
    return sum("image/png" in out.get("data", {}) for c in nb.cells if c.cell_type == "code" for out in c.outputs)


def test_site_has_every_notebook_with_its_figures_and_verdict(smoke_site, smoke_executed):
    index, seconds = smoke_site
    assert seconds < 120, f"make docs took {seconds:.0f} s from executed notebooks (budget: 2 minutes)"
    site, front = index.parent, index.read_text()
    assert "Verdicts" in _text(front) and "TOFU forget10" in _text(front)  # the verdict table and the main table
    assert re.search(r"<td[^>]*>PALU</td>", front)
    for stem, outputs in documented_outputs().items():
        page = site / "notebooks" / f"{stem}.html"
        assert page.is_file(), f"no page for {stem}"
        assert f'href="notebooks/{stem}.html"' in front, f"the front page does not link {stem}"
        body = page.read_text()
        # every figure the notebook displayed is on its page, as an image (and at least those it writes)
        images = len(re.findall(r'<img [^>]*src="data:image/png;base64,', body))
        figures = [o for o in outputs if o.startswith("figures/")]
        assert images == _png_outputs(smoke_executed / f"{stem}.ipynb") >= len(figures), (stem, images, figures)
        # its question and its verdict, the same one the front page gives
        claim = claims.collect([smoke_executed / f"{stem}.ipynb"])
        assert len(claim) == 1, f"{stem} shows no verdict"
        text = _text(body)
        assert "Question." in text and f"{claim[0].verdict.capitalize()}: {claim[0].finding}" in text, stem
        assert claim[0].verdict in _text(front)
        assert "Loading weights" not in body  # progress-bar widgets (no saved state) are left out
        assert not re.search(r'<(script|link|img|iframe)\b[^>]*\b(src|href)="(https?:)?//', body)  # all local
        assert (site / "notebooks" / f"{stem}.ipynb").is_file()  # the executed notebook, for download
    for _, guides in docsite.GUIDES:
        assert all((site / name.replace(".md", ".html")).is_file() for _, name in guides)


def _browser():
    """A headless Chromium driven by Debian's chromedriver (selenium), or a skip saying what is missing; under
    CI (where `make browser` installs both) a missing browser fails instead."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        why = ("the headless-browser check needs Debian's chromium and chromium-driver (`make browser` installs "
               f"them); missing: {', '.join(n for n, p in (('chromium', browser), ('chromedriver', driver)) if not p)}")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_site_in_headless_chromium(smoke_site, tmp_path):
    """The front page and notebook 01's page, served on 127.0.0.1 and opened in headless Chromium: every image
    loads, every link inside the site reaches a page (and its anchor), nothing is loaded from outside the site,
    no console error. PAPERLIB_SCREENSHOTS=DIR keeps the screenshots there."""
    index, _ = smoke_site
    site = index.parent
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    shots = Path(os.environ.get("PAPERLIB_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    driver = _browser()
    try:
        for page, min_images in (("index.html", 0), ("notebooks/01_main_results.html", 2)):
            driver.get(base + page)
            assert driver.execute_script("return document.readyState") == "complete"
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.src.slice(0, 40), i.complete && i.naturalWidth > 0])")
            assert len(images) >= min_images, (page, images)
            assert all(ok for _, ok in images), f"broken image(s) on {page}: {[s for s, ok in images if not ok]}"
            loaded = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            assert all(url.startswith((base, "data:")) for url in loaded), [u for u in loaded if not u.startswith(base)]
            links = driver.execute_script("return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
            inside = {link for link in links if link.startswith(base)}
            assert len(inside) > 10, (page, links)
            broken = []
            for link in sorted(inside):
                url, _, anchor = link.partition("#")
                try:
                    with urllib.request.urlopen(url, timeout=10) as reply:  # the site's own server, on 127.0.0.1
                        target = reply.read().decode()
                except urllib.error.HTTPError as err:
                    broken.append(f"{link} (HTTP {err.code})")
                    continue
                if anchor and f'id="{urllib.parse.unquote(anchor)}"' not in target:
                    broken.append(f"{link} (no such anchor)")
            assert not broken, f"broken link(s) on {page}: {broken}"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, (page, errors)
            driver.save_screenshot(str(shots / f"{page.replace('/', '_').removesuffix('.html')}.png"))
    finally:
        driver.quit()
        server.shutdown()


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
