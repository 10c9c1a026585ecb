"""Write a notebook from a Python file of `# %% [markdown]` / `# %%` cells (jupytext percent style).

A markdown cell's lines are `# ` + markdown (`# # Title` is the H1 "# Title", `# ## What we see` an H2,
a lone `#` an empty line). The first code cell is tagged `parameters` (papermill). Cell ids are stable
(`cell-00`, `cell-01`, ...), so regenerating an unchanged source gives the same file; the notebook metadata
is what JupyterLab 4 writes when it opens the notebook with the project's kernel (kernelspec and the
kernel's language_info), so opening a notebook does not mark it modified.

Usage: python tools/make_notebook.py src.py out.ipynb
       python tools/make_notebook.py --all     (every notebooks/src/NN_*.py -> notebooks/NN_*.ipynb)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# `ipykernel install --name python3` (the Makefile) and ipykernel's built-in spec both register this;
# JupyterLab copies name, display_name and language into metadata.kernelspec.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def language_info() -> dict:
    """The kernel's language_info (JupyterLab copies the kernel_info reply into the notebook metadata)."""
    return {
        "name": "python",
        "version": ".".join(map(str, sys.version_info[:3])),
        "mimetype": "text/x-python",
        "codemirror_mode": {"name": "ipython", "version": 3},
        "pygments_lexer": "ipython3",
        "nbconvert_exporter": "python",
        "file_extension": ".py",
    }


def markdown(body: str) -> str:
    """Percent-format comment lines -> markdown: drop the leading `# ` (or a lone `#`), nothing more."""
    out = []
    for line in body.splitlines():
        if line.startswith("# "):
            out.append(line[2:])
        elif line.rstrip() == "#":
            out.append("")
        else:
            raise ValueError(f"markdown line not in percent format ('# ' + text): {line!r}")
    return "\n".join(out)


def cells(text: str) -> list:
    out = []
    for chunk in text.split("# %%")[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip() == "[markdown]":
            cell = nbformat.v4.new_markdown_cell(markdown(body))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if not any(c.cell_type == "code" for c in out):
                cell.metadata["tags"] = ["parameters"]
        cell.id = f"cell-{len(out):02d}"
        out.append(cell)
    return out


def notebook(text: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=cells(text))
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = language_info()
    nbformat.validate(nb)
    return nb


def main(src: str, dst: str | None = None) -> None:
    """Write the notebook of the percent source `src` to `dst` (default: notebooks/<its stem>.ipynb)."""
    nbformat.write(notebook(Path(src).read_text()), dst or str(ROOT / "notebooks" / f"{Path(src).stem}.ipynb"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--all"]:
        for source in sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py")):
            main(str(source), str(ROOT / "notebooks" / f"{source.stem}.ipynb"))
    else:
        main(*sys.argv[1:3])
