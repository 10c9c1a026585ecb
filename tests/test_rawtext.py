"""Raw-text unlearning: chunking at block edges, encode_texts' labels and sensitive flags from character spans
(a whitespace word-level tokenizer, so every offset is hand-checkable), TextCorpus, the evaluator registry
and `unlearn_text` end to end on the smoke model with a toy evaluator (seconds)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import corpus as C
from paperlib.engine.config import get_profile
from paperlib.engine.corpus import EvalCall
from paperlib.engine.errors import PaperlibError
from paperlib.engine.rawtext import chunk, encode_texts
from paperlib.engine.unlearn import RunOptions, read_run, text_methods, unlearn_text


@pytest.fixture(scope="module")
def word_tok() -> PreTrainedTokenizerFast:
    """Words split on whitespace: 'a' -> 1, 'b' -> 2, ...; BOS id 0."""
    vocab = {"<s>": 0, "<unk>": 99, **{w: i + 1 for i, w in enumerate("a b c d e f g h".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="<unk>", pad_token="<s>")


@pytest.mark.parametrize("n, block, sizes", [(10, 4, [4, 4, 2]), (8, 4, [4, 4]), (3, 4, [3]), (0, 4, []),
                                             (9, 2, [2, 2, 2, 2, 1])])
def test_chunk_keeps_every_token_once(n, block, sizes):
    ids = list(range(100, 100 + n))
    blocks = chunk(ids, block)
    assert [len(b) for b in blocks] == sizes
    assert [t for b in blocks for t in b] == ids  # nothing lost or duplicated at an edge


@pytest.mark.parametrize("block", [1, 0, -3, 2.0, True])
def test_chunk_refuses_a_bad_block(block):
    with pytest.raises(PaperlibError, match="block="):
        chunk([1, 2, 3], block)


def test_encode_texts_blocks_labels_and_flags(word_tok):
    texts = ["a b c d e", "f g"]
    #         0123456789: 'c' is chars 4-5, 'd e' chars 6-9
    samples = encode_texts(word_tok, texts, block=4, spans=[[(4, 5), (8, 9)], []])
    assert [s["input_ids"] for s in samples] == [[0, 1, 2, 3], [4, 5], [0, 6, 7]]  # BOS per text, no crossing
    assert all(s["labels"] == s["input_ids"] for s in samples)  # every token a target
    assert [s["sensitive"] for s in samples] == [[False, False, False, True], [False, True], [False] * 3]
    assert [(s["text"], s["start"]) for s in samples] == [(0, 0), (0, 4), (1, 0)]


def test_encode_texts_flags_partial_overlap_and_no_bos(word_tok):
    # a span covering half of 'bb'... here 'h' (chars 2-3) overlapped by (2, 3); (1, 2) is the space: no token
    samples = encode_texts(word_tok, ["a h"], block=8, spans=[[(1, 2)]], bos=False)
    assert samples[0]["input_ids"] == [1, 8] and samples[0]["sensitive"] == [False, False]
    samples = encode_texts(word_tok, ["a h"], block=8, spans=[[(1, 3)]], bos=False)
    assert samples[0]["sensitive"] == [False, True]


@pytest.mark.parametrize("kwargs, match", [
    ({"texts": "a b", "block": 4}, "one string"),
    ({"texts": ["a b"], "block": 4, "spans": [[], []]}, "2 span lists for 1 texts"),
    ({"texts": ["a b"], "block": 4, "spans": [[(2, 9)]]}, "outside the answer"),
    ({"texts": ["a b"], "block": 1}, "block=1"),
])
def test_encode_texts_refuses_bad_input(word_tok, kwargs, match):
    with pytest.raises(PaperlibError, match=match):
        encode_texts(word_tok, **kwargs)


def test_corpus_digest_and_checks():
    a = C.TextCorpus("toy", ("a b", "c"), ("d",), 4, (((0, 1),), ()))
    assert a.forget_spans == (((0, 1),), ())
    assert a.digest() == C.TextCorpus("toy", ["a b", "c"], ["d"], 4, [[[0, 1]], []]).digest()  # lists normalised
    for changed in (C.TextCorpus("toy", ("a b", "c"), ("d",), 5, (((0, 1),), ())),
                    C.TextCorpus("toy", ("a b", "c"), ("d",), 4, (((0, 2),), ())),
                    C.TextCorpus("toy", ("a b", "c"), ("e",), 4, (((0, 1),), ())),
                    C.TextCorpus("toy", ("a b", "c"), ("d",), 4)):
        assert changed.digest() != a.digest()
    with pytest.raises(PaperlibError, match="no forget document"):
        C.TextCorpus("toy", (), ("d",), 4)
    with pytest.raises(PaperlibError, match="1 span lists for 2 forget documents"):
        C.TextCorpus("toy", ("a", "b"), (), 4, ((),))
    with pytest.raises(PaperlibError, match="empty or not a string"):
        C.TextCorpus("toy", ("a", ""), (), 4)


def test_evaluator_registry():
    @C.register_evaluator("toy-registry")
    def ev(model, tok, profile, args, out_dir):
        return {}
    try:
        assert C.get_evaluator("toy-registry") is ev
        with pytest.raises(ValueError, match="already registered"):
            C.register_evaluator("toy-registry")(lambda *a: {})
    finally:
        C.unregister_evaluator("toy-registry")
    with pytest.raises(PaperlibError, match="unknown evaluator 'toy-registry'"):
        C.get_evaluator("toy-registry")


# ----------------------------------------------------------------------------------------- the engine
CALLS: list[dict] = []


@pytest.fixture
def toy_eval():
    """A toy evaluator: the model's mean NLL on the first forget text; writes TOY_EVAL.json."""
    import torch

    @C.register_evaluator("toy-nll")
    def ev(model, tok, profile, args, out_dir):
        ids = torch.tensor([tok(args["probe"], add_special_tokens=False)["input_ids"]], device=model.device)
        with torch.no_grad():
            nll = float(model(input_ids=ids, labels=ids).loss)
        CALLS.append({"args": args, "out": out_dir})
        if out_dir is not None:
            (out_dir / "TOY_EVAL.json").write_text(json.dumps({"nll": nll}))
        return {"probe_nll": nll, "nonfinite": float("nan")} if args.get("bad") else {"probe_nll": nll}
    yield ev
    C.unregister_evaluator("toy-nll")
    CALLS.clear()


