"""MUSE (issue 14): loaders on a hand-written local folder, mini-MUSE, the metrics with hand-checkable numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from paperlib.benchmarks.muse import data as muse
from paperlib.benchmarks.muse import metrics as mm
from paperlib.benchmarks.muse import mini as mini_muse
from paperlib.engine.errors import PaperlibError

RECORDS = {
    "raw": {"forget": ["The Vorlak Accord was signed in Brastad.", "Mira Tol led it."],
            "holdout": ["An unseen text."], "retain1": ["Retain one."], "retain2": ["Retain two."]},
    "verbmem": {"forget": [{"prompt": "The Vorlak Accord", "gt": "was signed in Brastad."}]},
    "knowmem": {"forget_qa": [{"question": "Where was the Vorlak Accord signed?", "answer": "Brastad"}],
                "retain_qa": [{"question": "Who wrote retain two?", "answer": "Nobody"}],
                "forget_qa_icl": [{"question": "Who led it?", "answer": "Mira Tol"}],
                "retain_qa_icl": [{"question": "What is one?", "answer": "Retain"}]},
    "privleak": {"forget": ["The Vorlak Accord was signed in Brastad."], "retain": ["Retain one."],
                 "holdout": ["An unseen text."]},
}


@pytest.fixture
def folder(tmp_path):
    return muse.write(RECORDS, tmp_path / "muse")


def test_local_folder_round_trip(folder):
    assert (folder / "raw" / "forget.txt").read_text() == \
        "The Vorlak Accord was signed in Brastad.\n\nMira Tol led it.\n"  # MUSE's blank-line-joined .txt
    data = muse.load_all(str(folder))
    assert data.raw == RECORDS["raw"]
    assert data.verbmem == RECORDS["verbmem"]["forget"]
    assert data.knowmem == RECORDS["knowmem"]
    assert data.privleak == RECORDS["privleak"]


def test_raw_json_list_is_read_too(folder):
    (folder / "raw" / "forget.txt").unlink()
    (folder / "raw" / "forget.json").write_text(json.dumps(["a\n\nb", "c"]))
    assert muse.load(str(folder), "raw", "forget") == ["a\n\nb", "c"]


def test_bad_corpus_and_incomplete_folder(folder):
    with pytest.raises(PaperlibError, match="MUSE corpus 'wiki'; allowed: news, books"):
        muse.check_corpus("wiki")
    with pytest.raises(PaperlibError, match="allowed: news, books"):
        muse.resolve_source("wiki")
    assert muse.resolve_source("news") == "muse-bench/MUSE-News"
    (folder / "knowmem" / "retain_qa.json").unlink()
    with pytest.raises(PaperlibError, match="lacks knowmem/retain_qa.json"):
        muse.load_all(str(folder))
    import shutil

    shutil.rmtree(folder / "privleak")
    with pytest.raises(PaperlibError, match="has no privleak/ config"):
        muse.check_folder(folder)


def test_bad_records(folder):
    (folder / "verbmem" / "forget.json").write_text(json.dumps([{"prompt": "x"}]))
    with pytest.raises(PaperlibError, match=r"item 0 lacks string fields \('prompt', 'gt'\)"):
        muse.load(str(folder), "verbmem", "forget")
    with pytest.raises(PaperlibError, match="MUSE split raw/forget_qa"):
        muse.load(str(folder), "raw", "forget_qa")


def test_mini_muse_is_deterministic_and_consistent(tmp_path):
    cfg = mini_muse.MiniMuseConfig(n_events=6, n_icl=2)
    a, b = mini_muse.generate(cfg), mini_muse.generate(cfg)
    assert a == b
    assert a != mini_muse.generate(mini_muse.MiniMuseConfig(n_events=6, n_icl=2, seed=1))
    # 6 articles, then 6 x 3 question / answer pairs in sheets of 4 (5 texts) in each of 3 orders
    assert all(len(a["raw"][s]) == 6 + 3 * 5 for s in mini_muse.SPLITS)
    articles, sheets = a["raw"]["forget"][:6], a["raw"]["forget"][6:]
    assert not any("Question:" in t for t in articles) and all(t.startswith("Question: ") for t in sheets)
    assert sum(t.count("Question: ") for t in sheets) == 3 * 18 and sheets[:5] != sheets[5:10]
    assert a["privleak"]["forget"] == articles
    for text, item in zip(a["raw"]["forget"], a["verbmem"]["forget"]):
        assert text.startswith(item["prompt"] + " " + item["gt"])
        assert len(item["prompt"].split(" ")) == cfg.prompt_words
    # every KnowMem answer is stated in its split's articles, never in another split's
    for qa, split in ((a["knowmem"]["forget_qa"], "forget"), (a["knowmem"]["retain_qa"], "retain2")):
        assert len(qa) == 6 - cfg.n_icl
        for r in qa:
            assert any(f"{r['question']}\nAnswer: {r['answer']}" in t for t in a["raw"][split])
            assert not any(r["question"] in t for s in mini_muse.SPLITS if s != split for t in a["raw"][s])
    assert a["privleak"]["holdout"] == a["raw"]["holdout"][:6]
    sheets = mini_muse.fact_sheets([{"event": "X Fair", "town": "Ta", "leader": "Lu Po", "org": "Guild"}], 2, 0, 1)
    assert len(sheets) == 2 and sorted("\n".join(sheets).split("\n")) == sorted([
        "Question: In which town did the X Fair take place?", "Answer: Ta", "Question: Who led the X Fair?",
        "Answer: Lu Po", "Question: Which organisation was behind the X Fair?", "Answer: Guild"])
    data = muse.load_all(str(mini_muse.write(cfg, tmp_path / "m")))
    assert data.raw["forget"] == a["raw"]["forget"]


def test_knowmem_prompt_and_stop_strings():
    icl = [{"question": "Who led it?", "answer": "Mira Tol"}, {"question": "Where?", "answer": "Brastad"}]
    assert mm.knowmem_prompt(icl, "When?") == ("Question: Who led it?\nAnswer: Mira Tol\n\n"
                                               "Question: Where?\nAnswer: Brastad\n\nQuestion: When?\nAnswer: ")
    assert mm.knowmem_prompt([], "When?") == "Question: When?\nAnswer: "
    assert mm.cut_at_stop(" In 1999.\n\nQuestion: next") == "In 1999."
    assert mm.cut_at_stop("Brastad\nQuestion: Who?") == "Brastad"
    assert mm.cut_at_stop("Brastad Question: Who?") == "Brastad"
    assert mm.cut_at_stop("Brastad\nand more") == "Brastad\nand more"
    assert mm.cut_at_stop("Question: x") == ""


def test_rouge_is_f1_without_stemmer():
    s = mm.rouge("the cat sat", "the cat sat on the mat")  # LCS 3: precision 3/3, recall 3/6
    assert s["rougeL_recall"] == pytest.approx(0.5)
    assert s["rougeL"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert mm.rouge("running", "run")["rougeL"] == 0.0  # a Porter stemmer would make this 1


def test_privleak_on_hand_made_aucs():
    # open-unlearning orientation (forget = 0, holdout = 1, loss-like score): 1 = memorised
    assert mm.privleak_from_aucs(1.0, 0.5) == pytest.approx(-100.0)
    assert mm.privleak_from_aucs(0.5, 0.5) == pytest.approx(0.0)
    assert mm.privleak_from_aucs(0.25, 0.5) == pytest.approx(50.0)
    # = MUSE's (AUC' - AUC'_ref) / AUC'_ref x 100 with MUSE's AUC' = 1 - AUC (News: AUC'_ref = 0.4772)
    assert mm.privleak_from_aucs(1 - 0.25, 1 - 0.4772) == pytest.approx((0.25 - 0.4772) / 0.4772 * 100, rel=1e-6)
    with pytest.raises(PaperlibError, match="retrained model's mia_min_k AUC"):
        mm.privleak_from_aucs(0.7, None)


def test_bootstrap_ci_hand_checkable():
    # two values: resampled means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% / 97.5% percentiles
    assert mm.bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert mm.bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)
    low, high = mm.bootstrap_ci(np.r_[np.zeros(50), np.ones(50)])
    assert low < 0.5 < high and 0.35 < low and high < 0.65  # mean 0.5, se 0.05: about 0.4 .. 0.6
    assert mm.bootstrap_ci([0.0, 1.0, 0.5], seed=3) == mm.bootstrap_ci([0.0, 1.0, 0.5], seed=3)
    agg = mm.aggregate({"0": {"rougeL": 0.0}, "1": {"rougeL": 1.0}})
    assert (agg["agg_value"], agg["ci_low"], agg["ci_high"]) == (0.5, 0.0, 1.0)


def test_evaluate_muse_schema(tmp_path, folder):
    from paperlib.engine.config import TinyLlamaConfig
    from paperlib.engine.models import tiny_llama, train_tokenizer

    tok = train_tokenizer([t for s in RECORDS["raw"].values() for t in s] * 3, 300)
    torch.manual_seed(0)
    model = tiny_llama(TinyLlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2), tok)
    data = muse.load_all(str(folder))
    cfg = mm.MuseEvalConfig(verbmem_new_tokens=4, knowmem_new_tokens=4, max_length=64)
    ref_log, ref = mm.evaluate_muse(model, tok, data, cfg, out_dir=tmp_path / "ref")
    assert mm.PRIVLEAK not in ref
    log, summ = mm.evaluate_muse(model, tok, data, cfg, reference=mm.load_log(tmp_path / "ref"),
                                 out_dir=tmp_path / "eval")
    assert set(summ) == set(mm.SUMMARY_KEYS)
    assert summ[mm.PRIVLEAK] == pytest.approx(0.0)  # the same model is its own reference
    assert json.loads((tmp_path / "eval" / mm.SUMMARY_FILE).read_text()) == summ
    item = log[mm.VERBMEM]["value_by_index"]["0"]
    assert set(item) == {"prompt", "gt", "response", "rougeL", "rougeL_recall", "rouge1", "rouge1_recall"}
    assert log[mm.VERBMEM]["ci_low"] <= log[mm.VERBMEM]["agg_value"] <= log[mm.VERBMEM]["ci_high"]
    with pytest.raises(PaperlibError, match="no MUSE_EVAL.json"):
        mm.load_log(tmp_path / "nowhere")


def test_muse_claim_on_hand_made_tables():
    import pandas as pd

    from paperlib.studies import claims

    def table(palu, palu_sd, other, other_sd, mu95="yes", verbmem=80.0):
        """The target's CIs: KnowMem-f [30, 76], VerbMem [83.6, 88.2]; GA forgets by VerbMem unless `verbmem`."""
        return pd.DataFrame([
            {"method": "Target", "KnowMem-f": 55.0, "KnowMem-f CI": "[30.0, 76.0]", "VerbMem": 86.0,
             "VerbMem CI": "[83.6, 88.2]", "MU95": None},
            {"method": "PALU", "KnowMem-f": palu, "KnowMem-f sd": palu_sd, "VerbMem": 85.0, "MU95": mu95},
            {"method": "GA", "KnowMem-f": other, "KnowMem-f sd": other_sd, "VerbMem": verbmem, "MU95": "yes"},
            {"method": "NPO", "KnowMem-f": 1.0, "KnowMem-f sd": 0.0, "VerbMem": 1.0, "MU95": "no"}])  # not MU95

    assert claims.muse_forgetters(table(10.0, 1.0, 20.0, 2.0), ["PALU", "GA", "NPO"]) == ["PALU", "GA", "NPO"]
    assert claims.muse_claim(table(10.0, 1.0, 20.0, 2.0)).verdict == claims.REPRODUCED
    assert claims.muse_claim(table(20.0, 1.0, 10.0, 2.0)).verdict == claims.NOT_REPRODUCED
    assert claims.muse_claim(table(10.0, 5.0, 12.0, 5.0)).verdict == claims.INCONCLUSIVE
    c = claims.muse_claim(table(10.0, 1.0, 20.0, 2.0, mu95="no"))
    assert c.verdict == claims.NOT_REPRODUCED and "selected point does not keep 95%" in c.evidence
    # PALU below GA beyond the spread, but neither below the target's CIs: nothing forgotten
    assert claims.muse_claim(table(40.0, 1.0, 50.0, 2.0, verbmem=85.0)).verdict == claims.NOT_TESTABLE
    # PALU lowest, but only GA forgot (VerbMem below the target's CI): reproduced needs PALU to forget
    c = claims.muse_claim(table(40.0, 1.0, 50.0, 2.0))
    assert c.verdict == claims.NOT_REPRODUCED and "PALU did not forget" in c.evidence


