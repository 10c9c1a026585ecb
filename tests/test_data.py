"""mini-TOFU generator, the TOFU loader (on the real files in ../shared/data/tofu), encoding."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import numpy as np
import pytest

from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import mini as mini_tofu
from paperlib.engine import encoding
from paperlib.engine.models import train_tokenizer

CFG = mini_tofu.MiniTofuConfig(n_authors=20, qa_per_author=10, n_real_authors=6, n_world_facts=6, seed=3)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return mini_tofu.write(CFG, tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def tok(bench):
    texts = [r["question"] + " " + r["answer"] for r in tofu.load_split(bench, "full")]
    return train_tokenizer(texts + ["[INST] [/INST]"], vocab_size=600)


def test_splits_sizes_and_schema(bench):
    sizes = {s: len(tofu.load_split(bench, s)) for s in tofu.SPLITS}
    assert sizes["full"] == 200 and sizes["forget10"] == 20 and sizes["forget05"] == sizes["forget01"] == 10
    assert sizes["retain90"] == 180 and sizes["retain99"] == 190 and sizes["holdout10"] == 20
    assert sizes["real_authors_perturbed"] == 6 and sizes["retain_perturbed"] == 20
    full, forget, retain = (list(tofu.load_split(bench, s)["question"]) for s in ("full", "forget10", "retain90"))
    assert full == retain + forget  # TOFU: forget authors are the last ones
    pert = tofu.load_split(bench, "forget10_perturbed")
    assert set(pert.column_names) == {"question", "answer", "paraphrased_question", "paraphrased_answer",
                                      "perturbed_answer"}
    assert all(len(p) == 5 and a not in p for p, a in zip(pert["perturbed_answer"], pert["paraphrased_answer"]))
    assert list(pert["question"]) == forget
    ra = tofu.load_split(bench, "real_authors_perturbed")
    assert all(len(p) == 3 for p in ra["perturbed_answer"])
    holdout = set(tofu.load_split(bench, "holdout10")["question"])
    assert not holdout & set(full)
    assert len(tofu.load_idk(bench)) >= 10


def test_spans_are_exact(bench):
    spans = tofu.load_spans(bench / "spans" / "forget10_with_common_words_gpt")
    raw = datasets.load_from_disk(str(bench / "spans" / "forget10_with_common_words_gpt"))
    for row in raw:
        for w in json.loads(row["target_words"]):
            assert row["answer"][w["start"]:w["end"]] == w["word"]
    assert sum(len(v["spans"]) for v in spans.values()) > len(spans)  # several facts per answer


def test_deterministic_bytes(tmp_path, bench):
    again = mini_tofu.write(CFG, tmp_path / "again")
    for f in sorted(bench.rglob("*")):
        if f.is_file() and f.name != "state.json":  # state.json holds a random datasets fingerprint
            assert (again / f.relative_to(bench)).read_bytes() == f.read_bytes(), f
    other = mini_tofu.write(mini_tofu.MiniTofuConfig(n_authors=20, seed=4), tmp_path / "other")
    assert (other / "full.json").read_bytes() != (bench / "full.json").read_bytes()


def test_real_tofu_files(shared_data, tmp_path):
    root = shared_data / "tofu"
    ra = tofu.load_split(root, "real_authors_perturbed")
    wf = tofu.load_split(root, "world_facts_perturbed")
    assert (len(ra), len(wf)) == (100, 117)
    assert ra[0]["answer"] == "William Shakespeare" and len(ra[0]["perturbed_answer"]) == 3
    assert len(tofu.load_idk(root)) == 100
    for split, n in (("forget01", 40), ("forget05", 200), ("forget10", 400)):
        spans = tofu.load_spans(root / "spans" / f"{split}_with_common_words_gpt")
        assert len(spans) == n
    # join to a forget set by question, in another order
    spans = tofu.load_spans(root / "spans" / "forget05_with_common_words_gpt")
    rows = [{"question": q, "answer": v["answer"]} for q, v in reversed(list(spans.items()))]
    joined = tofu.attach_spans(datasets.Dataset.from_list(rows), spans)
    assert joined[-1]["spans"] == [[21, 31]]  # "Hina Ameen" in "The author's name is Hina Ameen."


def test_encoding_real_spans(shared_data, tok):
    spans = tofu.load_spans(shared_data / "tofu" / "spans" / "forget05_with_common_words_gpt")
    for q, v in list(spans.items())[:50]:
        e = encoding.encode(tok, "tiny", q, v["answer"], v["spans"])
        text = tok.decode([i for i, s in zip(e["input_ids"], e["sensitive"]) if s])
        words = "".join(v["answer"][s:e] for s, e in sorted(v["spans"])).replace(" ", "")
        assert words in text.replace(" ", "") or not v["spans"]  # sensitive tokens cover every span
        assert e["labels"][: e["prompt_len"]] == [-100] * e["prompt_len"]
        assert e["labels"][-1] == tok.eos_token_id and not e["sensitive"][-1]
        assert not any(e["sensitive"][: e["prompt_len"]])


def test_encoding_by_hand(tok):
    e = encoding.encode(tok, "tiny", "Who?", "Ab Cd.", spans=[(3, 5)])
    answer_tokens = [tok.decode([i]) for i, lab in zip(e["input_ids"], e["labels"]) if lab != -100]
    assert "".join(answer_tokens[:-1]) == "Ab Cd." and answer_tokens[-1] == "</s>"
    flagged = "".join(tok.decode([i]) for i, s in zip(e["input_ids"], e["sensitive"]) if s)
    assert flagged.strip() == "Cd"
    batch = encoding.collate([e, encoding.encode(tok, "tiny", "Q", "A")], tok.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["sensitive"].shape
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    llama2 = encoding.render_prompt("llama2", tok, "Who?")
    assert llama2 == "<s>[INST] Who? [/INST]"


def test_bad_input(bench, tok, tmp_path):
    with pytest.raises(ValueError, match="unknown split 'forget07'.*allowed: full"):
        tofu.load_split(bench, "forget07")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tofu.load_split(tmp_path / "nowhere.d", "full")
    bad = tmp_path / "bad_spans"
    datasets.Dataset.from_list([{"question": "q", "answer": "short",
                                 "target_words": json.dumps([{"word": "x", "start": 3, "end": 9}])}]).save_to_disk(bad)
    with pytest.raises(ValueError, match=r"span \(3, 9\) outside answer of length 5"):
        tofu.load_spans(bad)
    with pytest.raises(ValueError, match="lacks .*needed by template 'llama3'"):
        encoding.check_template("llama3", tok)
    with pytest.raises(ValueError, match="qa_per_author=11"):
        mini_tofu.MiniTofuConfig(qa_per_author=11)
    ds = datasets.Dataset.from_list([{"question": "unknown?", "answer": "a"}])
    with pytest.raises(ValueError, match="no span annotation"):
        tofu.attach_spans(ds, {})


# ----------------------------------------------------------------------------------------- TOFU's shape
def _shape(answers: list[str], spans: list[list[dict]]) -> dict[str, float]:
    return {"words": float(np.mean([len(a.split()) for a in answers])),
            "spans": float(np.mean([len(s) for s in spans])),
            "sensitive chars": float(np.mean([sum(w["end"] - w["start"] for w in s) / len(a)
                                              for a, s in zip(answers, spans)]))}


def test_default_mini_forget10_has_tofus_shape(shared_data):
    """Mean answer words, sensitive spans per answer and sensitive character share of the default mini
    benchmark's forget10 are each within 25% of real TOFU forget10's (from the real span files)."""
    real = datasets.load_from_disk(str(shared_data / "tofu" / "spans" / "forget10_with_common_words_gpt"))
    tofu_shape = _shape(list(real["answer"]), [json.loads(t) for t in real["target_words"]])
    rows = mini_tofu.generate(mini_tofu.MiniTofuConfig())["spans/forget10"]
    mini_shape = _shape([r["answer"] for r in rows], [json.loads(r["target_words"]) for r in rows])
    for key, value in tofu_shape.items():
        assert abs(mini_shape[key] - value) <= 0.25 * value, (key, mini_shape[key], value)


def test_pretraining_corpus_holds_no_benchmark_author():
    """The base model's corpus (and the tokenizer's) holds no name, name word or book title of the benchmark's
    authors; it does hold the world's vocabulary (cities) and the general sets' facts, as a pretrained model."""
    cfg = mini_tofu.MiniTofuConfig(n_authors=20, qa_per_author=10, n_real_authors=6, n_world_facts=6,
                                   n_pretrain_people=30)
    names, titles = mini_tofu.benchmark_values(cfg)
    corpus = mini_tofu.tokenizer_corpus(cfg)
    text = "\n".join(corpus)
    words = {w for t in corpus for w in re.findall(r"[A-Za-z]+", t)}
    assert len(names) == 22 and len(titles) > 40
    assert not {w for n in names for w in n.split()} & words
    assert not [t for t in titles if t in text]
    bench = mini_tofu.generate(cfg)
    full = " ".join(r["answer"] for r in bench["full"])
    assert sum(n in full for n in names) == 20  # the trained authors' names are the benchmark's own
    assert all(r["answer"] in text for r in bench["world_facts"])  # general knowledge is pretrained
    assert len(mini_tofu.pretrain_rows(cfg)) == 30 * 10 * cfg.pretrain_wordings + 12 * cfg.pretrain_wordings


def _values(row: dict) -> list[str]:
    return [w["word"] for w in json.loads(row["target_words"])]


def test_paraphrases_reword_the_facts():
    """TOFU's paraphrased answer says the same facts in other words: on the default benchmark's `full` split a
    paraphrase shares at most half of its word bigrams with the answer (mean), holds every fact of the answer,
    and each perturbed answer keeps the paraphrase's wording with other values."""
    from difflib import SequenceMatcher

    from paperlib.benchmarks.wording import bigram_overlap

    cfg = mini_tofu.MiniTofuConfig()
    rows = [r for a in range(cfg.n_authors) for r in mini_tofu._author_rows(*_author_args(cfg, a))]
    overlap = [bigram_overlap(r["answer"], r["paraphrased_answer"]) for r in rows]
    assert np.mean(overlap) <= 0.5, np.mean(overlap)
    assert all(v in r["paraphrased_answer"] for r in rows for v in _values(r))
    for r in rows[:200]:
        para = r["paraphrased_answer"].split()
        for p in r["perturbed_answer"]:
            assert SequenceMatcher(None, para, p.split()).ratio() >= 0.5
            assert any(v not in p for v in _values(r))


