"""MUSE's metrics as its eval.py computes them (metrics.md, rwku_muse.md), written in open-unlearning's schema.

- VerbMem: greedy continuation of each verbmem prompt (raw text, no chat template), ROUGE-L F1 against
  the true continuation (rouge_score, no stemmer).
- KnowMem (forget / retain): `knowmem_prompt` (the in-context pairs, then "Question: q\\nAnswer: "), greedy,
  the answer cut at the first of `STOP_STRINGS`, ROUGE-L F1 against the answer. KnowMem-retain is utility.
- PrivLeak: Min-40% score of each privleak text, AUC of forget vs holdout (open-unlearning's orientation:
  forget = label 0, holdout = 1, loss-like score, so 1 = memorised), then `metrics.privleak` against the
  retrained model's AUC: ((1 - AUC) - (1 - AUC_ref)) / (1 - AUC_ref) x 100, which is MUSE's
  (AUC' - AUC'_ref) / AUC'_ref x 100 with MUSE's AUC' = 1 - AUC. Near 0 = like the retrained model;
  strongly negative = the forget texts are still told apart from unseen ones.
- Aggregates: the mean, and MUSE's bootstrap 95% confidence interval of it (scipy.stats.bootstrap,
  percentile method, `N_RESAMPLES`, seeded).

Scale: open-unlearning's (ROUGE in 0..1, PrivLeak in %); MUSE's tables print ROUGE x 100.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from paperlib.benchmarks import scoring as scores
from paperlib.benchmarks.tofu import evaluate, metrics
from paperlib.engine import rawtext
from paperlib.engine.errors import PaperlibError

if TYPE_CHECKING:  # rouge_score (nltk) and scipy load where used
    from rouge_score import rouge_scorer

STOP_STRINGS = ("\n\n", "\nQuestion", "Question:")  # MUSE's KnowMem stop strings
MIN_K = 0.4
N_RESAMPLES = 9999  # scipy's default
CONFIDENCE = 0.95
VERBMEM, KNOW_F, KNOW_R, MIA, PRIVLEAK = ("forget_verbmem_ROUGE", "forget_knowmem_ROUGE", "retain_knowmem_ROUGE",
                                          "mia_min_k", "privleak")
SUMMARY_KEYS = (VERBMEM, KNOW_F, KNOW_R, PRIVLEAK, MIA)
EVAL_FILE, SUMMARY_FILE = "MUSE_EVAL.json", "MUSE_SUMMARY.json"


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=False)


def rouge(prediction: str, target: str) -> dict[str, float]:
    """MUSE's per-item ROUGE fields: rougeL / rouge1 F1 and their recall (no stemmer)."""
    s = _scorer().score(target, prediction)
    return {"rougeL": s["rougeL"].fmeasure, "rougeL_recall": s["rougeL"].recall,
            "rouge1": s["rouge1"].fmeasure, "rouge1_recall": s["rouge1"].recall}


def knowmem_prompt(icl: Sequence[dict], question: str) -> str:
    """The in-context pairs "Question: q\\nAnswer: a\\n\\n", then "Question: {question}\\nAnswer: "."""
    shots = "".join(f"Question: {ex['question']}\nAnswer: {ex['answer']}\n\n" for ex in icl)
    return f"{shots}Question: {question}\nAnswer: "


def cut_at_stop(text: str, stops: Sequence[str] = STOP_STRINGS) -> str:
    """`text` up to the earliest stop string, stripped."""
    ends = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(ends)] if ends else text).strip()


def bootstrap_ci(values: Sequence[float], n_resamples: int = N_RESAMPLES, seed: int = 0,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); (v, v) when all values are equal."""
    v = metrics.check_finite(np.asarray(values, dtype=float).ravel(), "bootstrap_ci")
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    from scipy import stats

    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                          method="percentile", random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def aggregate(per_item: dict[str, dict], field: str = "rougeL") -> dict:
    """{"agg_value": mean, "ci_low", "ci_high", "value_by_index"} of one metric's per-item logs."""
    vals = [r[field] for r in per_item.values()]
    low, high = bootstrap_ci(vals)
    return {"agg_value": float(np.mean(vals)), "ci_low": low, "ci_high": high, "value_by_index": per_item}