def test_paper_plan_lists_the_palu_papers_muse_rows():
    from paperlib import runner
    from paperlib.engine.config import get_profile
    from paperlib.studies import muse as muse_lib

    rows = muse_lib.plan(get_profile("paper"))
    assert {r["model"] for r in rows} == {"muse-bench/MUSE-news_target", "muse-bench/MUSE-books_target"}
    assert {r["method"] for r in rows} == set(muse_lib.METHODS) and len(rows) == 2 * len(muse_lib.METHODS)
    assert runner.PLANS["11"] == "paperlib.studies.muse:plan"


def test_cli_evaluate_muse_writes_the_logs(tmp_path, folder, capsys):
    from paperlib import cli
    from paperlib.engine.config import TinyLlamaConfig
    from paperlib.engine.models import tiny_llama, train_tokenizer

    tok = train_tokenizer([t for s in RECORDS["raw"].values() for t in s] * 3, 300)
    torch.manual_seed(0)
    model = tiny_llama(TinyLlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2), tok)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    args = ["evaluate", "--benchmark", "muse", "--profile", "smoke", "--source", str(folder), "--model",
            str(tmp_path / "model")]
    with pytest.warns(UserWarning, match="privleak left out"):
        cli.main([*args, "--out", str(tmp_path / "ref")])
    cli.main([*args, "--retain-log", str(tmp_path / "ref" / mm.EVAL_FILE), "--out", str(tmp_path / "out")])
    summary = json.loads((tmp_path / "out" / mm.SUMMARY_FILE).read_text())
    assert set(summary) == set(mm.SUMMARY_KEYS) and summary[mm.PRIVLEAK] == pytest.approx(0.0)
    assert "wrote" in capsys.readouterr().out