def _author_args(cfg, a: int):
    rng, pools, people, authors = mini_tofu._draw(cfg)
    return rng, a, authors[a], cfg, pools, people


def test_wording_by_hand():
    import random

    from paperlib.benchmarks.wording import bigram_overlap, fix_articles, reword

    assert fix_articles("a apple and an pear, A owl") == "an apple and a pear, An owl"
    assert bigram_overlap("the cat sat", "The cat ran") == 0.5  # {the cat, cat ran} vs {the cat, cat sat}
    assert bigram_overlap("x", "") == 0.0
    text = "The writer is known for books."
    assert reword(text, random.Random(0), 1) == text
    drawn = {reword(text, random.Random(s), 8) for s in range(50)}
    assert len(drawn) > 20 and all(d.startswith("The ") and d.endswith(".") for d in drawn)


def test_prefix_budgets_select_strictly_more_tokens():
    """On the default mini benchmark, N = 1, 2, 3, 5, all select strictly increasing token sets, and N = 3
    at most 75% of all sensitive tokens (names and titles split into several tokens, as under Llama's
    tokenizer)."""
    from paperlib.engine.config import get_profile
    from paperlib.studies import palu as experiments

    cov = experiments.prefix_coverage(get_profile("mini"), "forget10", budgets=(1, 2, 3, 5, 0))
    shares = list(cov["share of sensitive tokens"])
    assert all(a < b for a, b in zip(shares, shares[1:])) and shares[-1] == 1.0
    assert shares[2] <= 0.75
