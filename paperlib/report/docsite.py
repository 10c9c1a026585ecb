"""The results as a website (`make docs`): the notebooks as `make reproduce` last executed them, one page each.

- Input: papermill's executed copies `<executed>/NN_name.ipynb` (`executed/mini/` after `make reproduce`,
  not committed) of every notebook in `notebooks/`, plus the guides `docs/*.md` and `benchmarks/results.md`.
  A notebook without an executed copy stops the build with one line naming it and the command that makes it.
- `assemble` writes the site's source folder (`build/docs-src/`): an index page generated from the executed
  notebooks (the verdict of each, `paperlib.studies.claims`; the main table `01_tofu_main.md` from the folder that
  run wrote its tables to; every notebook's question), the executed notebooks (progress-bar widgets dropped:
  their state is not saved, so a page could only show their text), the guides (links that leave docs/ for a
  notebook or benchmarks/results.md point at the site's page instead), and `mkdocs.yml`, which inherits the
  project's `mkdocs.yml` (mkdocs-material, mkdocs-jupyter) and adds the navigation.
- `build` runs `mkdocs build --strict` on it (no network, no kernel: mkdocs-jupyter only converts the stored
  outputs): a link to a missing page or anchor, or a guide left out of the navigation, fails the build.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from paperlib import runner
from paperlib.engine import paths
from paperlib.studies import claims

WIDGET = "application/vnd.jupyter.widget-view+json"
MAIN_TABLE = "01_tofu_main"
# (section, [(title, file in docs/)]): the guides in the navigation; "speed.md" is benchmarks/results.md
GUIDES: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Results", (("Reading the tables", "results.md"),)),
    ("Using paperlib", (
        ("The notebooks", "notebooks.md"),
        ("This website", "site.md"),
        ("Profiles", "profiles.md"),
        ("How every method is tuned", "tuning.md"),
        ("Command line", "cli.md"),
        ("As a library", "library.md"),
        ("Architecture", "architecture.md"),
        ("Adding a method", "adding_a_method.md"),
        ("Adding a benchmark", "adding_a_benchmark.md"),
        ("Scale-out: GPUs, accelerate, SLURM", "scale_out.md"),
        ("Timings", "timings.md"),
        ("Reproducibility", "reproducibility.md"),
        ("Bad inputs and their errors", "errors.md"),
    )),
    ("Benchmarks and methods", (
        ("Raw text and automatic spans", "raw_text.md"),
        ("MUSE", "muse.md"),
        ("RWKU", "rwku.md"),
        ("Unilogit vs UnDIAL", "unilogit_undial.md"),
        ("Departures from the reference code", "departures.md"),
        ("Speed (make bench)", "speed.md"),
    )),
)
# links in docs/*.md that leave docs/ (they work on a code host) and the site page each one becomes
OUTSIDE = {"../benchmarks/results.md": "speed.md", "../README.md": "index.md"}


class DocsError(ValueError):
    """Why the site cannot be built, in one line."""


@dataclass(frozen=True)
class NotebookPage:
    """One executed notebook as the site shows it."""

    prefix: str  # "01"
    stem: str  # "01_main_results"
    executed: Path  # papermill's executed copy
    title: str  # the notebook's H1
    question: str  # its **Question.** paragraph
    claim: claims.Claim | None  # its verdict, None if it shows none
    failed: bool  # papermill recorded an exception: the page shows the error
    stale: bool  # its cells differ from notebooks/NN_name.ipynb: executed from an older version
    profile: str  # the profile papermill injected
    parameters: dict  # every parameter papermill injected

    @property
    def page(self) -> str:
        return f"notebooks/{self.stem}.ipynb"


def _first_paragraph(markdown: str, label: str) -> str:
    for block in re.split(r"\n\s*\n", markdown):
        if block.startswith(label):
            return " ".join(block[len(label):].split())
    return ""


def _sources(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells
            if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]


def notebook_pages(executed: str | Path, notebooks_dir: str | Path | None = None) -> list[NotebookPage]:
    """The executed copy of every notebook of `notebooks_dir` (default: the project's) found in `executed`;
    DocsError, in one line, when any is missing."""
    import nbformat

    executed = Path(executed)
    source = runner.discover(notebooks_dir or paths.project_root() / "notebooks")
    missing = [p for p, path in source.items() if not (executed / path.name).is_file()]
    if missing:
        profile = executed.name if executed.name in runner.PROFILE_NAMES else "mini"
        out = "" if executed.parent.name == "executed" else f" --out {executed.parent}"
        if len(missing) == len(source):
            command = "make reproduce" if profile == "mini" and not out else \
                f"paperlib reproduce --profile {profile}{out}"
            raise DocsError(f"no executed notebooks in {executed}: `{command}` executes them, then `make docs`")
        command = f"paperlib reproduce --profile {profile} --only {','.join(missing)}{out}"
        raise DocsError(f"not executed yet: {', '.join(source[p].stem for p in missing)} (no executed copy in "
                        f"{executed}); `{command}` makes {'them' if len(missing) > 1 else 'it'}, then `make docs`")
    pages = []
    for prefix, path in source.items():
        nb = nbformat.read(executed / path.name, as_version=4)
        meta = nb.metadata.get("papermill", {})
        params = dict(meta.get("parameters") or {})
        first = nb.cells[0].source if nb.cells and nb.cells[0].cell_type == "markdown" else ""
        title = next((line[2:].strip() for line in first.splitlines() if line.startswith("# ")), path.stem)
        found = claims.collect([executed / path.name])
        pages.append(NotebookPage(
            prefix=prefix, stem=path.stem, executed=executed / path.name, title=title,
            question=_first_paragraph(first, "**Question.**"), claim=found[0] if found else None,
            failed=bool(meta.get("exception")), stale=_sources(nb) != _sources(nbformat.read(path, as_version=4)),
            profile=str(params.get("profile", "")), parameters=params))
    return pages


def _for_site(executed: Path, out: Path) -> None:
    """Copy an executed notebook without its progress-bar widgets (no saved state: only their text)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    nbformat.write(nb, out)


def _rewrite_links(text: str, stems: set[str]) -> str:
    """Links of a guide that leave docs/ (to a notebook, benchmarks/results.md, the README) as site links."""
    def fix(match: re.Match) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        nb = re.fullmatch(r"\.\./notebooks/(\d\d_[\w-]+)\.ipynb", target)
        if nb and nb.group(1) in stems:
            return f"](notebooks/{nb.group(1)}.ipynb{anchor})"
        return f"]({OUTSIDE.get(target, target)}{anchor})"

    return re.sub(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)", fix, text)


def _cell(text: str) -> str:
    return " ".join(str(text).replace("|", "/").split())


def index_markdown(pages: list[NotebookPage], main_table: str | None) -> str:
    """The front page: what the site shows, the verdict table, the main table, the notebooks."""
    profile = next((p.profile for p in pages if p.profile), "?")
    lines = [
        "---", "hide:", "  - toc", "---", "",  # mkdocs-material: the page's width for the tables
        "# paperlib: PALU, localized unlearning and Unilogit, reproduced", "",
        "A companion to three LLM-unlearning papers (PALU, loc-unlearn, Unilogit): every experiment is a notebook, "
        "and every page below is a notebook **as `make reproduce` last executed it** "
        f"(profile `{profile}`), with its question, the paper's claim, its tables, its figures and its verdict. "
        "Nothing here was re-run to build the site.", ""]
    flagged = [p for p in pages if p.failed or p.stale]
    if flagged:
        lines += ["!!! warning \"Not every page shows a current, complete run\"", ""]
        lines += [f"    - [{p.stem}]({p.page}): " + ("its execution failed (the page shows the error)" if p.failed
                  else "executed from an older version of the notebook") for p in flagged]
        lines += ["", "    `make reproduce` refreshes them, then `make docs`.", ""]
    lines += ["## Verdicts", "",
              "Each verdict is a tested function of the notebook's own tables (`paperlib.studies.claims`); "
              "a finding is "
              "reproduced only when its effect exceeds the seed spread. Hand-written commentary on these numbers: "
              "[Reading the tables](results.md).", "",
              "| notebook | finding | verdict | evidence |", "|---|---|---|---|"]
    for p in pages:
        if p.claim is not None:
            lines.append(f"| [{p.prefix}]({p.page}) | {_cell(p.claim.finding)} | **{p.claim.verdict}** | "
                         f"{_cell(p.claim.evidence)} |")
    lines += ["", "## Main table", ""]
    lines += ['<div class="wide-table" markdown>', "", main_table.strip(), "", "</div>"] if main_table else \
        [f"`{MAIN_TABLE}.md` was not found where notebook 01 wrote its tables."]
    lines += ["",
              "How every method was tuned (one rule for all, stated before the results): "
              "[How every method is tuned](tuning.md).", ""]
    lines += ["## The notebooks", "", "| notebook | question | verdict |", "|---|---|---|"]
    for p in pages:
        verdict = p.claim.verdict if p.claim else "–"
        lines.append(f"| [{_cell(p.title)}]({p.page}) | {_cell(p.question)} | {verdict} |")
    lines += ["", "## Going further", "",
              "- Run them yourself: [the notebooks](notebooks.md) (JupyterLab or `make reproduce`), "
              "[profiles](profiles.md), [timings](timings.md).",
              "- Use the code: [command line](cli.md), [as a library](library.md), "
              "[adding a method](adding_a_method.md).",
              "- GPUs and clusters: [scale-out](scale_out.md).",
              "- The benchmarks: [MUSE](muse.md), [RWKU](rwku.md), [raw text](raw_text.md), "
              "[departures from the reference code](departures.md).", ""]
    return "\n".join(lines)


def _tables_dir(pages: list[NotebookPage]) -> Path:
    """Where the executed run wrote its tables: notebook 01's `tables_dir` parameter, else the project's."""
    given = next((p.parameters.get("tables_dir") for p in pages if p.prefix == MAIN_TABLE[:2]), "")
    return paths.tables_dir(given or "")


def assemble(executed: str | Path, src: str | Path, site: str | Path, notebooks_dir: str | Path | None = None,
             docs_dir: str | Path | None = None) -> tuple[Path, list[NotebookPage]]:
    """Write the site's source folder `src` and, beside it, `mkdocs.yml` (the project's, plus the navigation,
    `src` and the site folder `site`); returns that config file and the notebook pages."""
    root = paths.project_root()
    docs = Path(docs_dir) if docs_dir is not None else root / "docs"
    pages = notebook_pages(executed, notebooks_dir)
    src = Path(src).resolve()
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    for p in pages:
        _for_site(p.executed, src / p.page)
    stems = {p.stem for p in pages}
    for _, entries in GUIDES:
        for _, name in entries:
            origin = root / "benchmarks" / "results.md" if name == "speed.md" else docs / name
            if not origin.is_file():
                raise DocsError(f"guide {origin} is missing (listed in paperlib.report.docsite.GUIDES)")
            (src / name).write_text(_rewrite_links(origin.read_text(), stems))
    shutil.copytree(docs / "stylesheets", src / "stylesheets")  # mkdocs.yml's extra_css
    table = _tables_dir(pages) / f"{MAIN_TABLE}.md"
    (src / "index.md").write_text(index_markdown(pages, table.read_text() if table.is_file() else None))
    nav = [{"Home": "index.md"}, {"Notebooks": [{p.title: p.page} for p in pages]}]
    nav += [{section: [{title: name} for title, name in entries]} for section, entries in GUIDES]
    config = src.parent / "mkdocs.yml"
    config.write_text(yaml.safe_dump({"INHERIT": str(root / "mkdocs.yml"), "docs_dir": str(src),
                                      "site_dir": str(Path(site).resolve()), "nav": nav},
                                     sort_keys=False, allow_unicode=True))
    return config, pages


def build(executed: str | Path = "executed/mini", out: str | Path = "build/site", src: str | Path | None = None,
          notebooks_dir: str | Path | None = None, docs_dir: str | Path | None = None, echo=print) -> Path:
    """Build the site from the executed notebooks in `executed` into `out`; returns `out/index.html`.
    The source folder `src` defaults to `docs-src` beside `out`; `notebooks_dir` and `docs_dir` (the guides)
    to the project's. DocsError (one line) when it cannot."""
    start = time.perf_counter()
    out = Path(out).resolve()
    src = Path(src) if src is not None else out.parent / "docs-src"
    config, pages = assemble(executed, src, out, notebooks_dir, docs_dir)
    for p in pages:
        if p.failed or p.stale:
            echo(f"docs: {p.stem}: " + ("its execution failed; the page shows the error" if p.failed else
                                        "executed from an older version of the notebook")
                 + f" (`paperlib reproduce --profile {p.profile or 'mini'} --only {p.prefix}` refreshes it)")
    # not --quiet: mkdocs 1.6 then stops counting warnings, and --strict passes a broken link
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "--config-file",
                           str(config)], capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    if done.returncode != 0:
        output = (done.stdout + done.stderr).splitlines()
        problems = [" ".join(line.split()) for line in output if line.startswith(("WARNING", "ERROR"))]
        raise DocsError("mkdocs build failed: " + " | ".join(problems or output[-3:]))
    index = out / "index.html"
    echo(f"docs: {len(pages)} notebook page(s) from {Path(executed)}, "
         f"{sum(len(e) for _, e in GUIDES)} guide(s) -> {index} in {time.perf_counter() - start:.1f} s")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paperlib.report.docsite",
                                     description="Build the results website from the executed notebooks.")
    parser.add_argument("--executed", default="executed/mini",
                        help="folder of the executed notebooks (default: executed/mini, `make reproduce`'s)")
    parser.add_argument("--out", default="build/site", help="site folder (default: build/site)")
    parser.add_argument("--notebooks", default=None, help="folder of the NN_name.ipynb notebooks")
    args = parser.parse_args(argv)
    try:
        build(args.executed, args.out, notebooks_dir=args.notebooks)
    except DocsError as err:
        print(f"make docs: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
