"""The tuning protocol (one grid, the MU95 selection rule, seeds) and the claims on hand-made tables."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest

from paperlib.engine.config import get_profile
from paperlib.methods import tuning
from paperlib.studies import claims


def sweep(rows):
    return pd.DataFrame(rows, columns=["method", "lr", "epoch", "status", "FQ", "MU"])


def test_select_highest_fq_among_points_keeping_95_percent_of_utility():
    table = sweep([("X", 1e-4, 1, "completed", 1e-5, 0.90),
                   ("X", 1e-4, 2, "completed", 0.30, 0.86),   # qualifies (0.86 >= 0.95 * 0.9 = 0.855)
                   ("X", 1e-3, 1, "completed", 0.90, 0.80),   # more forgetting, too little utility
                   ("X", 1e-3, 2, "diverged", math.nan, math.nan)])
    best = tuning.select(table, mu_original=0.9)
    assert (best["lr"], best["epoch"], best["FQ"], bool(best["qualified"])) == (1e-4, 2, 0.30, True)


def test_select_ties_prefer_higher_utility_then_smaller_lr():
    table = sweep([("X", 1e-3, 1, "completed", 0.5, 0.90), ("X", 1e-4, 1, "completed", 0.5, 0.95),
                   ("X", 3e-4, 2, "completed", 0.5, 0.95)])
    best = tuning.select(table, mu_original=0.9)
    assert (best["lr"], best["epoch"]) == (1e-4, 1)


def test_select_when_none_qualifies_takes_the_highest_utility_and_says_so():
    table = sweep([("X", 1e-4, 1, "completed", 0.9, 0.50), ("X", 1e-3, 1, "completed", 0.2, 0.70)])
    best = tuning.select(table, mu_original=0.9)
    assert (best["lr"], bool(best["qualified"])) == (1e-3, False)


def test_select_final_epoch_only_for_the_paper_protocol():
    table = sweep([("X", 1e-5, 1, "completed", 0.9, 0.9), ("X", 1e-5, 2, "completed", 0.1, 0.9)])
    assert tuning.select(table, 0.9, every_epoch=False)["epoch"] == 2


def test_select_refuses_a_sweep_with_no_completed_point():
    with pytest.raises(ValueError, match="no completed sweep point"):
        tuning.select(sweep([("X", 1e-3, 1, "diverged", math.nan, math.nan)]), 0.9)


def test_grid_is_the_same_for_every_method_and_at_least_four_log_spaced_lrs():
    g = tuning.grid("mini")
    assert len(g.lrs) >= 4 and len(g.seeds) >= 3 and g.every_epoch
    ratios = [b / a for a, b in zip(g.lrs, g.lrs[1:])]
    assert all(r > 1 for r in ratios) and max(ratios) / min(ratios) < 1.5  # roughly log-spaced
    mini = get_profile("mini")
    assert {tuning.train_config(mini, m).epochs for m in ("GA", "PALU", "NPO")} == {g.epochs}
    assert {tuning.grid(mini, m) for m in ("GA", "UnDIAL", "WGA")} == {g}  # tiny profiles: one grid for all
    assert tuning.train_config("paper", "UnDIAL").lr == 1e-4  # the paper profile keeps the papers' settings


class _Stop(Exception):
    """Raised by the patched `unlearn.resolve` once it has recorded what the training loop would get."""


def _trained_with(monkeypatch, call) -> list:
    """The TrainConfig(s) that `call()` hands to the training loop: `unlearn.resolve`'s TrainConfig is the run
    spec's `train`, which `unlearn._train_run` passes to `paperlib.engine.train.train`; recorded, then the run stops."""
    from paperlib.engine import unlearn

    seen, real = [], unlearn.resolve

    def resolve(profile, method, overrides=None):
        seen.append((method, real(profile, method, overrides)[1]))
        raise _Stop

    monkeypatch.setattr(unlearn, "resolve", resolve)
    with pytest.raises(_Stop):
        call()
    monkeypatch.setattr(unlearn, "resolve", real)
    return seen


