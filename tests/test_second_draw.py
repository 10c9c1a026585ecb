"""The second draw of notebooks 09, 11 and 12 (issue 24): the selected points re-run, with every seed and no new
sweep, on tiny models trained from another seed; the first draw's cache keys unchanged; the paper profiles have
none. The runs are replaced by hand-made ones (what each run of the draw receives is recorded); the smoke
notebooks run them for real (tests/test_notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from paperlib import benchmarks
from paperlib.benchmarks.muse import evaluate as muse
from paperlib.benchmarks.muse import models as muse_models
from paperlib.benchmarks.rwku import base as rwku_base
from paperlib.benchmarks.rwku import evaluate as rwku
from paperlib.engine.config import get_profile
from paperlib.engine.corpus import TextCorpus
from paperlib.methods import tuning
from paperlib.studies import localization, protocol
from paperlib.studies import muse as muse_study
from paperlib.studies import palu as experiments
from paperlib.studies import rwku as rwku_study

SMOKE = get_profile("smoke")


def _keys(monkeypatch, module) -> list[dict]:
    """The configs `module`'s model stages are cached under (nothing is trained)."""
    seen: list[dict] = []
    monkeypatch.setattr(module, "cached_run", lambda kind, config, build, force=False: seen.append(config) or "m")
    return seen


def _planned_runs(monkeypatch, info) -> None:
    """Every planned run answered by `info(request)` (nothing trains; the requests are what the draw plans)."""
    monkeypatch.setattr(protocol, "execute", lambda requests: [info(r) for r in requests])


def test_the_draw_moves_only_the_seed_of_the_muse_and_rwku_models(monkeypatch):
    """Both benchmarks' tiny models start from the draw's pretrained base (issue 23) and train with its seed;
    nothing else in their keys moves."""
    other = experiments.second_draw(SMOKE)
    pipeline = muse_models.pipeline
    monkeypatch.setattr(pipeline, "base_model", lambda profile: f"base-{profile.base.seed}")
    monkeypatch.setattr(pipeline, "model_identity", lambda path: path)
    seen = _keys(monkeypatch, muse_models)
    monkeypatch.setattr(pipeline, "tokenizer_path", lambda profile, force=False: "tok")
    monkeypatch.setattr(muse_models, "file_digest", lambda path: "tokenizer digest")
    for profile in (SMOKE, other):
        muse_models.target_model(profile)
    first, second = seen
    assert first["train"] == muse_models.settings(SMOKE).train  # the first draw's key as before the draw existed
    assert second["train"].seed == experiments.DRAW_SEED
    assert (first["init"], second["init"]) == (f"base-{SMOKE.base.seed}", f"base-{other.base.seed}")
    moved = ("train", "init")
    assert {k: v for k, v in second.items() if k not in moved} == {k: v for k, v in first.items() if k not in moved}
    seen = _keys(monkeypatch, rwku_base)
    monkeypatch.setattr(rwku, "benchmark_source", lambda profile: "bench")
    for profile in (SMOKE, other):
        rwku_base.base_model(profile)
    assert seen[0]["train"] == rwku.settings(SMOKE).base and seen[1]["train"].seed == experiments.DRAW_SEED
    assert (seen[0]["init"], seen[1]["init"]) == (f"base-{SMOKE.base.seed}", f"base-{other.base.seed}")


def test_rwku_redraw_trains_every_seed_at_the_selected_point_on_the_other_base(monkeypatch):
    """Draw 1 selects (lr 1e-3, epoch 2) of GA on target "a"; the second draw trains seeds 0 and 1 there (seed 0
    too: no sweep) on its own base model, whose neighbour All 70 makes the mean 66 fall below 0.95 x 70."""
    cols = {c: 10.0 for c in rwku.TABLE_COLUMNS}
    calls = []

    def info(request):
        o = dict(request.overrides)
        calls.append((request.profile.base.seed, request.eval_args["target"], request.method, o["lr"], o["seed"],
                      o["stop_epoch"], request.eval_every_epoch))
        return {"epochs": [{"epoch": o["stop_epoch"], **cols, "neighbor All": 64.0 + 4 * o["seed"]}],
                "status": {"status": "completed"}}

    def original(profile):
        mu = 60.0 if profile.base.seed == 0 else 70.0
        return pd.DataFrame([{"target": "a", "method": "Original", **cols, "neighbor All": mu, "FQ": 90.0, "MU": mu}])

    _planned_runs(monkeypatch, info)
    monkeypatch.setattr(rwku, "corpus", lambda profile, target, spans=False, forget_corpus=None: TextCorpus(
        f"rwku:{target}", ("x y",), (), 8))
    monkeypatch.setattr(rwku, "eval_args", lambda profile, target: {"target": target})
    monkeypatch.setattr(rwku, "base_model", lambda profile: f"base-{profile.base.seed}")
    monkeypatch.setattr(rwku, "original_rows", original)
    selected = pd.DataFrame([{"target": "a", "method": "GA", "lr": 1e-3, "epoch": 2, "qualified": True}])
    other, tuned = rwku_study.redraw(SMOKE, {"selected": selected})
    seeds = tuning.grid(SMOKE).seeds
    assert calls == [(experiments.DRAW_SEED, "a", "GA", 1e-3, s, 2, False) for s in seeds]
    assert other.base.seed == experiments.DRAW_SEED and tuned["sweep"].empty
    assert list(tuned["seeds"]["seed"]) == list(seeds) and set(tuned["seeds"]["epoch"]) == {2}
    assert not tuned["selected"].iloc[0]["qualified"]  # mean 66 < 0.95 x 70 = 66.5 (the first draw's 60: kept)
    assert rwku_study.results_table(tuned).set_index("method").loc["Original", "neighbor All"] == 70.0
    assert rwku_study.redraw(get_profile("paper"), {"selected": selected}) is None


