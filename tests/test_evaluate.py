"""Evaluation suite on real models: batching, open-unlearning logs, FQ / MU of the mini models."""

from __future__ import annotations

import json
import warnings

import pytest

from paperlib.benchmarks.tofu import evaluate, metrics, pipeline
from paperlib.cli import main
from paperlib.engine.config import get_profile
from paperlib.engine.models import load_model, load_tokenizer


@pytest.fixture(scope="module")
def smoke():
    profile = get_profile("smoke")
    path = pipeline.original_model(profile)
    return profile, path, load_model(path), load_tokenizer(path)


def test_batched_equals_single(smoke):
    profile, path, _, tok = smoke
    model = load_model(path).double()  # float64: padding must change nothing beyond rounding
    qs = ["Who wrote 'The Glass River'?", "Where was Kreko Thoninei born? Tell me everything please.", "Hi?"]
    answers = ["Someone.", "In a city far away, long ago.", "Hello."]
    batched = evaluate.teacher_forced(model, tok, "tiny", list(zip(qs, answers)), batch_size=3, full=True)
    for i, qa in enumerate(zip(qs, answers)):
        single = evaluate.teacher_forced(model, tok, "tiny", [qa], batch_size=1, full=True)
        for key, value in single.items():
            assert batched[key][i] == pytest.approx(value[0], rel=1e-9, abs=1e-12), key
    gens = evaluate.generate(model, tok, "tiny", qs, max_new_tokens=8, batch_size=3)
    assert gens == [evaluate.generate(model, tok, "tiny", [q], max_new_tokens=8)[0] for q in qs]


def test_score_texts_batched_equals_a_plain_pass_per_text(smoke):
    import torch

    from paperlib.engine import rawtext

    _, path, _, tok = smoke
    model = load_model(path).double()
    texts = ["The Vorlak Accord began in May.", "Hi", "A longer text about a town and its leader, " * 3]

    def nll(logits, labels, chunk):
        return {"nll": torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none",
                                                         ignore_index=-100).sum(-1), "n": (labels != -100).sum(-1)}

    got = evaluate.score_texts(model, tok, texts, 12, nll, batch_size=2)
    for i, text in enumerate(texts):
        ids = torch.tensor([rawtext.tokenize(tok, text)[0][:12]])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1]
        want = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        assert got["n"][i] == min(12, ids.shape[1]) - 1 and got["nll"][i] == pytest.approx(want, rel=1e-9)


def test_cli_writes_open_unlearning_logs(smoke, tmp_path):
    _, path, _, _ = smoke
    main(["evaluate", "--model", path, "--profile", "smoke", "--forget", "forget10", "--out", str(tmp_path)])
    log = json.loads((tmp_path / "TOFU_EVAL.json").read_text())
    summary = json.loads((tmp_path / "TOFU_SUMMARY.json").read_text())
    metrics.validate_tofu_log(log)
    assert "forget_quality" not in summary  # no retain log given: absent, never invented
    assert metrics.summarize_tofu(log) == pytest.approx(summary, rel=1e-12)
    for name in ("forget_Q_A_Prob", "forget_truth_ratio", "model_utility", "mia_min_k", "exact_memorization"):
        assert log[name]["agg_value"] == summary[name]
    n_forget = len(log["forget_Q_A_Prob"]["value_by_index"])
    assert len(log["mia_min_k"]["forget"]["value_by_index"]) == n_forget
    assert len(log["forget_Q_A_PERT_Prob"]["value_by_index"]["0"]["avg_loss"]) == 5


def test_the_librarys_own_reference_evaluations_raise_no_warning(tmp_path, monkeypatch):
    """A notebook executed cold (empty run cache) builds the reference models and the retain model's own
    evaluation, which has no reference log by design (it IS the reference): no "no retain-model log" warning
    may reach the notebook (it printed a stderr cell). A user's evaluation without a retain log still warns."""
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "runs"))
    profile = get_profile("smoke")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # as `pytest -W error::UserWarning`
        pipeline.retain_log_path(profile, "forget10")  # trains base, original, retain; the retain model's own eval
        original = pipeline.original_model(profile)
        pipeline.evaluation(profile, original, "forget10")
    with pytest.warns(UserWarning, match="no retain-model log given"):
        evaluate.evaluate_tofu(load_model(original), load_tokenizer(original), profile.model.template,
                               pipeline.benchmark_source(profile), "forget10", profile.eval, None,
                               evaluate.EvalOutput(progress=False))