def test_paper_profile_changes_reach_every_run_path(monkeypatch):
    """Paper profile: UnDIAL trains at lr 1e-4 for 10 epochs, WGA at lr 1e-5 for 5 epochs, NPO at the common
    lr 1e-5 for 10 epochs, on each run path (TOFU sweep, MUSE, RWKU, notebook 09 arms, notebook 10 checkpoints),
    as the training loop receives them; no model is loaded."""
    from paperlib.benchmarks.muse import evaluate as muse
    from paperlib.benchmarks.rwku import evaluate as rwku
    from paperlib.engine import corpus
    from paperlib.studies import distill, localization
    from paperlib.studies import muse as muse_study
    from paperlib.studies import palu as experiments
    from paperlib.studies import rwku as rwku_study

    paper = get_profile("paper")
    expected = {"UnDIAL": (1e-4, 10), "WGA": (1e-5, 5), "NPO": (1e-5, 10)}
    text = corpus.TextCorpus(name="x", forget=("a b c",), retain=("d e f",), block=8)
    monkeypatch.setattr(muse, "corpus", lambda *a, **k: text)
    monkeypatch.setattr(muse, "engine_eval_args", lambda *a, **k: {})
    monkeypatch.setattr(muse, "target_model", lambda *a, **k: "target")
    monkeypatch.setattr(rwku, "corpus", lambda *a, **k: text)
    monkeypatch.setattr(rwku, "eval_args", lambda *a, **k: {})
    monkeypatch.setattr(rwku, "target_names", lambda *a, **k: ["t"])
    monkeypatch.setattr(rwku, "original_rows", lambda *a, **k: pd.DataFrame([{"target": "t", "MU": 50.0}]))
    monkeypatch.setattr(localization, "initial_point", lambda *a, **k: {"MU": 0.5})
    for method, (lr, epochs) in expected.items():
        g = tuning.grid(paper, method)
        assert (g.lrs, g.epochs) == ((lr,), epochs)
        run = experiments.Run(method, method)
        monkeypatch.setattr(localization, "arms", lambda *a, m=method, **k: [localization.Arm("masks", m, "random",
                                                                                             "model", False)])
        paths = {"tofu": partial(experiments.tune, paper, [run], "forget05", seeds=False),
                 "muse": partial(muse_study.tune, paper, (method,), seeds=False),
                 "rwku": partial(rwku_study.tune, paper, (method,)),
                 "09": partial(localization.compute_study, paper, "forget05", "masks"),
                 "10": partial(distill.checkpoint, paper, run, "forget05", lr, 1, 2)}
        for name, call in paths.items():
            [(got_method, cfg)] = _trained_with(monkeypatch, call)
            assert (got_method, cfg.lr, cfg.epochs) == (method, lr, epochs), name
    assert dict(tuning.PAPER_TRAIN_CHANGES) == {"UnDIAL": {"lr": 1e-4}, "WGA": {"epochs": 5}}


def test_profile_scales_only_size_hyperparameters():
    mini = get_profile("mini")
    assert tuning.profile_hparams(mini, "PALU") == {"k": round(5000 * mini.model.tiny.vocab_size / 32000)}
    assert tuning.profile_hparams(mini, "NPO") == {} and tuning.profile_hparams("paper", "PALU") == {}


def test_mean_std_over_seeds():
    assert tuning.mean_std(pd.Series([1.0, 2.0, 3.0])) == (2.0, 1.0)
    assert tuning.mean_std(pd.Series([4.0])) == (4.0, 0.0)
    assert all(math.isnan(x) for x in tuning.mean_std(pd.Series([math.nan])))


# ----------------------------------------------------------------------------------------- claims
def table(rows, by="method"):
    return pd.DataFrame(rows, columns=[by, "FQ", "FQ sd", "MU", "MU sd", "MU95"])


