"""Self-distillation targets vs the retain model (studies.distill, notebook 10), by hand on a 3-token vocabulary."""

import math

import pandas as pd
import pytest
import torch

from paperlib.engine.config import get_profile
from paperlib.methods import losses
from paperlib.studies import claims, distill

LN = math.log


def _logits(*rows):
    """[1, T, 3] logits whose softmax is each row (rows of probabilities)."""
    return torch.tensor([[[LN(p) for p in row] for row in rows]], dtype=torch.float64)


# position 0: prompt (ignored); 1: gold token 0; 2: gold token 2
LABELS = torch.tensor([[-100, 0, 2]])


def test_unilogit_target_gives_the_gold_token_1_over_v_and_keeps_the_other_ratios():
    z = torch.tensor([[[9.0, 9.0, 9.0], [5.0, LN(1), LN(3)], [0.0, 0.0, 0.0]]], dtype=torch.float64)
    q = distill.soft_target("Unilogit", z, LABELS)
    # z'_0 = logsumexp(log 1, log 3) - log 2 = log 2  ->  softmax(log 2, log 1, log 3) = (1/3, 1/6, 1/2)
    assert q[0, 1].tolist() == pytest.approx([1 / 3, 1 / 6, 1 / 2])
    assert q[0, 2].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])  # uniform logits stay uniform
    assert q[0, 0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])  # ignored position: softmax of the logits
    # what training sees: Unilogit's loss at these logits is the token mean of KL(p_z || q) with the q above
    p = [math.exp(v) / (math.exp(5) + 4) for v in (5.0, 0.0, LN(3))]
    by_hand = sum(a * LN(a / b) for a, b in zip(p, (1 / 3, 1 / 6, 1 / 2), strict=True)) / 2  # position 2: KL 0
    assert losses.unilogit_loss(z, LABELS).item() == pytest.approx(by_hand)


def test_undial_target_lowers_the_original_gold_logit_by_beta():
    z = _logits([1 / 3] * 3, [4 / 8, 1 / 8, 3 / 8], [1 / 3] * 3)
    q = distill.soft_target("UnDIAL", z, LABELS, beta=LN(4))
    # gold logit log(4/8) - log 4 = log(1/8): softmax -> (1, 1, 3) / 5
    assert q[0, 1].tolist() == pytest.approx([1 / 5, 1 / 5, 3 / 5])
    # what training sees: UnDIAL's loss (the model = the original here) is the token mean of CE(q, p_z); position
    # 2 (uniform, gold 2 lowered by log 4): q = (4, 4, 1) / 9, CE = log 3
    ce1 = -sum(a * LN(b) for a, b in zip((1 / 5, 1 / 5, 3 / 5), (4 / 8, 1 / 8, 3 / 8), strict=True))
    assert q[0, 2].tolist() == pytest.approx([4 / 9, 4 / 9, 1 / 9])
    assert losses.undial_loss(z, z, LABELS, beta=LN(4)).item() == pytest.approx((ce1 + LN(3)) / 2)
    with pytest.raises(ValueError, match="allowed: Unilogit, UnDIAL"):
        distill.soft_target("GA", z, LABELS)


def test_target_kl_is_the_token_mean_of_kl_retain_to_target_over_answer_tokens():
    retain = _logits([0.9, 0.05, 0.05], [1 / 2, 1 / 4, 1 / 4], [1 / 3, 1 / 3, 1 / 3])
    target = torch.tensor([[[1.0, 0.0, 0.0], [1 / 3, 1 / 6, 1 / 2], [1 / 3, 1 / 3, 1 / 3]]], dtype=torch.float64)
    # position 1: 0.5 ln(1.5) + 0.25 ln(1.5) + 0.25 ln(0.5) = 0.130812; position 2: 0; the prompt (a zero target
    # probability, infinite KL) is not counted
    assert distill.target_kl(retain, target, LABELS) == pytest.approx((0.75 * LN(1.5) - 0.25 * LN(2)) / 2)
    undial = torch.tensor([[[1 / 3] * 3, [1 / 5, 1 / 5, 3 / 5], [1 / 3] * 3]], dtype=torch.float64)
    expected = 0.5 * LN(2.5) + 0.25 * LN(1.25) + 0.25 * LN(0.25 / 0.6)  # 0.295064
    assert distill.target_kl(retain, undial, LABELS) == pytest.approx(expected / 2)
    assert expected == pytest.approx(0.295064, abs=1e-6)
    total, count = distill.kl_sum(retain, undial.log(), LABELS)
    assert (total, count) == (pytest.approx(expected), 2)


