"""A benchmark added from outside the package (the worked example of docs/adding_a_benchmark.md): its texts, its
starting model, its evaluator and what its evaluation means for the tuning rule live in this file only;
registering it is all the study protocol needs to tune methods on it (`paperlib.studies.protocol.tune`)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import paperlib
from paperlib import benchmarks
from paperlib.engine import executors
from paperlib.engine.config import get_profile
from paperlib.engine.corpus import TextCorpus, register_evaluator
from paperlib.engine.errors import PaperlibError
from paperlib.engine.models import tiny_llama, train_tokenizer
from paperlib.methods import tuning
from paperlib.studies import protocol

FORGET = ("the zorbel of Quennet glints at dawn over the salt marsh", "Quennet keeps the zorbel in a copper box")
RETAIN = ("water boils at one hundred degrees at sea level", "the moon circles the earth about once a month")


@register_evaluator("toy-eval")
def toy_eval(model, tokenizer, profile, eval_args: dict, out_dir: Path | None) -> dict:
    """Mean next-token NLL of the forget and of the retain texts."""
    out = {}
    for name, texts in (("forget_nll", FORGET), ("retain_nll", RETAIN)):
        nll = []
        for text in texts:
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            with torch.no_grad():
                nll.append(float(model(input_ids=ids, labels=ids).loss))
        out[name] = sum(nll) / len(nll)
    return out


def toy_scores(summary: dict) -> dict:
    """FQ: the forget texts' NLL (higher = more forgotten); MU: the retain texts' likelihood exp(-NLL)."""
    return {**summary, "FQ": summary["forget_nll"], "MU": math.exp(-summary["retain_nll"])}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy benchmark, registered: one target, its starting model a tiny random Llama saved here."""
    folder = tmp_path_factory.mktemp("toy_model")
    tok = train_tokenizer(list(FORGET + RETAIN) * 8, 300)
    torch.manual_seed(0)
    model = tiny_llama(get_profile("smoke").model.tiny, tok)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    planned = []

    def request(profile, target: str, method: str, point: protocol.Point) -> executors.Request:
        planned.append((target, method, point))
        return executors.Request(profile, method, overrides={**tuning.run_overrides(profile, method, point.lr,
                                                                                    point.seed, point.stop_epoch),
                                                             "batch_size": 2},
                                 eval_every_epoch=point.every_epoch, model=str(folder),
                                 corpus=TextCorpus(f"toy:{target}", FORGET, RETAIN, 16), evaluator="toy-eval",
                                 eval_args={"texts": len(FORGET)})

    def reference(profile) -> dict[str, float]:
        return {"quennet": toy_scores(toy_eval(model.eval(), tok, profile, {}, None))["MU"]}

    bench = benchmarks.register(benchmarks.Benchmark("toy", ("GA", "NPO"), lambda profile: ["quennet"], request,
                                                     toy_scores, reference, ("forget_nll", "retain_nll")))
    yield bench, planned
    benchmarks.unregister("toy")


def test_the_package_does_not_know_the_toy_benchmark():
    package = Path(paperlib.__file__).parent
    assert not any("toy-eval" in p.read_text() or "Quennet" in p.read_text() for p in package.rglob("*.py"))


def test_the_protocol_tunes_every_method_on_a_registered_benchmark(toy, tmp_path, monkeypatch):
    """Sweep, selection against the starting model's MU, seeds: every run planned by the plug-in, evaluated by
    its evaluator, read through its scores."""
    bench, planned = toy
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path))
    profile = get_profile("smoke")
    g = tuning.grid(profile)
    tuned = protocol.tune(profile, benchmarks.get("toy"))
    sweep, selected, seeds = tuned["sweep"], tuned["selected"], tuned["seeds"]
    assert list(selected["method"]) == ["GA", "NPO"] and set(selected["target"]) == {"quennet"}
    assert set(sweep["epoch"]) == set(range(1, g.epochs + 1)) and set(sweep["status"]) == {"completed"}
    assert {"forget_nll", "retain_nll", "FQ", "MU"} <= set(sweep.columns)
    assert sorted(seeds["seed"]) == sorted(list(g.seeds) * 2)
    runs = len(g.lrs) * 2 + (len(g.seeds) - 1) * 2  # the sweep, then every further seed at the selected point
    assert len(planned) == runs and {m for _, m, _ in planned} == {"GA", "NPO"}
    ga = sweep[sweep["method"] == "GA"]
    assert ga["FQ"].iloc[-1] > toy_eval(*_start(bench), profile, {}, None)["forget_nll"]  # GA raised the NLL
    assert bool(selected.iloc[0]["qualified"]) == tuning.keeps_utility(
        seeds[seeds["method"] == "GA"]["MU"], bench.reference(profile)["quennet"])