NOTHING = 1e-10  # an FQ far below FORGOTTEN_P: nothing forgotten (the ordering can still be clear-cut)


def test_forgetting_rule_is_one_threshold():
    assert claims.FORGOTTEN_P == 0.05 and claims.NOT_TESTABLE in claims.VERDICTS
    assert claims.forgot_fq(0.05) and not claims.forgot_fq(0.0499) and not claims.forgot_fq(math.nan)
    t = table([("A", 0.05, 0, 0.8, 0, "yes"), ("B", 0.04, 0, 0.8, 0, "yes")])
    assert claims.fq_forgetters(t, ["A", "B"]) == ["A"]


def test_main_claim():
    t = table([("PALU", 0.60, 0.05, 0.8, 0.01, "yes"), ("NPO", 0.40, 0.05, 0.8, 0.01, "yes")])
    assert claims.main_claim(t).verdict == claims.REPRODUCED          # 0.55 > 0.45, PALU forgot
    t = table([("PALU", 0.60, 0.15, 0.8, 0.01, "yes"), ("NPO", 0.40, 0.10, 0.8, 0.01, "yes")])
    assert claims.main_claim(t).verdict == claims.INCONCLUSIVE        # 0.45 < 0.50
    t = table([("PALU", 0.10, 0.01, 0.8, 0.01, "yes"), ("NPO", 0.40, 0.05, 0.8, 0.01, "yes")])
    assert claims.main_claim(t).verdict == claims.NOT_REPRODUCED
    # PALU far above NPO beyond the spread, but neither forgot (FQ < 0.05): not testable
    c = claims.main_claim(table([("PALU", NOTHING, NOTHING / 100, 0.8, 0, "yes"),
                                 ("NPO", NOTHING / 1e10, 0, 0.8, 0, "yes")]))
    assert c.verdict == claims.NOT_TESTABLE and "forgot (FQ >= 0.05): none" in c.evidence


def test_main_claim_only_counts_methods_keeping_utility():
    t = table([("PALU", 0.30, 0.01, 0.8, 0.01, "yes"), ("GA", 0.90, 0.01, 0.1, 0.01, "no"),
               ("Original", 1e-20, math.nan, 0.85, math.nan, "")])
    assert claims.main_claim(t).verdict == claims.REPRODUCED  # the only method keeping MU95, and it forgot
    t.loc[0, "FQ"] = NOTHING  # GA forgot, but it is not compared: PALU alone forgot nothing
    assert claims.main_claim(t).verdict == claims.NOT_TESTABLE
    t = table([("PALU", 0.30, 0.01, 0.5, 0.01, "no"), ("NPO", 0.1, 0.01, 0.8, 0.01, "yes")])
    assert claims.main_claim(t).verdict == claims.NOT_REPRODUCED  # PALU does not keep the utility


def test_localization_claim():
    def t(prefix, whole, prefix_mu95="yes"):
        return table([("all answer tokens", *whole, 0.8, 0.0, "yes"),
                      ("sensitive prefix (N=3)", *prefix, 0.8, 0.0, prefix_mu95)])

    assert claims.localization_claim(t((0.5, 0.05), (0.2, 0.05))).verdict == claims.REPRODUCED
    assert claims.localization_claim(t((0.2, 0.05), (0.5, 0.05))).verdict == claims.NOT_REPRODUCED
    assert claims.localization_claim(t((0.5, 0.2), (0.4, 0.2))).verdict == claims.INCONCLUSIVE
    assert claims.localization_claim(t((0.5, 0.05), (0.2, 0.05), "no")).verdict == claims.NOT_REPRODUCED
    assert claims.localization_claim(t((NOTHING, 0), (NOTHING / 1e5, 0))).verdict == claims.NOT_TESTABLE


