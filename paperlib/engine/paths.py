"""Where the project's outputs live, whatever the working directory.

JupyterLab starts a notebook's kernel in `notebooks/`, papermill in the caller's folder, `make reproduce` in
the project root: all of them must write the same `figures/` and `tables/` and share the same run cache
`runs/`. `project_root()` finds the project folder (the one holding paperlib's `pyproject.toml` and
`notebooks/`):

1. the working directory or the nearest folder above it that is a paperlib project (a kernel started in
   `notebooks/`, or a copy of the project elsewhere), else
2. the folder above the installed package (`paperlib/..`) if it is a paperlib project (editable install),
   else
3. the working directory (an installed package used outside any project).

`figures_dir("")` / `tables_dir("")` give `<root>/figures` / `<root>/tables`; a non-empty folder (a notebook
parameter, a CLI option) is used as given. The run cache is `$PAPERLIB_CACHE` or `<root>/runs`
(`paperlib.engine.cache.cache_root`). `shared_data_dir()` is the real data beside the project (../shared/data).
"""

from __future__ import annotations

import os
from pathlib import Path

MARKER_DIR = "notebooks"
PROJECT_FILE = "pyproject.toml"
PROJECT_NAME = 'name = "paperlib"'


def is_project(folder: Path) -> bool:
    """`folder` holds paperlib's pyproject.toml and a notebooks/ folder."""
    project = folder / PROJECT_FILE
    if not (project.is_file() and (folder / MARKER_DIR).is_dir()):
        return False
    try:
        return PROJECT_NAME in project.read_text()
    except OSError:
        return False


def project_root(start: str | Path | None = None) -> Path:
    """The paperlib project folder (absolute): searched upwards from `start` (default: the working
    directory), then next to the installed package; the working directory if neither is a project."""
    here = Path(start if start is not None else os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    package = Path(__file__).resolve().parents[2]
    return package if is_project(package) else here


def output_dir(folder: str | Path | None, default: str) -> Path:
    """`folder` as given when it is non-empty, else `<project root>/<default>`."""
    if folder is None or str(folder) == "":
        return project_root() / default
    return Path(folder)


def figures_dir(folder: str | Path | None = None) -> Path:
    """Where figures go: `folder` if given, else the project's figures/."""
    return output_dir(folder, "figures")


def tables_dir(folder: str | Path | None = None) -> Path:
    """Where tables go: `folder` if given, else the project's tables/."""
    return output_dir(folder, "tables")


def runs_dir() -> Path:
    """The default run cache (without `$PAPERLIB_CACHE`): the project's runs/."""
    return project_root() / "runs"


SHARED_DATA_ENV = "PAPERLIB_SHARED_DATA"


def shared_data_dir() -> Path:
    """The shared real data (TOFU files, open-unlearning logs; never copied into the project):
    `$PAPERLIB_SHARED_DATA`, else `<project root>/../shared/data`, where tests/conftest.py looks too."""
    given = os.environ.get(SHARED_DATA_ENV)
    return Path(given) if given else project_root().parent / "shared" / "data"