@pytest.mark.mini
def test_mini_original_vs_retain(capsys):
    profile = get_profile("mini")
    retain = pipeline.retain_model(profile, "forget10")
    _, retain_summary = pipeline.evaluation(profile, retain, "forget10")  # retain vs its own log
    _, original_summary = pipeline.evaluation(profile, pipeline.original_model(profile), "forget10")
    with capsys.disabled():
        for name, s in (("original", original_summary), ("retain", retain_summary)):
            print(f"\n{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.palu_columns(s).items()))
    assert retain_summary["forget_quality"] == 1.0
    assert original_summary["forget_quality"] < 1e-3
    assert abs(original_summary["model_utility"] - retain_summary["model_utility"]) < 0.1


def test_gibberish_classifier_from_local_copy(tmp_path):
    """The paper's fluency classifier path works with any local text-classification folder whose labels
    include "clean" (here a random tiny BERT with the real classifier's four labels)."""
    from transformers import BertConfig, BertForSequenceClassification

    from paperlib.engine.models import train_tokenizer

    tok = train_tokenizer(["some clean text here", "zzkq xxw"] * 10, vocab_size=300)
    labels = ["clean", "mild gibberish", "noise", "word salad"]
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=4, id2label=dict(enumerate(labels)),
                     label2id={x: i for i, x in enumerate(labels)}, pad_token_id=tok.pad_token_id)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    scores = evaluate.classifier_fluency(["some clean text", "zzkq"], str(tmp_path))
    assert len(scores) == 2 and all(0 < s < 1 for s in scores)
    summary = {"forget_quality": 0.5, "model_utility": 0.6, "fluency": 3.0, "fluency_classifier": 0.8,
               "exact_memorization": 1, "forget_truth_ratio": 0.5, "ra_Truth_Ratio": 0.5,
               "retain_Truth_Ratio": 0.5, "wf_Truth_Ratio": 0.5}
    assert metrics.palu_columns(summary)["Fluency"] == 0.8


def test_one_pass_evaluation_equals_a_plain_pass_per_list(smoke):
    """The evaluator reads every sequence once (lists merged, sorted by length, output head on answer positions
    only): every per-sample number equals a plain full-logits pass over one sequence at a time, and every
    generation equals HF generate on one question at a time (float64 model: rounding only)."""
    import torch

    from paperlib.benchmarks import scoring as scores
    from paperlib.engine import encoding
    from paperlib.methods import losses

    profile, path, _, tok = smoke
    model = load_model(path).double()
    ev = evaluate.TofuEvaluator(model, tok, "tiny", pipeline.benchmark_source(profile), "forget10", profile.eval,
                                progress=False)
    log = ev.run()

    def plain(q, a, name):
        b = encoding.collate([encoding.encode(tok, "tiny", q, a, max_length=profile.eval.max_length)], tok.pad_token_id)
        with torch.no_grad():
            z, y = losses.shift(model(input_ids=b["input_ids"]).logits, b["labels"])
        if name == "avg_loss":
            return scores.avg_loss(z, y).item()
        fn = {"min_k_pp": scores.min_k_plus_plus, "es": scores.extraction_strength}[name]
        return fn(z, y, eos_id=tok.eos_token_id).item()

    s = ev.sets
    values = lambda name: [v for v in log[name]["value_by_index"].values()]  # noqa: E731
    for i, (q, a) in enumerate(zip(s["forget"]["question"], s["forget"]["answer"])):
        assert values("forget_Q_A_Prob")[i]["avg_loss"] == pytest.approx(plain(q, a, "avg_loss"), rel=1e-9)
        assert values("extraction_strength")[i]["score"] == pytest.approx(plain(q, a, "es"), rel=1e-9)
        assert log["mia_min_k_plus_plus"]["forget"]["value_by_index"][str(i)]["score"] == pytest.approx(
            plain(q, a, "min_k_pp"), rel=1e-9)
    for i, (q, p) in enumerate(zip(s["retain"]["question"], s["retain"]["paraphrased_answer"])):
        assert values("retain_Q_A_PARA_Prob")[i]["avg_loss"] == pytest.approx(plain(q, p, "avg_loss"), rel=1e-9)
    for i, (q, a) in enumerate(zip(s["retain"]["question"], s["retain"]["answer"])):  # RS (loc-unlearn)
        assert values("retain_Q_A_Prob")[i]["avg_loss"] == pytest.approx(plain(q, a, "avg_loss"), rel=1e-9)
        assert values("retain_extraction_strength")[i]["score"] == pytest.approx(plain(q, a, "es"), rel=1e-9)
    retain_es = [v["score"] for v in values("retain_extraction_strength")]
    assert metrics.summarize_tofu(log)["retain_extraction_strength"] == pytest.approx(sum(retain_es) / len(retain_es))
    for i, (q, ps) in enumerate(zip(s["wf"]["question"], s["wf"]["perturbed_answer"])):
        want = [plain(q, p, "avg_loss") for p in ps]
        assert values("wf_Q_A_PERT_Prob")[i]["avg_loss"] == pytest.approx(want, rel=1e-9)
    for name, ds in (("forget", s["forget"]), ("ra", s["ra"])):
        gens = [r["generation"] for r in values(f"{name}_Q_A_ROUGE")]
        assert gens == [evaluate.generate(model, tok, "tiny", [q], profile.eval.max_new_tokens, 1)[0]
                        for q in ds["question"]]