def test_stability_claim_compares_utility_drops_per_seed():
    def curves(fq):
        rows = [("PALU", s, e, mu, fq) for s in range(3) for e, mu in ((1, 0.85), (2, 0.84))]
        rows += [("NCE", s, e, mu - 0.01 * s, fq) for s in range(3) for e, mu in ((1, 0.7), (2, 0.6))]
        return pd.DataFrame(rows, columns=["method", "seed", "epoch", "MU", "FQ"])

    # drops: PALU 0.02 ± 0, NCE 0.27 ± 0.01
    assert claims.stability_claim(curves(0.3), mu_original=0.86).verdict == claims.REPRODUCED
    assert claims.stability_claim(curves(NOTHING), mu_original=0.86).verdict == claims.NOT_TESTABLE
    flipped = curves(0.3).replace({"PALU": "NCE", "NCE": "PALU"})
    assert claims.stability_claim(flipped, mu_original=0.86).verdict == claims.NOT_REPRODUCED


def test_prefix_claim_needs_n3_to_forget():
    t = table([("3", 1e-10, 1e-11, 0.8, 0.0, "yes"), ("all", 1e-12, 1e-13, 0.8, 0.0, "yes")], by="N")
    assert claims.prefix_claim(t).verdict == claims.NOT_TESTABLE  # N=3 above N=all, nothing forgotten
    t = table([("3", 0.01, 0.001, 0.8, 0.0, "yes"), ("all", 0.6, 0.1, 0.8, 0.0, "yes")], by="N")
    c = claims.prefix_claim(t)
    assert c.verdict == claims.NOT_REPRODUCED and "N=3 does not forget" in c.evidence
    t = table([("3", 0.5, 0.1, 0.8, 0.0, "yes"), ("all", 0.6, 0.1, 0.8, 0.0, "yes")], by="N")
    assert claims.prefix_claim(t).verdict == claims.REPRODUCED   # forgets, not worse beyond the spread
    t = table([("3", 0.2, 0.01, 0.8, 0.0, "yes"), ("all", 0.6, 0.1, 0.8, 0.0, "yes")], by="N")
    assert claims.prefix_claim(t).verdict == claims.NOT_REPRODUCED


def test_topk_claim_checks_both_halves():
    def t(*fqs, sd=0.01):
        return table([(k, fq, sd, 0, 0, "") for k, fq in zip(("1", "64", "320", "640"), fqs)], by="K")

    assert claims.topk_claim(t(0.1, 0.3, 0.5, 0.2)).verdict == claims.REPRODUCED
    assert claims.topk_claim(t(NOTHING, 3 * NOTHING, 5 * NOTHING, 2 * NOTHING, sd=0)).verdict == claims.NOT_TESTABLE
    c = claims.topk_claim(t(0.25, 0.3, 0.5, 0.2))  # a mid K forgets most, but K=1 is above K=640
    assert c.verdict == claims.NOT_REPRODUCED and "K=1 is above another K" in c.evidence
    assert claims.topk_claim(t(0.1, 0.3, 0.5, 0.6)).verdict == claims.NOT_REPRODUCED  # K=640 above every mid K
    assert claims.topk_claim(t(0.1, 0.3, 0.5, 0.2, sd=0.1)).verdict == claims.INCONCLUSIVE
    assert claims.topk_claim(t(0.1, 0.3, 0.5, 0.2).iloc[:2]).verdict == claims.INCONCLUSIVE  # two K values


def test_target_claim():
    def t(global_fq, zero_fq, global_mu95="yes", sd=0.01):
        return table([("global_mean", global_fq, sd, 0.8, 0, global_mu95), ("zero", zero_fq, sd, 0.8, 0, "yes"),
                      ("local_mean", 0.9, 0.01, 0.5, 0, "no")], by="target")  # highest FQ, but not at MU95

    assert claims.target_claim(t(0.5, 0.2)).verdict == claims.REPRODUCED
    assert claims.target_claim(t(0.2, 0.5)).verdict == claims.NOT_REPRODUCED
    assert claims.target_claim(t(0.5, 0.2, "no")).verdict == claims.NOT_REPRODUCED
    assert claims.target_claim(t(1e-3, 1e-4, sd=1e-5)).verdict == claims.NOT_TESTABLE  # above, nothing forgotten


