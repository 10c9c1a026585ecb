"""The miniature's calibration against the published TOFU logs (issue 22): statistics read from real logs,
the targets on the committed mini statistics, and the design record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paperlib.engine.config import get_profile
from paperlib.studies import calibration

ROOT = Path(__file__).resolve().parents[1]
RECORD = json.loads((ROOT / "benchmarks" / "calibration.json").read_text())
CHOSEN = RECORD[-1]  # the last design tried is the mini profile's


@pytest.fixture(scope="module")
def real(shared_data) -> dict:
    return calibration.real_statistics(shared_data)


def test_real_statistics_from_the_published_logs(real):
    """Llama-2-7B-chat forget05, open-unlearning's logs: KS 78/200, truth-ratio aggregates, probabilities."""
    assert real["questions"] == 200 and real["ks_distance"] == pytest.approx(0.39, abs=1e-12)
    assert real["original_truth_ratio"] == pytest.approx(0.5113, abs=1e-4)
    assert real["retain_truth_ratio"] == pytest.approx(0.6696, abs=1e-4)
    assert real["original_para_prob"] == pytest.approx(0.1013, abs=1e-4)
    assert real["retain_para_prob"] == pytest.approx(0.0626, abs=1e-4)
    assert real["original_answer_prob"] > 0.98 and real["retain_answer_prob"] == pytest.approx(0.1491, abs=1e-4)
    assert real["para_ratio"] == pytest.approx(1.617, abs=1e-3)
    assert real["original_mu"] == pytest.approx(0.6276, abs=1e-4)


def test_statistics_by_hand():
    """Two toy logs: KS distance of {0.5, 1} vs {1, 2} truth ratios is 0.5; probabilities are plain means."""
    def log(para: list[float], pert: list[list[float]], ans: list[float]) -> dict:
        by = {str(i): {"avg_loss": p} for i, p in enumerate(para)}
        return {"forget_truth_ratio": {"value_by_index": {str(i): {"score": 0.0} for i in range(len(para))}},
                "forget_Q_A_PARA_Prob": {"value_by_index": {k: {**v, "prob": float(np.exp(-v["avg_loss"]))}
                                                            for k, v in by.items()}},
                "forget_Q_A_PERT_Prob": {"value_by_index": {str(i): {"avg_loss": w, "prob": list(np.exp(-np.array(w)))}
                                                            for i, w in enumerate(pert)}},
                "forget_Q_A_Prob": {"value_by_index": {str(i): {"prob": a} for i, a in enumerate(ans)}}}
    ln2 = float(np.log(2))
    a = log([0.0, 0.0], [[ln2], [0.0]], [0.9, 0.8])  # truth ratios 0.5, 1
    b = log([0.0, ln2], [[0.0], [0.0]], [0.1, 0.2])  # truth ratios 1, 2
    s = calibration.statistics(a, b)
    assert s["ks_distance"] == 0.5 and s["original_answer_prob"] == pytest.approx(0.85)
    assert s["retain_para_prob"] == pytest.approx(0.75) and s["para_ratio"] == pytest.approx(1 / 0.75)
    assert s["original_truth_ratio"] == pytest.approx(0.75)  # mean of min(tr, 1/tr): 0.5, 1
    assert s["retain_truth_ratio"] == pytest.approx(0.75)


def test_frontier_by_hand():
    sweep = pd.DataFrame({"method": ["GA", "GA", "NPO", "NPO"], "FQ": [0.9, 1e-5, 0.2, 0.01],
                          "MU": [0.5, 0.9, 0.86, 0.99]})
    f = calibration.frontier(sweep, mu_original=1.0).set_index("method")
    assert f.loc["GA", "best_FQ"] == 1e-5 and not f.loc["GA", "forgets"]
    assert f.loc["NPO", "best_FQ"] == 0.2 and f.loc["NPO", "forgets"]
    t = calibration.frontier_targets(f.reset_index())
    assert [x.met for x in t] == [True, False, True]


def test_mini_profile_is_the_last_design():
    """The defaults are the chosen design: the record's last entry, measured with the profile's knobs."""
    assert CHOSEN["name"] == calibration.DESIGNS[-1].name
    mini = get_profile("mini")
    assert calibration.design_profile(calibration.DESIGNS[-1]) == mini
    assert CHOSEN["knobs"] == json.loads(json.dumps(calibration.knob_values(mini)))


def test_record_table_has_every_design(real):
    table = calibration.record_table(RECORD, real)
    assert list(table["design"]) == [e["name"] for e in RECORD]
    assert list(table["design"]) == [d.name for d in calibration.DESIGNS][: len(RECORD)]
    assert not table.drop(columns=[c for c in table if "FQ@85" in c]).isna().any().any()


# Targets the chosen design misses (benchmarks/calibration.json; README and issue 22's note say why): each is
# an expected failure, so the test turns red the day the miniature meets it and the list must be updated.
_NARROW = ("the mini's truth ratios are too concentrated: a perturbed answer differs from the paraphrase only in a "
           "few value tokens from small vocabularies; d3's values drawn Zipf-like widened the retain model's IQR of "
           "log TR from 0.15 to 0.25 (real 0.59) and brought KS from 0.83 to 0.71; the shift between the two models "
           "is already real TOFU's (medians -0.43 vs -0.03; real -0.66 vs -0.22)")
MISSED: dict[str, str] = {
    "KS distance original vs retain": _NARROW,
    "forget truth ratio, original": _NARROW,
    "forget truth ratio, retain": _NARROW,
    "forget answer prob, retain": ("0.23 > 0.2: synonym-drawn template wording is more predictable to the tiny "
                                   "model than GPT-written English to Llama; 25 fine-tuning epochs give 0.18 but a "
                                   "paraphrase ratio of 2.7 (design d2x-25-epochs)"),
    "forget paraphrase prob, original": "0.56 vs 0.05-0.15: about 7 reworded slots in 38 tokens carry far less entropy "
                                        "per token than English; 0.1 per token would need near-random wording",
    "NPO forgets at >= 85% MU": ("NPO's best FQ at >= 85% of the original's MU is 1e-17; it reaches 2e-4 at 84% and "
                                 "0.58 at 48% (notebook 01's sweep): with truth ratios this concentrated (KS 0.71) "
                                 "forgetting costs more utility than on real TOFU; TPO does forget (0.15 at 85%)"),
}


def _target_cases() -> list:
    cases = []
    for name in [t.name for t in calibration.targets(CHOSEN, CHOSEN)] + \
            [t.name for t in calibration.frontier_targets(pd.DataFrame(CHOSEN["frontier"]))]:
        marks = [pytest.mark.xfail(strict=True, reason=MISSED[name])] if name in MISSED else []
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


@pytest.mark.parametrize("name", _target_cases())
def test_calibration_target(name, real):
    """Each target of issue 22 item 3 on the committed mini statistics, against the published logs."""
    checks = calibration.targets(CHOSEN, real) + calibration.frontier_targets(pd.DataFrame(CHOSEN["frontier"]))
    target = next(t for t in checks if t.name == name)
    assert target.met, (target.name, target.mini, target.low, target.high, target.real)


def test_committed_fidelity_table_is_the_chosen_design(real):
    """tables/00_fidelity (notebook 00, from the mini models) holds the same statistics as the record's last design:
    the record measured the models the mini profile builds."""
    table = pd.read_csv(ROOT / "tables" / "00_fidelity.csv")
    expected = {t.name: t.mini for t in calibration.targets(CHOSEN, real)}
    assert dict(zip(table["statistic"], table["mini"])) == pytest.approx(expected, rel=1e-9)
