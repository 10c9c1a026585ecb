"""A method added from outside the package (the worked example of docs/adding_a_method.md): its loss, its
hyperparameters and its class live in this file only; registering it is all it takes to run it through the
public API (`paperlib.engine.unlearn.unlearn`) and the command line (`paperlib unlearn --method MyToy`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import paperlib
from paperlib import methods
from paperlib.cli import main as cli_main
from paperlib.engine.config import get_profile
from paperlib.engine.constants import IGNORE
from paperlib.engine.unlearn import RunOptions, read_run, unlearn


def toy_forget_loss(logits: torch.Tensor, labels: torch.Tensor, scale: float) -> torch.Tensor:
    """-scale * mean token NLL over the answer tokens (shifted tensors): gradient ascent, scaled."""
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    return -scale * nll


@dataclass(frozen=True)
class MyToyHparams(methods.RetainHparams):
    """MyToy: L = gamma * (-scale * NLL(forget)) + alpha * NLL(retain); scale 0.5."""

    scale: float = 0.5


class MyToy(methods.Method):
    name, Hparams, color = "MyToy", MyToyHparams, "#000000"
    doc = "scaled gradient ascent (a toy method registered from a test)"

    def loss(self, model, batch, ref):
        z, y = methods.shifted(model, batch["forget"])
        return self.combine(toy_forget_loss(z, y, self.hp.scale), model, batch, ref)


@pytest.fixture
def toy():
    methods.register(MyToy)
    yield MyToy
    methods.unregister(MyToy.name)


def test_the_package_does_not_know_the_toy_method():
    package = Path(paperlib.__file__).parent
    assert not any("MyToy" in p.read_text() for p in package.rglob("*.py"))


def test_registered_toy_method_runs_an_epoch_and_an_evaluation(toy):
    assert methods.names()[-1] == "MyToy" and methods.hparam_names("MyToy") == ["gamma", "alpha", "retain_loss",
                                                                                "scale"]
    run = unlearn(get_profile("smoke"), "MyToy", overrides={"epochs": 1, "scale": "0.25"},
                  options=RunOptions(force=True, save_model=False, progress=False))
    r = read_run(run)
    assert r["status"]["status"] == "completed" and r["config"]["method"] == "MyToy"
    assert r["config"]["hparams"]["scale"] == 0.25
    assert r["summary"]["model_utility"] >= 0 and "forget_quality" in r["summary"]
    assert r["steps"] and {"forget", "retain", "loss"} <= set(r["steps"][0])
    assert all(isinstance(s["forget"], float) for s in r["steps"])


def test_registered_toy_method_runs_from_the_command_line(toy, tmp_path, capsys):
    out = tmp_path / "run"
    cli_main(["unlearn", "--method", "MyToy", "--profile", "smoke", "--set", "epochs=1", "--set", "scale=0.25",
              "--out", str(out)])
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert "forget_quality" in json.loads((out / "TOFU_SUMMARY.json").read_text())


def test_register_refuses_a_second_class_under_a_taken_name(toy):
    clash = type("Clash", (MyToy,), {})
    with pytest.raises(ValueError, match="'MyToy' is already registered"):
        methods.register(clash)