def test_efficiency_claim():
    def timing(ms, sd=1.0):
        rows = [(2048, 1, "top-K local entropy", 50.0), (2048, 2048, "full-vocabulary", 1.0),  # small V: not used
                (8192, 8192, "full-vocabulary", 80.0), (8192, 1, "top-K local entropy", ms[0]),
                (8192, 1000, "top-K local entropy", ms[1]), (8192, 4000, "top-K local entropy", 500.0)]  # K >= V/4
        return pd.DataFrame([(v, k, loss, m, sd) for v, k, loss, m in rows], columns=["V", "K", "loss", "ms", "ms sd"])

    c = claims.efficiency_claim(timing((20.0, 30.0)))
    assert c.verdict == claims.REPRODUCED and "K=4000" not in c.evidence and "V = 8192" in c.evidence
    assert claims.efficiency_claim(timing((20.0, 79.0))).verdict == claims.INCONCLUSIVE  # K=1000 within the spread
    assert claims.efficiency_claim(timing((90.0, 100.0))).verdict == claims.NOT_REPRODUCED
    only_big = timing((20.0, 30.0))
    assert claims.efficiency_claim(only_big[~only_big["K"].isin([1, 1000])]).verdict == claims.INCONCLUSIVE


def test_privacy_claim_closest_auc_to_retain():
    def t(fq):
        return pd.DataFrame([("Original", 1.0, math.nan, 1e-20), ("Retain", 0.5, math.nan, 1.0),
                             ("PALU", 0.55, 0.01, fq), ("NPO", 0.8, 0.02, fq)],
                            columns=["method", "mia_min_k", "mia_min_k sd", "forget_quality"])

    assert claims.privacy_claim(t(0.3)).verdict == claims.REPRODUCED
    assert claims.privacy_claim(t(NOTHING)).verdict == claims.NOT_TESTABLE


def test_benchmark_claim_checks_each_part():
    models = pd.DataFrame([("Original", 1e-20, 0.87, 1.0), ("Retain", 1.0, 0.86, 0.5)],
                          columns=["method", "FQ", "MU", "EM"])
    assert claims.benchmark_claim(models).verdict == claims.REPRODUCED
    for column, row, value, part in (("MU", 1, 0.5, "general knowledge"), ("FQ", 0, 0.2, "truth ratios"),
                                     ("EM", 1, 1.0, "fewer forget questions")):
        broken = models.copy()
        broken.loc[row, column] = value
        c = claims.benchmark_claim(broken)
        assert c.verdict == claims.NOT_REPRODUCED and part in c.evidence, column


def test_claims_round_trip_through_an_executed_notebook(tmp_path):
    import nbformat

    claim = claims.Claim("04", "a finding", claims.NOT_TESTABLE, "numbers")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={claims.MIME: claim.__dict__,
                                                                        "text/plain": str(claim)})]
    nbformat.write(nb, tmp_path / "04_x.ipynb")
    assert claims.collect([tmp_path / "04_x.ipynb"]) == [claim]
    readme = tmp_path / "README.md"
    readme.write_text(f"top\n{claims.README_BEGIN}\nstale row\n{claims.README_END}\nbottom\n")
    claims.write_markdown([claim], "mini", tmp_path / "tables", readme)
    text = readme.read_text()
    assert "stale row" not in text and text.endswith("bottom\n")
    assert "| 04 | a finding | **not testable here** | – |\n" in text and "numbers" not in text  # compact: no evidence
    assert "| 04 | a finding | **not testable here** | – | numbers |" in (tmp_path / "tables" / "claims.md").read_text()


