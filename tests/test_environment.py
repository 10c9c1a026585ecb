"""environment.yml (conda, GPU nodes) lists the same packages as pyproject.toml."""

from __future__ import annotations

import json
import re

import tomllib
import yaml
from conftest import ROOT


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(pip) - {"-e ."} == wanted


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_parses_and_names_the_same_packages():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["name"] == "paperlib" and any(str(d).startswith("python") for d in env["dependencies"])
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    assert {_name(r) for r in pip if r != "-e ."} == wanted


def test_lock_file_pins_every_dependency_exactly():
    """requirements/lock.txt (pip-compile of pyproject.toml, `make lock`) pins every dependency except torch
    (installed first as the CPU or CUDA build), and every pin satisfies pyproject's range."""
    from packaging.requirements import Requirement

    lock = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"unpinned line in the lock file: {line!r}"
            lock[_name(name)] = version.split(";")[0].strip()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for req in map(Requirement, project["dependencies"] + project["optional-dependencies"]["dev"]):
        if req.name == "torch":
            assert "torch" not in lock
            continue
        assert _name(req.name) in lock, f"{req.name} missing from the lock file"
        assert req.specifier.contains(lock[_name(req.name)]), f"{req.name}=={lock[_name(req.name)]} vs {req}"
    assert "-r $(LOCK)" in (ROOT / "Makefile").read_text()


def test_provenance_records_versions_device_and_seeds(tmp_path):
    from paperlib.engine import cache, provenance

    folder = cache.cached_run("kind", {"train": {"seed": 3}, "lr": 1.0}, lambda out: None, root=tmp_path)
    prov = json.loads((folder / provenance.FILE).read_text())
    assert prov["seeds"] == {"train.seed": 3} and prov["packages"]["transformers"]
    assert prov["torch"]["version"] and prov["device"]["type"] in ("cpu", "cuda")
    assert not cache.check_entry(folder)  # covered by the manifest: the entry verifies