def test_encodings_memoised_per_tokenizer(smoke):
    """A run evaluates after every epoch on the same pairs: the second evaluation reuses the first's encodings
    (the same objects), equal to encoding them afresh; another max_length is another entry."""
    from paperlib.engine import encoding

    _, _, _, tok = smoke
    pairs = [("Who wrote it?", "Someone."), ("Where?", "In a city far away.")]
    first = evaluate.encode_pairs(tok, "tiny", pairs, 64)
    assert first == [encoding.encode(tok, "tiny", q, a, max_length=64) for q, a in pairs]
    again = evaluate.encode_pairs(tok, "tiny", pairs, 64)
    assert all(x is y for x, y in zip(first, again))
    short = evaluate.encode_pairs(tok, "tiny", pairs, 4)
    assert [len(e["input_ids"]) for e in short] == [4, 4]
    assert short != first


def test_split_files_memoised_until_they_change(tmp_path):
    """tofu.load_split reads a local split file once per process; a rewritten file (size / mtime) is read again."""
    import os

    from paperlib.benchmarks.tofu import data as tofu

    f = tmp_path / "forget10.json"
    f.write_text(json.dumps({"question": "q1", "answer": "a1"}) + "\n")
    first = tofu.load_split(tmp_path, "forget10")
    assert tofu.load_split(tmp_path, "forget10") is first
    f.write_text(json.dumps({"question": "q2", "answer": "a2 longer"}) + "\n")
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert tofu.load_split(tmp_path, "forget10")["question"] == ["q2"]


def test_span_files_memoised_fresh_dicts(tmp_path):
    """tofu.load_spans reads a span folder once per process (again after a change) and returns a fresh dict each
    call; attach_spans joins the same spans as before (its fingerprint is computed, not pickled)."""
    import datasets

    from paperlib.benchmarks.tofu import data as tofu

    def save(words):
        datasets.Dataset.from_list([{"question": "q1", "answer": "Ann Lee wrote it.",
                                     "target_words": [json.dumps(w) for w in words]}]).save_to_disk(tmp_path / "s")

    save([{"word": "Ann", "start": 0, "end": 3}])
    first = tofu.load_spans(tmp_path / "s")
    first["q1"]["spans"].append((4, 7))
    assert tofu.load_spans(tmp_path / "s")["q1"]["spans"] == [(0, 3)]
    (tmp_path / "forget10.json").write_text(json.dumps({"question": "q1", "answer": "Ann Lee wrote it."}) + "\n")
    rows = tofu.attach_spans(tofu.load_split(tmp_path, "forget10"), tofu.load_spans(tmp_path / "s")).to_list()
    assert rows == [{"question": "q1", "answer": "Ann Lee wrote it.", "spans": [[0, 3]], "common": []}]
    save([{"word": "Ann Lee", "start": 0, "end": 7}])
    assert tofu.load_spans(tmp_path / "s")["q1"]["spans"] == [(0, 7)]
    rows = tofu.attach_spans(tofu.load_split(tmp_path, "forget10"), tofu.load_spans(tmp_path / "s")).to_list()
    assert rows[0]["spans"] == [[0, 7]]