def test_robust_sets_the_second_draws_verdict_and_fragile_marks_a_change():
    first = claims.Claim("02", "a finding", claims.REPRODUCED, "numbers")
    same = claims.robust(first, claims.Claim("02", "a finding", claims.REPRODUCED, "other numbers"))
    flipped = claims.robust(first, claims.Claim("02", "a finding", claims.NOT_TESTABLE, "n2"))
    assert (same.second, same.fragile, same.robustness()) == (claims.REPRODUCED, False, claims.REPRODUCED)
    assert flipped.fragile and flipped.robustness() == "**fragile**: not testable here"
    assert flipped.evidence == "numbers. Second draw: n2" and flipped.verdict == claims.REPRODUCED
    assert claims.robust(first, None) == first and first.robustness() == claims.NO_DRAW  # no second draw made
    with pytest.raises(ValueError, match="another claim"):
        claims.robust(first, claims.Claim("03", "other", claims.REPRODUCED, "x"))
    with pytest.raises(ValueError, match="allowed"):
        claims.Claim("02", "f", claims.REPRODUCED, "e", second="probably")
    compact = claims.to_markdown([flipped, claims.robust(claims.Claim("05", "f5", claims.INCONCLUSIVE, "e"),
                                                         claims.Claim("05", "f5", claims.INCONCLUSIVE, "e"))],
                                 "mini", compact=True)
    assert "**Fragile** (the verdict changes with the draw): 02." in compact
    assert "| 05 | f5 | **inconclusive** | inconclusive |" in compact
    assert "No verdict changes" in claims.to_markdown([same], "mini", compact=True)
    assert "No second draw was made." in claims.to_markdown([first], "mini", compact=True)


def test_partial_reproduce_keeps_the_other_notebooks_claims(tmp_path):
    """`reproduce --only 12` updates row 12 and keeps rows 00 and 04 of the same profile, in notebook order; a
    table of another profile is replaced, not merged."""
    old = [claims.Claim("00", "f0", claims.REPRODUCED, "e0"), claims.Claim("12", "f12", claims.INCONCLUSIVE, "x"),
           claims.Claim("04", "f4", claims.NOT_REPRODUCED, "a / b", second=claims.NOT_TESTABLE),
           claims.Claim("05", "f5", claims.NOT_TESTABLE, "z", second=claims.NOT_TESTABLE)]
    claims.write_markdown(old, "mini", tmp_path)
    claims.write_markdown([claims.Claim("12", "f12", claims.REPRODUCED, "y")], "mini", tmp_path)
    rows = [line for line in (tmp_path / "claims.md").read_text().splitlines() if line.startswith("| 0") or
            line.startswith("| 1")]
    assert rows == ["| 00 | f0 | **reproduced** | – | e0 |",
                    "| 04 | f4 | **not reproduced** | **fragile**: not testable here | a / b |",
                    "| 05 | f5 | **not testable here** | not testable here | z |",
                    "| 12 | f12 | **reproduced** | – | y |"]
    # the kept rows read back with their second-draw verdicts
    claims.write_markdown([claims.Claim("12", "f12", claims.REPRODUCED, "y")], "mini", tmp_path)
    assert (tmp_path / "claims.md").read_text().count("**fragile**: not testable here") == 1
    claims.write_markdown([claims.Claim("12", "f12", claims.REPRODUCED, "y")], "smoke", tmp_path)
    assert "| 00 |" not in (tmp_path / "claims.md").read_text()


