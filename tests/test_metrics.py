"""benchmarks.tofu.metrics: hand-computed cases, and open-unlearning's published Llama-2-7b-chat TOFU forget05 logs
(original and retain95 models) reproduced from their per-sample values."""

from __future__ import annotations

import json
import math

import pytest

from paperlib.benchmarks.tofu import metrics

LOGS = "open-unlearning-eval"
FULL = "tofu_Llama-2-7b-chat-hf_full/evals_forget05"
RETAIN = "tofu_Llama-2-7b-chat-hf_retain95"
ROUGE_METRICS = ("forget_Q_A_ROUGE", "retain_Q_A_ROUGE", "ra_Q_A_ROUGE", "wf_Q_A_ROUGE")


@pytest.fixture(scope="module")
def logs(shared_data) -> dict[str, dict]:
    """{"full", "retain"} -> {"eval": TOFU_EVAL.json, "summary": TOFU_SUMMARY.json}; copy to modify."""
    load = lambda run, f: json.loads((shared_data / LOGS / run / f).read_text())  # noqa: E731
    return {k: {"eval": load(run, "TOFU_EVAL.json"), "summary": load(run, "TOFU_SUMMARY.json")}
            for k, run in (("full", FULL), ("retain", RETAIN))}


def _eval_aggregates(log: dict) -> dict[str, float]:
    return {k: v["agg_value"] for k, v in log.items() if v.get("agg_value") is not None}


# ------------------------------------------------------------------------------------------------------------
# real logs


def test_full_model_log_reproduced(logs):
    full, retain = logs["full"], logs["retain"]
    s = metrics.summarize_tofu(full["eval"], retain["eval"])
    for expected in (full["summary"], _eval_aggregates(full["eval"])):
        assert {k: s[k] for k in expected} == pytest.approx(expected, rel=1e-9)
    assert s["forget_quality"] == pytest.approx(5.86730162802883e-14, rel=1e-9)
    assert s["privleak"] == pytest.approx(-99.99999998458455, rel=1e-9)