# MUSE's eval.py hard-codes the retrained models' Min-40% AUC (its orientation, AUC' = 1 - ours); paperlib uses
# the retrained model's own log instead (open-unlearning's way; docs/departures.md); these reproduce MUSE's.
MUSE_AUC_RETRAINED = {"news": 0.4772, "books": 0.5393}


def muse_reference(corpus: str) -> dict:
    """A reference log carrying MUSE's hard-coded retrained AUC of `corpus` (news / books), in our orientation,
    to pass as `evaluate_muse(reference=...)` for MUSE's own PrivLeak numbers."""
    if corpus not in MUSE_AUC_RETRAINED:
        raise PaperlibError(f"MUSE corpus {corpus!r}; allowed: {', '.join(MUSE_AUC_RETRAINED)}")
    return {MIA: {"agg_value": 1.0 - MUSE_AUC_RETRAINED[corpus]}}


def privleak_from_aucs(auc: float, auc_ref: float | None) -> float:
    """PrivLeak (%) of a model's Min-K AUC against the retrained model's (open-unlearning orientation)."""
    if auc_ref is None:
        raise PaperlibError("privleak needs the retrained model's mia_min_k AUC (its MUSE_EVAL.json); none given")
    return float(metrics.privleak(auc, auc_ref))


# ----------------------------------------------------------------------------------------- model passes
@torch.no_grad()
def generate_raw(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 32,
                 max_length: int | None = None) -> list[str]:
    """Greedy continuations of raw-text prompts (no template, BOS first as `rawtext.tokenize`; left padding),
    decoded without special tokens.
    A prompt longer than `max_length - max_new_tokens` tokens keeps its last tokens."""
    ids_all = [rawtext.tokenize(tokenizer, p)[0] for p in prompts]
    if max_length:
        ids_all = [ids[-(max_length - max_new_tokens):] for ids in ids_all]
    return evaluate.generate_ids(model, tokenizer, ids_all, max_new_tokens, batch_size)


def min_k_scores(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 32,
                 k: float = MIN_K) -> np.ndarray:
    """Min-K% score of each raw text (`evaluate.score_texts`: BOS first, the first `max_length` tokens)."""
    return evaluate.score_texts(model, tokenizer, texts, max_length,
                                lambda logits, labels, _: {"min_k": scores.min_k(logits, labels, k)},
                                batch_size)["min_k"]


# ----------------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class MuseEvalConfig:
    """How `evaluate_muse` generates and scores: generation lengths, token budget, batch and KnowMem prompt end."""

    verbmem_new_tokens: int = 128  # VerbMem continuation length (MUSE: 128)
    knowmem_new_tokens: int = 32  # KnowMem answer length (MUSE: 32)
    max_length: int = 2048  # tokens of a privleak text / prompt the model reads
    batch_size: int = 32  # evaluation batch
    answer_space: bool = False  # leave the KnowMem prompt's final space to the model (byte-level BPE tiny models)


