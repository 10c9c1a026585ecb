"""Write a notebook from a Python file of `# %% [markdown]` / `# %%` cells (jupytext percent style).

The first code cell is tagged `parameters` (papermill). Usage: python tools/make_notebook.py src.py out.ipynb
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat


def cells(text: str) -> list:
    out = []
    for chunk in text.split("# %%")[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip() == "[markdown]":
            out.append(nbformat.v4.new_markdown_cell("\n".join(line.removeprefix("# ").removeprefix("#")
                                                               for line in body.splitlines())))
        else:
            cell = nbformat.v4.new_code_cell(body)
            if not any(c.cell_type == "code" for c in out):
                cell.metadata["tags"] = ["parameters"]
            out.append(cell)
    return out


def main(src: str, dst: str) -> None:
    nb = nbformat.v4.new_notebook(cells=cells(Path(src).read_text()))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, dst)


if __name__ == "__main__":
    main(*sys.argv[1:3])
