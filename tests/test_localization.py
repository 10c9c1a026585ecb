"""The oracle pipeline and `paperlib mask` / `unlearn --mask` end to end in the smoke profile (reuses the smoke
models of the run cache; about 25 s once they exist). The oracle part of `study` plans masked `unlearn` runs:
the masked run of the first test covers one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from paperlib.benchmarks.tofu import pipeline
from paperlib.cli import main
from paperlib.engine import cache
from paperlib.engine.config import get_profile
from paperlib.engine.models import load_model
from paperlib.engine.unlearn import read_run, unlearned_model
from paperlib.methods import masks
from paperlib.studies import localization


def _changed_only_inside(before: str, after: str, mask: dict[str, torch.Tensor]) -> None:
    a, b = dict(load_model(before).named_parameters()), dict(load_model(after).named_parameters())
    for n, p in b.items():
        keep = ~mask[n] if n in mask else torch.ones_like(p, dtype=torch.bool)
        assert torch.equal(p.detach()[keep], a[n].detach()[keep]), n
    assert any(not torch.equal(b[n].detach(), a[n].detach()) for n in mask)


def test_mask_cli_then_masked_unlearning(tmp_path, capsys):
    profile = get_profile("smoke")
    out = tmp_path / "mask"
    main(["mask", "--attribution", "gradient", "--ratio", "0.1", "--profile", "smoke", "--out", str(out)])
    mask, info = masks.load_mask(out, pipeline.original_model(profile))
    assert info["config"]["attribution"] == "gradient" and abs(info["summary"]["ratio"] - 0.1) < 1e-3
    main(["unlearn", "--method", "GA", "--profile", "smoke", "--mask", str(out), "--set", "epochs=1",
          "--out", str(tmp_path / "run")])
    assert read_run(tmp_path / "run")["status"]["status"] == "completed"
    _changed_only_inside(pipeline.original_model(profile), str(unlearned_model(tmp_path / "run")), mask)
    assert "copied to" in capsys.readouterr().out
    points = localization.run_points(tmp_path / "run")
    assert len(points) == 1 and 0 <= points[0]["FS"] <= 1 and points[0]["epoch"] == 1


def test_oracle_injection_and_runs():
    profile = get_profile("smoke")
    oracle = localization.oracle_mask(profile)
    comp = localization.oracle_mask(profile, complement=True)
    assert set(oracle) == set(comp) and all(n.endswith("mlp.down_proj.weight") for n in oracle)
    assert not any((oracle[n] & comp[n]).any() for n in oracle)
    assert sum(int(m.sum()) for m in oracle.values()) == sum(int(m.sum()) for m in comp.values())
    injected = localization.injected_model(profile)
    _changed_only_inside(pipeline.retain_model(profile, "forget10"), injected, oracle)
    # the injection is fingerprinted: an edit of paperlib/studies/injection.py (or masks, train, ...) rebuilds it
    assert {"studies/injection", "methods/masks"} <= set(cache.code_modules("inject"))
    assert cache.read_manifest(Path(injected))["code"] == cache.code_fingerprint("inject")
    # the budget chosen by the rule: its record, and the model it names is the one the oracle unlearns
    sel = localization.inject_selection(profile)
    assert sel["chosen"] == sel["candidates"][sel["index"]]["changes"]
    assert injected == localization.injected_model(profile, train_changes=sel["chosen"])
    assert 0 <= sel["FS_injected"] <= 1 and sel["FS_original"] <= sel["FS_retain"]
    assert "injected model: FS" in localization.describe_selection(sel)


def test_select_budget_by_hand():
    import pytest

    from paperlib.engine.errors import PaperlibError

    # original FS 0.1, retain MU 0.8: a candidate qualifies with FS <= 0.1 and MU >= 0.76
    c = [{"FS": 0.7, "MU": 0.8}, {"FS": 0.1, "MU": 0.75}, {"FS": 0.1, "MU": 0.76}, {"FS": 0.0, "MU": 0.8}]
    assert localization.select_budget(c, 0.1, 0.8) == (2, False)  # the smallest budget that qualifies
    assert localization.select_budget(c[:2], 0.1, 0.8) == (1, True)  # none: the largest, flagged
    assert localization.select_budget(c, 0.0, 0.8) == (3, False)
    assert localization.select_budget(c, 0.0, 0.9) == (3, True)  # MU below 95% of the retain model's
    assert localization.select_budget(c[1:], 0.1, 0.8, mu_fraction=0.9) == (0, False)
    with pytest.raises(PaperlibError):
        localization.select_budget([], 0.1, 0.8)


# ----------------------------------------------------------------------------------------- notebook 09
def _pts(label: str, seed: int, pts: list[tuple], lr: float = 1e-3, status: str = "completed") -> list[dict]:
    """(epoch, FS, RS, MU, FQ) tuples as curve rows (epoch 0 = the initial model)."""
    return [{"label": label, "part": "masks", "loss": "NPO", "mask": "wagle", "lr": lr, "seed": seed, "epoch": e,
             "FS": fs, "RS": rs, "MU": mu, "FQ": fq, "status": "initial" if e == 0 else status}
            for e, fs, rs, mu, fq in pts]


def test_strength_table_by_hand():
    import pandas as pd
    import pytest

    init = (0, 0.2, 0.8, 0.5, 0.01)
    seed0 = [init, (1, 0.6, 0.6, 0.5, 0.1), (2, 1.0, 0.2, 0.4, 0.5)]  # AUES .16 + .28 + .16 = .60
    seed1 = [init, (1, 0.5, 0.7, 0.49, 0.2), (2, 0.9, 0.1, 0.3, 0.9)]  # AUES .16 + .225 + .16 = .545
    curves = pd.DataFrame(_pts("w", 0, seed0) + _pts("w", 1, seed1))
    sweep = pd.DataFrame(_pts("w", 0, seed0[1:]) + _pts("w", 0, [(1, 0.8, 0.7, 0.5, 0.3)], lr=3e-3))
    selected = pd.DataFrame([{"label": "w", "lr": 1e-3, "epoch": 1, "qualified": True}])
    initial = {"epoch": 0, "FS": 0.2, "RS": 0.8, "MU": 0.5, "FQ": 0.01}
    row = localization.strength_table(curves, selected, sweep, initial).iloc[0]
    assert row["AUES"] == pytest.approx(0.5725) and row["AUES sd"] == pytest.approx(0.055 / 2 ** 0.5)
    # MU >= 0.475: the initial point and epoch 1 of each seed qualify
    assert row["MU95 FQ"] == pytest.approx(0.15) and row["MU95 FS"] == pytest.approx(0.55)
    # seed 0 pooled over both lrs: envelope (.2, .8), (.8, .7), (1, .2): .16 + .45 + .09
    assert row["AUES all lrs"] == pytest.approx(0.70)
    assert (row["seeds"], row["MU95"], row["epoch"]) == ("2/2", "yes", 1)
    diverged = pd.concat([curves, pd.DataFrame(_pts("w", 1, [(3, None, None, None, None)], status="diverged"))])
    row = localization.strength_table(diverged, selected, sweep, initial).iloc[0]
    assert row["seeds"] == "1/2" and row["AUES"] == pytest.approx(0.60) and row["AUES sd"] == 0


def test_random_mask_claim():
    import pandas as pd

    from paperlib.studies import claims

    def table(wagle: float, sd: float, seeds: str = "3/3", fq: float = 0.2, pooled: float = 0.3):
        return pd.DataFrame([
            {"loss": "NPO", "mask": "random", "seeds": "3/3", "AUES": 0.5, "AUES sd": 0.01, "MU95 FQ": fq,
             "AUES all lrs": 0.5},
            {"loss": "NPO", "mask": "wagle", "seeds": seeds, "AUES": wagle, "AUES sd": sd, "MU95 FQ": fq,
             "AUES all lrs": pooled},
            {"loss": "NPO", "mask": "memflex", "seeds": "1/1", "AUES": 0.9, "AUES sd": 0.0, "MU95 FQ": fq,
             "AUES all lrs": 0.9}])

    assert claims.random_mask_claim(table(0.3, 0.01)).verdict == claims.REPRODUCED  # random above beyond sd
    assert claims.random_mask_claim(table(0.7, 0.01)).verdict == claims.NOT_REPRODUCED  # localized above
    assert claims.random_mask_claim(table(0.51, 0.02)).verdict == claims.INCONCLUSIVE  # within the spread
    assert claims.random_mask_claim(table(0.3, 0.01, "1/3")).verdict == claims.INCONCLUSIVE  # no seeded pair
    c = claims.random_mask_claim(table(0.3, 0.01))
    assert "memflex" in c.evidence and "not compared (fewer than 2 seeds): NPO memflex (1/1)" in c.evidence
    # random above beyond the spread, but no mask forgot (MU95 FQ < 0.05): not testable
    assert claims.random_mask_claim(table(0.3, 0.01, fq=1e-33)).verdict == claims.NOT_TESTABLE
    # pooled over learning rates WAGLE is above random: the selected-lr result alone does not decide
    assert claims.random_mask_claim(table(0.3, 0.01, pooled=0.6)).verdict == claims.INCONCLUSIVE


def test_paper_plan_of_notebook_09():
    from paperlib import runner

    runs = runner.plan("paper", only=["09"])["09_localized_unlearning"]
    s = localization.SCALES["paper"]
    models = {r.model_name for r in runs}
    assert models == {"Llama-3.1-8B-Instruct", "OLMo-2-7B-Instruct"}  # the paper's two loc-unlearn models
    assert sum(r.method == "inject" for r in runs) == len(models)
    assert sum(r.method == "finetune" for r in runs) == 2  # OLMo-2 has no TOFU checkpoints: original, retain
    unlearning = [r for r in runs if r.method not in ("inject", "finetune")]
    per_arm = 1 + 2  # the paper grid's one lr, then seeds 1 and 2
    n_arms = len(s.losses) * len(s.masks) + len(s.oracle_losses) * 2
    drawn = [r for r in unlearning if "draw" in r.hyperparameters]
    assert len(unlearning) - len(drawn) == len(models) * per_arm * n_arms
    # the second draw (`redraw`): only OLMo-2, whose original is fine-tuned here, not published; every arm has seeds
    assert {r.model_name for r in drawn} == {"OLMo-2-7B-Instruct"} and len(drawn) == n_arms * 3
    assert {r.hyperparameters["mask"] for r in unlearning} == {*s.masks, "oracle", "complement"}


def test_study_is_cached_bit_for_bit(monkeypatch):
    """Notebook 09's study computed directly, built into the cache and served from it are the same bits (frames,
    dtypes, index, table); a warm call computes nothing; the key holds the profile and the models' content."""
    profile = get_profile("smoke")
    forget = profile.benchmark.forget
    cold = localization.compute_study(profile, forget, "masks")
    built = localization.study(profile, forget, "masks", force=True)

    def no_compute(*args, **kwargs):
        raise AssertionError("a warm study recomputed")

    monkeypatch.setattr(localization, "compute_study", no_compute)
    warm = localization.study(profile, forget, "masks")
    for got in (built, warm):
        for name in ("sweep", "selected", "curves"):
            pd.testing.assert_frame_equal(getattr(got, name), getattr(cold, name), check_exact=True)
        assert pd.Series(got.initial).equals(pd.Series(cold.initial))  # NaN FQ equals NaN
        pd.testing.assert_frame_equal(got.table(), cold.table(), check_exact=True)
    config = localization.study_config(profile, forget, "masks")
    assert config["original"] == pipeline.model_identity(pipeline.original_model(profile))
    assert cache.config_hash(config, localization.STUDY) != cache.config_hash(
        localization.study_config(profile, forget, "oracle"), localization.STUDY)
    assert {"studies/localization", "methods/masks", "engine/unlearn", "studies/injection"} <= set(
        cache.code_modules(localization.STUDY))