def test_muse_redraw_runs_seed_0_to_the_selected_epoch_and_compares_with_its_own_target(monkeypatch):
    calls = []

    summ = {muse.mm.VERBMEM: 0.5, muse.mm.KNOW_F: 0.2, muse.mm.KNOW_R: 0.6, muse.mm.PRIVLEAK: 1.0}

    def info(request):
        o = dict(request.overrides)
        calls.append((request.profile.finetune.seed, request.method, o["lr"], o["seed"], o["stop_epoch"],
                      request.eval_every_epoch))
        return {"status": {"status": "completed"}, "summary": summ, "epochs": [], "path": Path("run")}

    _planned_runs(monkeypatch, info)
    monkeypatch.setattr(muse, "auto_spans", lambda profile: ())
    monkeypatch.setattr(muse, "corpus", lambda profile, spans=None: TextCorpus("mini-muse", ("x y",), ("z",), 8))
    monkeypatch.setattr(muse, "engine_eval_args", lambda profile: {})
    monkeypatch.setattr(muse, "target_model", lambda profile: f"target-{profile.finetune.seed}")
    monkeypatch.setattr(muse, "sanity", lambda profile: pd.DataFrame(
        [{"model": "Target", "KnowMem-r": 70.0 if profile.finetune.seed else 60.0}]))
    monkeypatch.setattr(muse, "target_mu", lambda profile: 0.7 if profile.finetune.seed else 0.6)
    last = tuning.grid(SMOKE, "GA").epochs
    chosen = pd.DataFrame([{"target": "mini-muse", "method": "GA", "lr": 1e-3, "epoch": last, "qualified": True}])
    points = {protocol.Arm("mini-muse", "GA"): (1e-3, last)}
    first = muse_study.main_table(SMOKE, pd.DataFrame(protocol.seed_points(SMOKE, benchmarks.get("muse"), points,
                                                                           pd.DataFrame())))
    assert calls[0] == (0, "GA", 1e-3, 0, 0, True)  # the sweep's own run (its last epoch selected)
    calls.clear()
    other, table = muse_study.redraw(SMOKE, chosen)
    assert calls == [(experiments.DRAW_SEED, "GA", 1e-3, s, last, False) for s in tuning.grid(SMOKE).seeds]
    assert other.finetune.seed == experiments.DRAW_SEED
    mu95 = {t.set_index("method").loc["GA", "MU95"] for t in (first, table)}
    assert mu95 == {"yes", "no"}  # KnowMem-r 60 keeps 95% of the first target's 60, not of the second's 70
    assert muse_study.redraw(get_profile("paper"), chosen) is None


def test_localization_redraw_runs_every_seed_of_seeded_arms_at_the_given_lr_without_a_sweep(monkeypatch):
    arm = lambda name, seeds: localization.Arm("masks", "NPO", name, f"model-{name}", seeds)  # noqa: E731
    calls = []

    def info(request):
        o = dict(request.overrides)
        calls.append((request.profile.finetune.seed, request.model.removeprefix("model-"), o["lr"], o["seed"]))
        return {"epochs": [{"epoch": e, "forget_quality": 0.1, "model_utility": 0.5, "extraction_strength": 0.5,
                            "retain_extraction_strength": 0.5} for e in (1, 2)], "status": {"status": "completed"}}

    monkeypatch.setattr(localization, "arms", lambda profile, forget, part: [arm("random", True), arm("wagle", False)])
    _planned_runs(monkeypatch, info)
    monkeypatch.setattr(localization, "initial_point", lambda profile, model, forget: {
        "epoch": 0, "FQ": 0.01, "MU": 0.5, "FS": 0.2, "RS": 0.8})
    selected = pd.DataFrame([{"label": "NPO · random", "lr": 1e-3, "epoch": 1, "qualified": True},
                             {"label": "NPO · wagle", "lr": 3e-3, "epoch": 2, "qualified": True}])
    other = experiments.second_draw(SMOKE)
    got = localization.compute_study(other, "forget10", "masks", selected)
    seeds = tuning.grid(SMOKE).seeds
    assert calls == [(experiments.DRAW_SEED, "random", 1e-3, s) for s in seeds] + [
        (experiments.DRAW_SEED, "wagle", 3e-3, 0)]
    assert got.sweep.empty and got.selected is selected
    table = got.table().set_index("mask")
    assert "AUES all lrs" not in table and table.loc["random", "seeds"] == f"{len(seeds)}/{len(seeds)}"
    assert table.loc["wagle", "epoch"] == 2
    config = localization.study_config(other, "forget10", "masks", {"NPO · random": 1e-3})
    assert config["lrs"] == {"NPO · random": 1e-3}
    assert "lrs" not in localization.study_config(SMOKE, "forget10", "masks")  # the first draw's key as before
    assert localization.redraw(get_profile("paper"), "forget10", "masks", got) is None


@pytest.mark.parametrize("module", [muse_study, rwku_study])
def test_the_mini_plans_list_the_second_draws_runs(module):
    rows = module.plan(get_profile("mini"))
    drawn = [r for r in rows if r["hyperparameters"].get("draw") == experiments.DRAW_SEED]
    assert drawn and {r["hyperparameters"]["seed"] for r in drawn} == set(tuning.grid("mini").seeds)
    assert not any("draw" in r["hyperparameters"] for r in module.plan(get_profile("paper")))