def _start(bench):
    from paperlib.engine.models import load_model, load_tokenizer

    path = bench.request(get_profile("smoke"), "quennet", "GA", protocol.Point(1e-3)).model
    return load_model(path).eval(), load_tokenizer(path)


def test_an_unknown_benchmark_is_named():
    with pytest.raises(PaperlibError, match="unknown benchmark 'nope'; allowed: .*rwku"):
        benchmarks.get("nope")


def test_tofu_muse_and_rwku_are_plug_ins_in_their_own_folders():
    assert benchmarks.builtin() == ["muse.plugin", "rwku.plugin", "tofu.plugin"]
    folder = Path(benchmarks.__file__).parent
    for name in ("tofu", "muse", "rwku"):
        assert benchmarks.get(name).name == name
        assert {"data.py", "mini.py", "metrics.py", "evaluate.py", "plugin.py"} <= {p.name for p in
                                                                                    (folder / name).glob("*.py")}


def test_final_columns_run_every_seed_to_the_selected_epoch(monkeypatch):
    """A benchmark with `final` columns reads each seed run's own folder: seed 0 is the sweep's run when the
    selected epoch is its last, else a run that stops there; without `final`, seed 0 is the sweep's row."""
    planned = []

    def execute(points):
        planned.extend(points)
        return [{"status": {"status": "completed"}, "summary": {"MU": 1.0}, "epochs": [{"epoch": p.stop_epoch,
                 "MU": 1.0}], "path": Path(f"run-{p.seed}")} for p in points]

    monkeypatch.setattr(protocol, "execute", execute)
    profile = get_profile("smoke")
    g = tuning.grid(profile, "GA")
    fields = ("fake", ("GA",), lambda p: ["t"], lambda profile, target, method, point: point, dict,
              lambda p: {"t": 1.0}, ("MU",))
    final = benchmarks.Benchmark(*fields, final=lambda info: {"folder": str(info["path"])})
    arm = protocol.Arm("t", "GA")
    sweep = pd.DataFrame([{"target": "t", "method": "GA", "lr": 1e-3, "epoch": e, "status": "completed", "MU": 1.0}
                          for e in range(1, g.epochs + 1)])
    rows = protocol.seed_points(profile, final, {arm: (1e-3, g.epochs)}, sweep, every_epoch=True)
    assert planned[0] == protocol.Point(1e-3, 0, 0, True)  # the sweep's own run: its folder has the final logs
    assert planned[1:] == [protocol.Point(1e-3, s, g.epochs, False) for s in g.seeds[1:]]
    assert [r["folder"] for r in rows] == [f"run-{s}" for s in g.seeds] and {r["epoch"] for r in rows} == {g.epochs}
    planned.clear()
    protocol.seed_points(profile, final, {arm: (1e-3, 1)}, sweep)
    assert planned[0] == protocol.Point(1e-3, 0, 1, False)  # not the sweep's last epoch: a run that stops there
    planned.clear()
    rows = protocol.seed_points(profile, benchmarks.Benchmark(*fields), {arm: (1e-3, 1)}, sweep)
    assert [p.seed for p in planned] == list(g.seeds[1:]) and rows[0]["seed"] == 0  # seed 0: the sweep's row


def test_plan_rows_list_the_runs_the_protocol_launches():
    """The dry run's rows of one arm: every lr of the grid, every further seed, every seed on the second draw."""
    profile = get_profile("smoke")
    g = tuning.grid(profile, "GA")
    rows = protocol.plan_rows(profile, "GA", {"model": "m", "method": "GA"}, {"k": 1}, draw=("m2", 7))
    assert len(rows) == len(g.lrs) + (len(g.seeds) - 1) + len(g.seeds)
    assert [r["hyperparameters"] for r in rows[:len(g.lrs)]] == [{"k": 1, "lr": lr} for lr in g.lrs]
    assert rows[0]["evaluations"] == (g.epochs if g.every_epoch else 1) and rows[-1]["evaluations"] == 1
    drawn = rows[-len(g.seeds):]
    assert {r["model"] for r in drawn} == {"m2"} and [r["hyperparameters"]["seed"] for r in drawn] == list(g.seeds)
    assert all(r["hyperparameters"]["draw"] == 7 for r in drawn)
    alone = protocol.plan_rows(profile, "GA", {}, {}, seeds=False, draw=("m2", 7), every_epoch=False)
    assert len(alone) == len(g.lrs) + 1 and alone[-1]["hyperparameters"]["seed"] == 0  # seed 0 on the draw only
    assert alone[0]["evaluations"] == 1