def test_retain_model_log_reproduced_without_reference(logs):
    retain = logs["retain"]
    with pytest.warns(UserWarning) as record:
        s = metrics.summarize_tofu(retain["eval"])
    messages = " ".join(str(w.message) for w in record)
    assert "forget_quality left out" in messages and "AUC_ref = 0.5" in messages
    assert "forget_quality" not in s
    for expected in (retain["summary"], _eval_aggregates(retain["eval"])):
        assert {k: s[k] for k in expected} == pytest.approx(expected, rel=1e-9)
    own = metrics.summarize_tofu(retain["eval"], retain["eval"])
    assert own["forget_quality"] == 1.0 and own["privleak"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("run", ["full", "retain"])
def test_mia_entries_reproduced(logs, run):
    log = logs[run]["eval"]
    names = [k for k in log if k.startswith("mia_")]
    assert {"mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "mia_gradnorm"} <= set(names)
    for name in names:
        got = metrics.mia_aggregates(log, name)
        want = {"auc": log[name]["auc"], "forget": log[name]["forget"]["agg_value"],
                "holdout": log[name]["holdout"]["agg_value"]}
        assert got == pytest.approx(want, rel=1e-9), name


@pytest.mark.parametrize("run", ["full", "retain"])
def test_rouge_reproduces_every_logged_generation(logs, run):
    n = 0
    for metric in ROUGE_METRICS:
        for i, row in logs[run]["eval"][metric]["value_by_index"].items():
            want = {k: row[k] for k in ("rouge1_recall", "rougeL_f1", "rougeL_recall")}
            pred, target = row["generation"], row["ground_truth"]
            assert metrics.rouge_scores(pred, target) == pytest.approx(want, rel=1e-9), (metric, i)
            assert metrics.rouge_l_recall(pred, target) == pytest.approx(row["rougeL_recall"], rel=1e-9)
            n += 1
    assert n == 200 + 400 + 100 + 117


def test_palu_columns_match_the_papers_table(logs):
    """PALU, main table, TOFU forget05 Llama-2-7B-chat: rows Original and Retain (Fluency is a classifier)."""
    original = metrics.palu_columns(metrics.summarize_tofu(logs["full"]["eval"], logs["retain"]["eval"]))
    retain = metrics.palu_columns(metrics.summarize_tofu(logs["retain"]["eval"], logs["retain"]["eval"]))
    cols = ("FQ", "MU", "EM", "F-TR", "Ra-TR", "R-TR", "Rw-TR")
    paper = {"Original": dict(zip(cols, (5.87e-14, .6276, .9988, .5113, .6120, .4596, .5521), strict=True)),
             "Retain": dict(zip(cols, (1.0, .6266, .6670, .6696, .6052, .4639, .5624), strict=True))}
    for row, got in (("Original", original), ("Retain", retain)):
        assert list(got) == ["FQ", "MU", "Fluency", "EM", "F-TR", "Ra-TR", "R-TR", "Rw-TR"]
        assert math.isnan(got["Fluency"])
        assert got["FQ"] == pytest.approx(paper[row]["FQ"], rel=1e-3)
        for col in ("MU", "EM", "F-TR", "Ra-TR", "R-TR", "Rw-TR"):
            assert got[col] == pytest.approx(paper[row][col], abs=5e-5), (row, col)
    assert metrics.palu_columns({**metrics.summarize_tofu(logs["full"]["eval"], logs["retain"]["eval"]),
                                 "fluency": 0.5})["Fluency"] == 0.5


# ------------------------------------------------------------------------------------------------------------
# bad input


def test_log_of_another_schema_is_rejected(logs):
    with pytest.raises(ValueError, match="not an open-unlearning TOFU_EVAL.json log.*TOFU_SUMMARY"):
        metrics.summarize_tofu(logs["full"]["summary"])
    with pytest.raises(ValueError, match="retain_log is not an open-unlearning TOFU_EVAL.json log"):
        metrics.summarize_tofu(logs["full"]["eval"], [1, 2])
    with pytest.raises(ValueError, match="empty dict"):
        metrics.validate_tofu_log({})
    with pytest.raises(ValueError, match="'forget_Q_A_Prob' has no per-sample dict 'value_by_index'"):
        metrics.validate_tofu_log({"forget_Q_A_Prob": {"agg_value": 0.5, "value_by_index": [0.1, 0.2]}})
    metrics.validate_tofu_log(logs["full"]["eval"])


def _with(log: dict, metric: str, rows: dict) -> dict:
    """A shallow copy of `log` with `metric`'s value_by_index replaced."""
    return {**log, metric: {**log[metric], "value_by_index": rows}}


def test_retain_log_of_another_split_is_rejected(logs):
    full, retain = logs["full"]["eval"], logs["retain"]["eval"]
    half = retain
    for metric in ("forget_Q_A_PARA_Prob", "forget_Q_A_PERT_Prob", "forget_truth_ratio"):
        half = _with(half, metric, dict(list(retain[metric]["value_by_index"].items())[:100]))
    with pytest.raises(ValueError, match="for another forget split: forget_Q_A_PARA_Prob has 100 samples"):
        metrics.summarize_tofu(full, half)
    rows = dict(retain["forget_Q_A_ROUGE"]["value_by_index"])
    rows["7"] = {**rows["7"], "ground_truth": "Some other author's answer."}
    with pytest.raises(ValueError, match=r"forget_Q_A_ROUGE ground truths differ .* at samples \['7'\]"):
        metrics.summarize_tofu(full, _with(retain, "forget_Q_A_ROUGE", rows))


def test_mismatched_or_missing_per_sample_values_are_rejected(logs):
    full = logs["full"]["eval"]
    pert = dict(full["forget_Q_A_PERT_Prob"]["value_by_index"])
    del pert["3"]
    with pytest.raises(ValueError, match=r"forget_Q_A_PARA_Prob and forget_Q_A_PERT_Prob have different "
                                         r"sample indices \(only in forget_Q_A_PARA_Prob: \['3'\]"):
        metrics.summarize_tofu(_with(full, "forget_Q_A_PERT_Prob", pert))
    para = dict(full["retain_Q_A_PARA_Prob"]["value_by_index"])
    para["5"] = {**para["5"], "avg_loss": float("nan")}
    with pytest.raises(ValueError, match=r"retain_Q_A_PARA_Prob'\]: 'avg_loss' is NaN or inf for samples \['5'\]"):
        metrics.summarize_tofu(_with(full, "retain_Q_A_PARA_Prob", para))
    em = dict(full["exact_memorization"]["value_by_index"])
    em["0"] = {}
    with pytest.raises(ValueError, match="exact_memorization'\\]: sample 0 has no 'score' value"):
        metrics.summarize_tofu(_with(full, "exact_memorization", em))
    no_wf = {k: v for k, v in full.items() if k != "wf_Q_A_ROUGE"}
    with pytest.raises(ValueError, match=r"missing \['wf_Q_A_ROUGE'\]"):
        metrics.summarize_tofu(no_wf)


# ------------------------------------------------------------------------------------------------------------
# hand-computed


def test_truth_ratio_and_aggregates():
    tr = metrics.truth_ratio([1.0, 2.0], [[1.0, 3.0], [2.0, 2.0]])
    want = [math.exp(-2.0) / (math.exp(-1.0) + 1e-10), math.exp(-2.0) / (math.exp(-2.0) + 1e-10)]
    assert tr == pytest.approx(want, rel=1e-15)
    assert tr[0] == pytest.approx(math.exp(-1.0), rel=1e-9)  # geometric mean of the perturbed probs
    with pytest.raises(ValueError, match=r"perturbed losses \[n, m\]"):
        metrics.truth_ratio([1.0, 2.0], [1.0, 2.0])


def test_forget_quality():
    assert metrics.forget_quality([0.2, 0.5, 0.9], [0.2, 0.5, 0.9]) == 1.0
    assert metrics.forget_quality([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / math.comb(6, 3))  # exact, D = 1
    with pytest.raises(ValueError, match="no samples"):
        metrics.forget_quality([], [1.0])


def test_model_utility():
    values = dict.fromkeys(metrics.MU_NAMES, 1.0) | {"wf_Truth_Ratio": 0.5}
    assert metrics.model_utility(values) == pytest.approx(9 / (8 / 1.0 + 1 / 0.5), rel=1e-15)
    assert metrics.model_utility([0.5, 0.25] + [1] * 7) == pytest.approx(9 / (2 + 4 + 7), rel=1e-15)
    assert metrics.model_utility(values | {"ra_Q_A_ROUGE": 0.0}) == 0.0
    with pytest.raises(ValueError, match=r"missing \['ra_Truth_Ratio'\], unexpected \['fluency'\]"):
        metrics.model_utility({k: v for k, v in values.items() if k != "ra_Truth_Ratio"} | {"fluency": 1.0})
    with pytest.raises(ValueError, match="9 non-negative numbers"):
        metrics.model_utility([1.0] * 8)


def test_rouge_hand_case():
    # target "the cat sat" vs "the cat was sitting": stemming maps sitting -> sit, not sat; LCS = "the cat"
    s = metrics.rouge_scores("the cat was sitting", "the cat sat")
    assert s["rouge1_recall"] == pytest.approx(2 / 3)
    assert s["rougeL_recall"] == pytest.approx(2 / 3)
    assert s["rougeL_f1"] == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
    assert metrics.rouge_l_recall("cats", "cat") == 1.0  # stemmer


def test_normalised_prob():
    got = metrics.normalised_prob([0.5, 0.1], [[0.25, 0.25], [0.3, 0.6]])
    assert got == pytest.approx([0.5 / (0.5 + 0.5 + 1e-10), 0.1 / (0.1 + 0.9 + 1e-10)], rel=1e-15)


def test_mia_auc_and_privleak():
    assert metrics.mia_auc([0.1, 0.2], [0.3, 0.4]) == 1.0  # forget losses all lower: fully memorised
    assert metrics.mia_auc([0.1, 0.4], [0.2, 0.3]) == 0.5  # 2 of 4 (forget, holdout) pairs ordered
    assert metrics.mia_auc([0.1, 0.3], [0.3]) == 0.75  # a tie counts 1/2
    assert metrics.privleak(0.5, 0.5) == 0.0
    assert metrics.privleak(0.25, 0.5) == pytest.approx((0.75 - 0.5) / (0.5 + 1e-10) * 100, rel=1e-15)
    assert metrics.privleak(1.0, 0.5) == pytest.approx(-100.0, rel=1e-9)


def test_fluency_entropy():
    assert metrics.fluency_entropy("a a a a a a") == 0.0
    varied = metrics.fluency_entropy("a b c d")  # bigrams: 3 distinct; trigrams: 2 distinct
    assert varied == pytest.approx((2 / 3 * math.log2(3) + 4 / 3 * math.log2(2)) / 2)
    h2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))  # "a b a b": ab, ba, ab
    assert metrics.fluency_entropy("a b a b") == pytest.approx((2 / 3 * h2 + 4 / 3 * 1.0) / 2)
    mixed = metrics.fluency_entropy(["a b a b", "a b c d"])
    assert mixed == pytest.approx(((2 / 3 * h2 + 4 / 3) / 2 + varied) / 2)
    assert metrics.fluency_entropy("Hi, you.") == varied  # punctuation marks are words
    assert metrics.fluency_entropy("one") == 0.0