def test_same_seed_same_selection_and_numbers(tmp_path, monkeypatch):
    """The protocol end to end in the smoke profile, twice from an empty unlearning cache: the same sweep,
    the same selected points and the same seed numbers."""
    import shutil

    from paperlib.engine import cache
    from paperlib.studies import palu as experiments

    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    P = get_profile("smoke")
    runs = [experiments.Run("PALU", "PALU"), experiments.Run("NPO", "NPO")]
    first = experiments.tune(P, runs, "forget10")
    shutil.rmtree(cache.cache_root() / "unlearn")
    second = experiments.tune(P, runs, "forget10")
    cols = ["label", "lr", "epoch", "status", "FQ", "MU", "F-TR"]
    pd.testing.assert_frame_equal(first.sweep[cols], second.sweep[cols])
    pd.testing.assert_frame_equal(first.selected, second.selected)
    pd.testing.assert_frame_equal(first.table(), second.table())
    g = tuning.grid(P)
    assert len(first.sweep) == len(runs) * len(g.lrs) * g.epochs
    assert list(first.seeds.groupby("label").size()) == [len(g.seeds)] * len(runs)

    # the second draw (issue 24): the same selected points, every seed, on models trained from another seed
    from paperlib.benchmarks.tofu import pipeline

    other, redrawn = experiments.redraw(P, first, runs, "forget10")
    assert other.base.seed == other.finetune.seed == experiments.DRAW_SEED and other.benchmark == P.benchmark
    assert pipeline.original_model(other) != pipeline.original_model(P)
    assert redrawn.sweep.empty and list(redrawn.seeds.groupby("label").size()) == [len(g.seeds)] * len(runs)
    point = ["label", "lr", "epoch"]
    pd.testing.assert_frame_equal(redrawn.selected[point], first.selected[point])
    assert redrawn.selected["MU original"].iloc[0] == experiments.original_mu(other, "forget10")
    assert not np.array_equal(redrawn.seeds["F-TR"], first.seeds["F-TR"])  # seed 0 too: trained on the other draw
    assert experiments.second_draw(get_profile("paper")) is None  # one published original


def test_fq_is_compared_on_the_log_scale_when_the_table_has_it():
    """PALU 0.06 ± 0.1 vs WGA 0.2 ± 0.2 overlap linearly but not as p-values (log10: -3 ± 0.5 vs -0.8 ± 0.2);
    both forgot (mean FQ >= 0.05), so the comparison is decided."""
    t = pd.DataFrame([("PALU", 0.06, 0.1, -3.0, 0.5, 0.8, "yes"), ("WGA", 0.2, 0.2, -0.8, 0.2, 0.8, "yes")],
                     columns=["method", "FQ", "FQ sd", "log10 FQ", "log10 FQ sd", "MU", "MU95"])
    c = claims.main_claim(t)
    assert c.verdict == claims.NOT_REPRODUCED and c.evidence.startswith("log10 FQ")
    assert claims.main_claim(t.drop(columns=["log10 FQ", "log10 FQ sd"])).verdict == claims.INCONCLUSIVE
    n = t.replace({"PALU": "3", "WGA": "all"}).rename(columns={"method": "N"})
    n.loc[0, ["FQ", "log10 FQ", "log10 FQ sd"]] = [0.3, -0.5, 0.1]  # N=3 forgets, not below N=all in log10
    assert claims.prefix_claim(n).verdict == claims.REPRODUCED


def test_frontier_sentence_is_computed_from_the_sweep():
    from paperlib.studies import palu as experiments

    sweep_rows = pd.DataFrame([("GA", 1e-3, 1, "completed", 1e-9, 0.86), ("GA", 1e-3, 2, "completed", 0.5, 0.40),
                               ("GA", 1e-3, 3, "completed", 0.9, 0.10), ("PALU", 1e-3, 1, "completed", 1e-20, 0.85),
                               ("PALU", 1e-3, 2, "diverged", math.nan, math.nan)],
                              columns=["label", "lr", "epoch", "status", "FQ", "MU"])
    text = experiments.frontier_sentence(sweep_rows, mu_original=0.9)  # floor 0.855: GA epoch 1 qualifies
    assert "MU >= 0.855 (95% of the original's), the highest FQ is 1e-09 (GA, lr 0.001, epoch 1): nothing " \
           "forgotten (FQ >= 0.05)" in text
    assert "each method's with the highest MU: GA FQ 0.5 at MU 0.400." in text and "No point forgot for: PALU." in text
    assert "No sweep point of any method forgot" in experiments.frontier_sentence(sweep_rows.iloc[[0, 3]], 0.9)