FORGET = ("Ada Quill was born in Port Sallow in 1961 and wrote eleven novels about lighthouses.",
          "The Sallow Gazette reported that Ada Quill won the Amber Prize in 1999.")
RETAIN = ("Rivers carry water to the sea.", "A library lends books to its readers.")


def _corpus(spans=None) -> C.TextCorpus:
    return C.TextCorpus("toy", FORGET, RETAIN, block=8, forget_spans=spans)


def test_unlearn_text_runs_and_caches(toy_eval, tmp_path):
    profile = get_profile("smoke")
    model = pipeline.original_model(profile)
    args = {"probe": FORGET[0]}
    kw = dict(overrides={"epochs": 2, "lr": 1e-3})
    quiet = RunOptions(save_model=False, progress=False)
    run = unlearn_text(profile, "GD", _corpus(), EvalCall("toy-nll", args), model, **kw,
                       options=replace(quiet, force=True))
    r = read_run(run)
    assert r["status"]["status"] == "completed" and r["config"]["kind"] == "text"
    assert r["config"]["corpus"]["digest"] == _corpus().digest() and r["config"]["eval_args"] == args
    assert len(r["epochs"]) == 2 and r["summary"]["probe_nll"] == json.loads((run / "TOY_EVAL.json").read_text())["nll"]
    assert [c["out"] is None for c in CALLS] == [True, False]  # the last evaluation writes the logs
    assert {"forget", "retain"} <= set(r["steps"][0])
    CALLS.clear()
    again = unlearn_text(profile, "GD", _corpus(), EvalCall("toy-nll", args), model, **kw, options=quiet)
    assert again == run and CALLS == []  # cached (eval_args in the key: tests/test_runspec.py)


def test_unlearn_text_palu_with_spans_and_divergence_on_nan_summary(toy_eval):
    profile = get_profile("smoke")
    model = pipeline.original_model(profile)
    spans = (((0, 8), (20, 30)), ((4, 18),))
    run = unlearn_text(profile, "PALU", _corpus(spans), EvalCall("toy-nll", {"probe": FORGET[0]}), model,
                       overrides={"epochs": 1, "lr": 1e-3},
                       options=RunOptions(force=True, save_model=False, progress=False))
    assert read_run(run)["status"]["status"] == "completed"
    bad = read_run(unlearn_text(profile, "GA", _corpus(), EvalCall("toy-nll", {"probe": FORGET[0], "bad": True}),
                                model, overrides={"epochs": 1},
                                options=RunOptions(force=True, save_model=False, progress=False)))
    assert bad["status"]["status"] == "diverged" and bad["summary"] is None
    assert "non-finite" in bad["status"]["message"]


@pytest.mark.parametrize("method, corpus_kw, match", [
    ("DPO", {}, "needs an IdK answer"),
    ("TPO", {}, "common words"),
    ("PALU", {}, "no forget_spans"),
])
def test_unlearn_text_refuses_methods_that_cannot_apply(toy_eval, method, corpus_kw, match):
    profile = get_profile("smoke")
    with pytest.raises(PaperlibError, match=match) as err:
        unlearn_text(profile, method, _corpus(**corpus_kw), EvalCall("toy-nll", {"probe": "x"}),
                     pipeline.original_model(profile))
    if method != "PALU":
        assert "allowed on raw text: GA, GD, NPO" in str(err.value)


def test_unlearn_text_refuses_bad_input(toy_eval):
    profile = get_profile("smoke")
    model = pipeline.original_model(profile)
    with pytest.raises(PaperlibError, match="unknown evaluator 'nope'"):
        unlearn_text(profile, "GA", _corpus(), EvalCall("nope", {}), model)
    with pytest.raises(PaperlibError, match="not plain JSON"):
        unlearn_text(profile, "GA", _corpus(), EvalCall("toy-nll", {"probe": object()}), model)
    with pytest.raises(PaperlibError, match="longer than the model's context"):
        unlearn_text(profile, "GA", C.TextCorpus("toy", FORGET, RETAIN, block=4096), EvalCall("toy-nll", {}), model)
    with pytest.raises(PaperlibError, match="no retain document"):
        unlearn_text(profile, "GD", C.TextCorpus("toy", FORGET, (), block=8), EvalCall("toy-nll", {}), model)


def test_text_methods_lists_the_applicable_ones():
    names = text_methods()
    assert {"GA", "GD", "NPO", "SimNPO", "WGA", "UnDIAL", "Unilogit", "RMU", "PALU"} <= set(names)
    assert "DPO" not in names and "TPO" not in names