def evaluate_muse(model, tokenizer, data, cfg: MuseEvalConfig = MuseEvalConfig(), reference: dict | None = None,
                  out_dir: str | Path | None = None) -> tuple[dict, dict]:
    """(MUSE_EVAL, MUSE_SUMMARY) of `model` on `data` (a `paperlib.benchmarks.muse.data.MuseData`) with the
    settings `cfg` (a `MuseEvalConfig`; `MuseEvalConfig(**evaluate.eval_settings(profile))` for a profile's);
    `reference`: the retrained model's MUSE_EVAL (its mia_min_k AUC is PrivLeak's reference; None: privleak left
    out, said); `out_dir`: where MUSE_EVAL.json / MUSE_SUMMARY.json are written (None: not written).
    `cfg.answer_space`: the KnowMem prompt's final space is left for the model to generate (MUSE's prompt ends in
    "Answer: "; a byte-level BPE such as the tiny models' attaches a word's leading space to the word, so a
    prompt ending in a lone space token is one such a model never saw before an answer). The logged prompt
    is MUSE's either way."""
    verbmem_new_tokens, knowmem_new_tokens = cfg.verbmem_new_tokens, cfg.knowmem_new_tokens
    max_length, batch_size, answer_space = cfg.max_length, cfg.batch_size, cfg.answer_space
    was_training = model.training
    model.eval()
    log: dict[str, dict] = {}
    prompts = [r["prompt"] for r in data.verbmem]
    gens = generate_raw(model, tokenizer, prompts, verbmem_new_tokens, batch_size, max_length)
    log[VERBMEM] = aggregate({str(i): {"prompt": p, "gt": r["gt"], "response": g, **rouge(g, r["gt"])}
                              for i, (p, r, g) in enumerate(zip(prompts, data.verbmem, gens))})
    for key, split in ((KNOW_F, "forget"), (KNOW_R, "retain")):
        qa, icl = data.knowmem[f"{split}_qa"], data.knowmem[f"{split}_qa_icl"]
        kprompts = [knowmem_prompt(icl, r["question"]) for r in qa]
        fed = [p.removesuffix(" ") for p in kprompts] if answer_space else kprompts
        answers = [cut_at_stop(g) for g in generate_raw(model, tokenizer, fed, knowmem_new_tokens,
                                                        batch_size, max_length)]
        log[key] = aggregate({str(i): {"question": r["question"], "gt": r["answer"], "response": a,
                                       **rouge(a, r["answer"])} for i, (r, a) in enumerate(zip(qa, answers))})
    f = min_k_scores(model, tokenizer, data.privleak["forget"], max_length, batch_size)
    h = min_k_scores(model, tokenizer, data.privleak["holdout"], max_length, batch_size)
    auc = metrics.mia_auc(f, h)
    log[MIA] = {"agg_value": auc, "value_by_index": {
        "forget": {str(i): {"score": float(s)} for i, s in enumerate(f)},
        "holdout": {str(i): {"score": float(s)} for i, s in enumerate(h)}}}
    model.train(was_training)
    summary = {k: log[k]["agg_value"] for k in (VERBMEM, KNOW_F, KNOW_R, MIA)}
    if reference is not None:
        summary[PRIVLEAK] = privleak_from_aucs(auc, reference[MIA]["agg_value"])
        log[PRIVLEAK] = {"agg_value": summary[PRIVLEAK], "auc": auc, "auc_reference": reference[MIA]["agg_value"]}
    else:
        warnings.warn("privleak left out: no retrained-model MUSE_EVAL.json given", stacklevel=2)
    if out_dir is not None:
        write_logs(log, summary, out_dir)
    return log, summary


def write_logs(log: dict, summary: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / EVAL_FILE).write_text(json.dumps(log, indent=1, allow_nan=False))
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, allow_nan=False))
    return out


def load_log(path: str | Path) -> dict:
    """A MUSE_EVAL.json (or the folder holding it), checked for the Min-K AUC PrivLeak needs."""
    p = Path(path)
    p = p / EVAL_FILE if p.is_dir() else p
    if not p.is_file():
        raise PaperlibError(f"no {EVAL_FILE} at {p}; allowed: a retrained model's MUSE evaluation log")
    try:
        log = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise PaperlibError(f"{p} is not valid JSON ({err.msg})") from None
    if not isinstance(log, dict) or MIA not in log or "agg_value" not in log[MIA]:
        raise PaperlibError(f"{p} lacks {MIA}.agg_value; allowed: a MUSE_EVAL.json")
    return log