def test_output_kl_to_the_retain_model():
    retain = _logits([1 / 3] * 3, [1 / 2, 1 / 4, 1 / 4], [1 / 3] * 3)
    model = _logits([0.8, 0.1, 0.1], [1 / 4, 1 / 4, 1 / 2], [1 / 3] * 3)
    # KL((1/2, 1/4, 1/4) || (1/4, 1/4, 1/2)) = 0.5 ln 2 + 0.25 ln(1/2) = 0.25 ln 2, then / 2 answer tokens
    assert distill.output_kl(retain, model, LABELS) == pytest.approx(0.25 * LN(2) / 2)
    assert distill.output_kl(retain, retain, LABELS) == pytest.approx(0.0, abs=1e-12)


def _figure5() -> distill.Figure5:
    pts = pd.DataFrame([
        {"label": "Unilogit", "method": "Unilogit", "seed": 0, "epoch": 1, "final": False, "target KL": 0.8,
         "output KL": 0.5},
        {"label": "Unilogit", "method": "Unilogit", "seed": 0, "epoch": 2, "final": True, "target KL": 0.6,
         "output KL": 0.3},
        {"label": "Unilogit", "method": "Unilogit", "seed": 1, "epoch": 1, "final": False, "target KL": 0.6,
         "output KL": 0.5},
        {"label": "Unilogit", "method": "Unilogit", "seed": 1, "epoch": 2, "final": True, "target KL": 0.2,
         "output KL": 0.1},
        {"label": "GA", "method": "GA", "seed": 0, "epoch": 2, "final": True, "target KL": 2.0, "output KL": 4.0},
    ])
    return distill.Figure5(pts, {"target KL": 1.0, "output KL": 0.9}, {3.0: 1.5, 10.0: 0.4})


def test_figure5_tables():
    fig5 = _figure5()
    a = fig5.target_table().set_index("method")
    # per seed: mean of the targets at epochs 0 (original: 1.0), 1, 2 -> 0.8 and 0.6; then mean ± sd over seeds
    assert a.loc["Unilogit", "target KL"] == pytest.approx(0.7)
    assert a.loc["Unilogit", "target KL sd"] == pytest.approx(math.sqrt(0.02))
    assert a.loc["UnDIAL β=10", "target KL"] == 0.4 and a.loc["UnDIAL β=10", "target KL sd"] == 0
    b = fig5.epoch_table()
    uni = b[b["method"] == "Unilogit"].set_index("epoch")["target KL"]
    assert uni.to_dict() == pytest.approx({0: 1.0, 1: 0.7, 2: 0.4})
    assert list(b[b["method"] == "UnDIAL β=3"]["target KL"]) == [1.5, 1.5, 1.5]  # fixed target: flat
    c = fig5.output_table().set_index("method")
    assert list(c.index) == ["Original", "Unilogit", "GA"]  # the baseline first, final checkpoints only
    assert c.loc["Unilogit", "output KL"] == pytest.approx(0.2) and c.loc["GA", "output KL"] == 4.0
    fig = distill.figure5_plot(fig5)
    assert len(fig.axes) == 3