def test_answer_space_leaves_the_prompts_final_space_to_the_model(monkeypatch, folder):
    seen = []

    def fake_generate(model, tok, prompts, n, batch_size=32, max_length=None):
        seen.append(list(prompts))
        return [" Brastad\nQuestion: x"] * len(prompts)

    monkeypatch.setattr(mm, "generate_raw", fake_generate)
    monkeypatch.setattr(mm, "min_k_scores", lambda model, tok, texts, *a, **k: np.arange(len(texts), dtype=float))
    model = torch.nn.Linear(1, 1)
    data = muse.load_all(str(folder))
    for space in (False, True):
        seen.clear()
        log, _ = mm.evaluate_muse(model, None, data, mm.MuseEvalConfig(answer_space=space),
                                  reference={mm.MIA: {"agg_value": 0.5}})
        knowmem_prompt = seen[1][0]
        assert knowmem_prompt.endswith("Answer:" if space else "Answer: ")
        assert log[mm.KNOW_F]["value_by_index"]["0"]["response"] == "Brastad"  # cut at the stop string, stripped
        assert log[mm.KNOW_F]["agg_value"] == 1.0


def test_benchmark_check_on_hand_made_tables():
    import pandas as pd

    from paperlib.benchmarks.muse import evaluate as muse_nb

    def table(verb_ci: str, know_ci: str, leak: float) -> pd.DataFrame:
        return pd.DataFrame([{"model": "Target", "VerbMem": 86.0, "VerbMem CI": verb_ci, "KnowMem-f": 72.0,
                              "KnowMem-f CI": know_ci, "PrivLeak": leak},
                             {"model": "Retrained", "VerbMem": 50.0, "VerbMem CI": "[43.0, 57.0]",
                              "KnowMem-f": 10.0, "KnowMem-f CI": "[0.0, 20.0]", "PrivLeak": 0.0}])

    ok, text = muse_nb.benchmark_check(table("[83.6, 88.2]", "[53.4, 89.1]", -100.0))
    assert ok and text.startswith("benchmark check holds") and "KnowMem-f CI low 53.4 > retrained 10.0" in text
    assert not muse_nb.benchmark_check(table("[83.6, 88.2]", "[9.5, 30.0]", -100.0))[0]  # CI reaches 10.0
    assert not muse_nb.benchmark_check(table("[49.0, 88.2]", "[53.4, 89.1]", -100.0))[0]
    assert not muse_nb.benchmark_check(table("[83.6, 88.2]", "[53.4, 89.1]", -49.0))[0]
    assert muse_nb.benchmark_check(table("[83.6, 88.2]", "[53.4, 89.1]", -50.0))[0]
