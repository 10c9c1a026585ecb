"""Issue 23: mini-MUSE's calibration against real MUSE (statistics by hand, the real numbers read back from the
spec, the designs record) and mini-MUSE's new knobs (every question type, the earlier coverage)."""

import re
from pathlib import Path

import pandas as pd
import pytest

from paperlib.benchmarks.muse import mini as mini_muse
from paperlib.benchmarks.muse import models as muse_models
from paperlib.studies import muse_calibration as mc

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "benchmarks.md"
TABLES = Path(__file__).resolve().parents[1] / "tables"


def _sanity(target, retrained):
    cols = ("VerbMem", "KnowMem-f", "KnowMem-r", "PrivLeak")
    cis = {"VerbMem CI": "[80.0, 90.0]", "KnowMem-f CI": "[50.0, 70.0]"}
    rows = [{"model": "Target", **dict(zip(cols, target)), **cis}, {"model": "Retrained", **dict(zip(cols, retrained))}]
    return pd.DataFrame(rows)


def test_statistics_and_targets_by_hand():
    sanity = _sanity((85.0, 60.0, 50.0, -90.0), (25.0, 30.0, 48.0, 0.0))
    sweep = pd.DataFrame([  # GA: VerbMem 70 < CI low 80 at KnowMem-r 46 >= 0.9 x 50; NPO moves but keeps 40 only;
        # PALU would qualify but is not a baseline
        {"method": "GA", "status": "completed", "VerbMem": 70.0, "KnowMem-f": 65.0, "KnowMem-r": 46.0},
        {"method": "NPO", "status": "completed", "VerbMem": 10.0, "KnowMem-f": 5.0, "KnowMem-r": 40.0},
        {"method": "PALU", "status": "completed", "VerbMem": 10.0, "KnowMem-f": 5.0, "KnowMem-r": 50.0}])
    st = mc.statistics(sanity, sweep, 50)
    assert st["KnowMem-f ratio"] == pytest.approx(0.5)
    assert st["VerbMem ratio"] == pytest.approx(25 / 85)
    assert st["KnowMem-r ratio"] == pytest.approx(0.96)
    assert st["question points"] == pytest.approx(2.0)
    assert st["baselines moving"] == ["GA"]
    met = {t.name: t.met for t in mc.targets(st)}
    assert all(met.values()), met
    # one question worth 4 points, no baseline moving, a retrained model that copies the text: three misses
    st = mc.statistics(_sanity((85.0, 60.0, 50.0, -90.0), (60.0, 30.0, 48.0, 0.0)), sweep[sweep.method == "NPO"], 25)
    missed = {t.name for t in mc.targets(st) if not t.met}
    assert missed == {"VerbMem retrained / target", "points per KnowMem-r question",
                      "a baseline (GA/GD/NPO) forgets keeping 90% KnowMem-r"}


def test_real_numbers_are_the_specs():
    text = " ".join(SPEC.read_text().split())
    m = re.search(r"target KnowMem-forget (\S+) / (\S+), VerbMem (\S+) / (\S+), PrivLeak (\S+) / (\S+), KnowMem-retain "
                  r"(\S+) / (\S+); retrained (\S+) / (\S+), (\S+) / (\S+), (\S+) / (\S+), (\S+) / (\S+);", text)
    assert m, "the MUSE line of benchmarks.md moved"
    v = [float(x) for x in m.groups()]
    for i, col in enumerate(("KnowMem-f", "VerbMem", "PrivLeak", "KnowMem-r")):
        assert (mc.REAL["News"]["target"][col], mc.REAL["Books"]["target"][col]) == (v[2 * i], v[2 * i + 1])
        assert (mc.REAL["News"]["retrained"][col], mc.REAL["Books"]["retrained"][col]) == (v[8 + 2 * i], v[9 + 2 * i])


def test_the_mini_settings_are_the_chosen_design():
    """The committed record's choice (`chosen`: every target met, fewest epochs) is the mini profile's."""
    record = mc.load_record()
    assert [e["name"] for e in record] == [d.name for d in mc.DESIGNS]  # every design measured, in order
    name = mc.chosen(record)
    s = muse_models.SETTINGS["mini"]
    assert s == mc.design_settings(next(d for d in mc.DESIGNS if d.name == name))
    assert s.init == "base" and s.mini.questions * (s.mini.n_events - s.mini.n_icl) >= 100 / mc.QUESTION_POINTS
    assert mc.TRAIN_60 == muse_models.MuseSettings().train  # m0-m2 rebuild with the training they were measured at
    assert all(dict(d.knobs)["train"].epochs == 60 for d in mc.DESIGNS[:3])
    with pytest.raises(Exception, match="unknown knob 'nope'"):
        mc.design_settings(mc.Design("x", "y", (("nope", 1),)))



def test_chosen_takes_the_fewest_epochs_among_designs_meeting_every_target():
    good = mc.statistics(_sanity((85.0, 60.0, 50.0, -90.0), (25.0, 30.0, 48.0, 0.0)), None, 50)
    bad = {**good, "VerbMem ratio": 0.9}
    record = [{"name": "a", "knobs": {}, **good}, {"name": "b", "knobs": {"train": {"epochs": 30}}, **bad},
              {"name": "c", "knobs": {"train": {"epochs": 30}}, **good}, {"name": "d", "knobs": {}, **good}]
    assert mc.chosen(record) == "c"
    assert mc.chosen(record[:2]) == "a" and mc.chosen(record[1:2]) is None


def test_every_question_type_and_the_earlier_coverage():
    cfg = mini_muse.MiniMuseConfig(n_events=6, n_icl=2, questions=3, prior_share=0.5)
    data = mini_muse.generate(cfg)
    assert len(data["knowmem"]["retain_qa"]) == 3 * 4
    evs = mini_muse.events(cfg)
    facts = mini_muse.prior_facts(cfg, evs)
    assert len(facts) == round(0.5 * 6 * 4 * 3)
    prior = "\n".join(mini_muse.prior_texts(cfg))
    by_name = {ev["event"]: ev for s in mini_muse.SPLITS for ev in evs[s]}
    for name, ev in by_name.items():  # a fact is in the earlier coverage exactly when it was drawn for it
        for kind, q in mini_muse.QUESTIONS.items():
            line = f"Question: {q.format(**ev)}\nAnswer: {ev[kind]}"
            assert (line in prior) == ((name, kind) in facts)
    assert mini_muse.prior_texts(mini_muse.MiniMuseConfig(n_events=6, n_icl=2)) == []
    with pytest.raises(ValueError, match="n_templates=7"):
        mini_muse.MiniMuseConfig(n_templates=7)


def test_committed_fidelity_meets_every_target():
    """Issue 23's MUSE targets on the committed statistics (notebook 11's table)."""
    table = pd.read_csv(TABLES / "11_muse_fidelity.csv")
    missed = list(table.loc[table["met"] != "yes", "statistic"])
    assert not missed, f"mini-MUSE misses {missed}"