def test_distill_claim_needs_the_intervals_to_separate():
    def table(uni, sd):
        return pd.DataFrame({"method": ["Unilogit", "UnDIAL β=3", "UnDIAL β=10"], "target KL": [uni, 0.5, 0.3],
                             "target KL sd": [sd, 0.0, 0.0]})

    def tuned(fq):  # notebook 10's table of the reported points (FQ mean over seeds)
        return pd.DataFrame({"method": ["Original", "GA", "Unilogit", "UnDIAL β=3", "UnDIAL β=10"],
                             "FQ": [1e-20, 0.9, fq, fq, fq]})

    assert claims.distill_claim(table(0.1, 0.01), tuned(0.2)).verdict == claims.REPRODUCED
    assert claims.distill_claim(table(0.29, 0.02), tuned(0.2)).verdict == claims.INCONCLUSIVE  # overlaps 0.3
    assert claims.distill_claim(table(0.4, 0.01), tuned(0.2)).verdict == claims.NOT_REPRODUCED  # beta 10 lower
    # the targets separate, but none of the compared runs forgot (GA did, but it has no soft target)
    c = claims.distill_claim(table(0.1, 0.01), tuned(1e-30))
    assert (c.notebook, c.verdict) == ("10", claims.NOT_TESTABLE)


def test_runs_reuse_notebook_01s_undial_and_plan_lists_the_new_runs():
    paper = get_profile("paper")
    runs = {r.label: r for r in distill.runs(paper)}
    assert list(runs) == ["GA", "NPO", "Unilogit", "UnDIAL β=3", "UnDIAL β=10", "UnDIAL β=30"]
    assert runs["UnDIAL β=10"].overrides == {} and runs["UnDIAL β=30"].overrides == {"beta": 30.0}
    planned = distill.plan(paper)
    betas = {p["hyperparameters"].get("beta") for p in planned if p["method"] == "UnDIAL"}
    assert betas == {3.0, 30.0, None}
    assert any(p["hyperparameters"].get("stop_epoch") == 1 and p["method"] == "Unilogit" for p in planned)


def test_figure5_is_cached_bit_for_bit_and_keyed_by_its_models(monkeypatch):
    """The KL analysis computed directly, built into the cache and served from it are the same bits; a warm
    call computes nothing; another checkpoint (by content) is another entry."""
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine import cache

    profile = get_profile("smoke")
    forget = profile.benchmark.forget
    retain, original = pipeline.retain_model(profile, forget), pipeline.original_model(profile)
    ckpts = pd.DataFrame([  # stand-ins for saved unlearned models: the retain and original models themselves
        {"label": "Unilogit", "method": "Unilogit", "seed": 0, "epoch": 1, "final": False, "path": original},
        {"label": "Unilogit", "method": "Unilogit", "seed": 0, "epoch": 2, "final": True, "path": retain},
        {"label": "GA", "method": "GA", "seed": 0, "epoch": 2, "final": True, "path": original}])
    cold = distill.compute_figure5(profile, forget, ckpts)
    built = distill.figure5(profile, forget, ckpts, force=True)

    def no_compute(*args, **kwargs):
        raise AssertionError("a warm figure5 recomputed the KL analysis")

    monkeypatch.setattr(distill, "compute_figure5", no_compute)
    warm = distill.figure5(profile, forget, ckpts)
    for got in (built, warm):
        pd.testing.assert_frame_equal(got.points, cold.points, check_exact=True)
        assert got.original == cold.original and got.undial == cold.undial
        for name in ("target_table", "epoch_table", "output_table"):
            pd.testing.assert_frame_equal(getattr(got, name)(), getattr(cold, name)(), check_exact=True)
    assert cold.points.loc[1, "output KL"] == 0.0  # the retain model against itself
    # keyed by the models' content: the same rows with another model are another key; the code is fingerprinted
    other = ckpts.assign(path=[retain, retain, original])
    assert cache.config_hash(distill.kl_config(profile, forget, other), distill.KL_ANALYSIS) != \
        cache.config_hash(distill.kl_config(profile, forget, ckpts), distill.KL_ANALYSIS)
    assert "studies/distill" in cache.code_modules(distill.KL_ANALYSIS)
    assert distill.kl_config(profile, forget, ckpts)["retain"] == pipeline.model_identity(retain)
