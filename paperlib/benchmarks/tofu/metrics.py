"""Unlearning metrics: numbers in, numbers out (no model, no torch, no I/O).

Definitions follow open-unlearning (github.com/locuslab/open-unlearning, src/evals/metrics/memorization.py,
privacy.py, utility.py, utils.py, mia/) and TOFU (Maini et al., 2024); see shared/spec/metrics.md.
`summarize_tofu` recomputes every aggregate of an open-unlearning TOFU_EVAL.json from its per-sample values
and reproduces published logs bit for bit (tests/test_metrics.py). At that precision these details of
open-unlearning matter, and are kept:
- truth ratio TR = exp(-mean_j loss_perturbed_j) / (exp(-loss_correct) + 1e-10); the forget aggregate is
  mean(min(TR, 1 / (TR + 1e-10))), the other sets' mean(max(0, 1 - TR));
- normalised prob = p / (p + sum_j p_j + 1e-10); privleak divides by (1 - AUC_ref) + 1e-10;
- the per-sample prob of PERT metrics is averaged per sample first, then over samples;
- the MinK, MinK++ and gradnorm attack scores are float32 numbers, so their forget / holdout means are
  float32 means (the AUCs are unaffected).
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from paperlib.engine.errors import NonFiniteError, PaperlibError

if TYPE_CHECKING:
    from rouge_score import rouge_scorer

EPS = 1e-10  # open-unlearning's guard in truth ratio, normalised prob and privleak
MU_NAMES = ("retain_Q_A_Prob", "retain_Q_A_ROUGE", "retain_Truth_Ratio", "ra_Q_A_Prob_normalised",
            "ra_Q_A_ROUGE", "ra_Truth_Ratio", "wf_Q_A_Prob_normalised", "wf_Q_A_ROUGE", "wf_Truth_Ratio")
# aggregate -> (correct-answer metric, perturbed-answers metric); "correct" is the paraphrase on forget/retain
TRUTH_RATIOS = {"forget_truth_ratio": ("forget_Q_A_PARA_Prob", "forget_Q_A_PERT_Prob"),
                "retain_Truth_Ratio": ("retain_Q_A_PARA_Prob", "retain_Q_A_PERT_Prob"),
                "ra_Truth_Ratio": ("ra_Q_A_Prob", "ra_Q_A_PERT_Prob"),
                "wf_Truth_Ratio": ("wf_Q_A_Prob", "wf_Q_A_PERT_Prob")}
NORMALISED = {"ra_Q_A_Prob_normalised": ("ra_Q_A_Prob", "ra_Q_A_PERT_Prob"),
              "wf_Q_A_Prob_normalised": ("wf_Q_A_Prob", "wf_Q_A_PERT_Prob")}
MEAN_FIELDS = ("prob", "rougeL_recall", "score")  # per-sample field averaged by plain-mean metrics
DERIVED = ("model_utility", "forget_quality", "privleak")
FLOAT32_MIA = ("mia_min_k", "mia_min_k_plus_plus", "mia_gradnorm")
PALU_COLUMNS = {"FQ": "forget_quality", "MU": "model_utility", "Fluency": "fluency",
                "EM": "exact_memorization", "F-TR": "forget_truth_ratio", "Ra-TR": "ra_Truth_Ratio",
                "R-TR": "retain_Truth_Ratio", "Rw-TR": "wf_Truth_Ratio"}


def truth_ratio(correct_avg_loss: ArrayLike, perturbed_avg_loss: ArrayLike, eps: float = EPS) -> np.ndarray:
    """Per-sample TR [n] = exp(-mean_j perturbed[:, j]) / (exp(-correct) + eps): perturbed answers are
    averaged in log space (geometric mean of their probs); eps as open-unlearning."""
    c, w = np.asarray(correct_avg_loss, dtype=float), np.asarray(perturbed_avg_loss, dtype=float)
    if c.ndim != 1 or w.ndim != 2 or len(c) != len(w):
        raise PaperlibError(f"truth_ratio needs correct losses [n] and perturbed losses [n, m]; got {c.shape}, "
                            f"{w.shape}")
    check_finite(c, "truth_ratio: correct_avg_loss")
    check_finite(w, "truth_ratio: perturbed_avg_loss")
    return np.exp(-w.mean(axis=1)) / (np.exp(-c) + eps)


def check_finite(values: np.ndarray, name: str) -> np.ndarray:
    """Raise unless `values` (per sample along axis 0) is non-empty and finite, naming the bad samples."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise PaperlibError(f"{name}: no samples (empty array); allowed: at least one sample")
    bad = ~np.isfinite(v.reshape(len(v), -1)).all(axis=1) if v.ndim else ~np.isfinite(v[None])
    if bad.any():
        idx = np.flatnonzero(bad).tolist()
        raise NonFiniteError(f"{name}: non-finite value (NaN/inf) at sample index {idx[:10]}"
                             + (f" and {len(idx) - 10} more" if len(idx) > 10 else ""))
    return v


def forget_quality(tr_unlearned: ArrayLike, tr_retain: ArrayLike) -> float:
    """TOFU forget quality: two-sample KS-test p-value between the unlearned model's and the retain model's
    per-sample forget-set truth ratios."""
    a = check_finite(tr_unlearned, "forget_quality: tr_unlearned")
    b = check_finite(tr_retain, "forget_quality: tr_retain")
    from scipy import stats  # scipy, rouge_score and sklearn load where used (a warm notebook needs none)

    return float(stats.ks_2samp(a, b).pvalue)


def model_utility(values: Mapping[str, float] | Sequence[float]) -> float:
    """TOFU model utility: harmonic mean of the 9 numbers of `MU_NAMES` (a dict with exactly those names, or a
    sequence in that order); 0 when any is 0."""
    if isinstance(values, Mapping):
        missing, extra = [n for n in MU_NAMES if n not in values], sorted(set(values) - set(MU_NAMES))
        if missing or extra:
            raise PaperlibError(f"model_utility needs exactly {MU_NAMES}; missing {missing}, unexpected {extra}")
        values = [values[n] for n in MU_NAMES]
    v = np.asarray(values, dtype=float)
    if v.shape != (len(MU_NAMES),) or np.isnan(v).any() or (v < 0).any():
        raise PaperlibError(f"model_utility needs 9 non-negative numbers ({', '.join(MU_NAMES)}); got {values}")
    if (v == 0).any():
        return 0.0
    from scipy import stats

    return float(stats.hmean(v))


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)


def rouge_scores(prediction: str, target: str) -> dict[str, float]:
    """rouge1 recall, rougeL F1 and rougeL recall of a generation against its reference (rouge_score with
    Porter stemming), the fields open-unlearning logs per sample."""
    s = _scorer().score(target, prediction)
    return {"rouge1_recall": s["rouge1"].recall, "rougeL_f1": s["rougeL"].fmeasure,
            "rougeL_recall": s["rougeL"].recall}


def rouge_l_recall(prediction: str, target: str) -> float:
    """ROUGE-L recall of `prediction` against `target` (TOFU's ROUGE)."""
    return rouge_scores(prediction, target)["rougeL_recall"]


def normalised_prob(p_true: ArrayLike, p_wrong: ArrayLike, eps: float = EPS) -> np.ndarray:
    """p_true [n] / (p_true + sum_j p_wrong[:, j] + eps): the true answer's share of the options' probs."""
    p, w = np.asarray(p_true, dtype=float), np.asarray(p_wrong, dtype=float)
    if p.ndim != 1 or w.ndim != 2 or len(p) != len(w):
        raise PaperlibError(f"normalised_prob needs p_true [n] and p_wrong [n, m]; got {p.shape}, {w.shape}")
    check_finite(p, "normalised_prob: p_true")
    check_finite(w, "normalised_prob: p_wrong")
    return p / (p + w.sum(axis=1) + eps)


def mia_auc(forget_scores: ArrayLike, holdout_scores: ArrayLike) -> float:
    """ROC AUC of a membership-inference attack: forget = label 0, holdout = label 1, score loss-like (so
    AUC near 1 means the forget set is still told apart, i.e. memorised)."""
    f = check_finite(np.ravel(forget_scores), "mia_auc: forget_scores")
    h = check_finite(np.ravel(holdout_scores), "mia_auc: holdout_scores")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.r_[np.zeros(f.size), np.ones(h.size)], np.r_[f, h]))


def privleak(auc: float, auc_ref: float, eps: float = EPS) -> float:
    """MUSE PrivLeak: ((1 - auc) - (1 - auc_ref)) / ((1 - auc_ref) + eps) * 100; 0 = like the retain model."""
    return ((1 - auc) - (1 - auc_ref)) / ((1 - auc_ref) + eps) * 100


_WORD = re.compile(r"\w+|[^\w\s]")


def _ngram_entropy(tokens: list[str], n: int) -> float:
    counts = np.array(list(Counter(zip(*(tokens[i:] for i in range(n)), strict=False)).values()), dtype=float)
    f = counts / max(counts.sum(), 1.0)
    return float(-(f * np.log2(f)).sum())


def fluency_entropy(texts: Sequence[str] | str) -> float:
    """Model-free fluency (RWKU / ROME `n_gram_entropy`): per text, mean(2/3 * H2, 4/3 * H3) with Hn the
    entropy in bits of its word n-gram frequency distribution, averaged over texts. Degenerate repetition
    scores low (a text repeating one token scores 0). Words are `\\w+` runs and single punctuation marks,
    standing in for nltk.word_tokenize (which needs punkt data); texts shorter than n words give Hn = 0."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise PaperlibError("fluency_entropy needs at least one text")
    weighted = [[w * _ngram_entropy(_WORD.findall(t), n) for n, w in ((2, 2 / 3), (3, 4 / 3))] for t in texts]
    return float(np.mean([np.mean(h) for h in weighted]))


# ------------------------------------------------------------------------------------------------------------
# open-unlearning TOFU_EVAL.json logs


def validate_tofu_log(log: object, name: str = "eval_log") -> None:
    """Raise ValueError unless `log` has open-unlearning's TOFU_EVAL.json schema: metric -> dict holding
    `agg_value` and/or per-sample `value_by_index` (MIA metrics: `forget` / `holdout` dicts with one)."""
    hint = f"{name} is not an open-unlearning TOFU_EVAL.json log (metric -> {{agg_value, value_by_index}})"
    if not isinstance(log, Mapping) or not log:
        kind = f"{'an empty ' if isinstance(log, Mapping) else 'a '}{type(log).__name__}"
        raise PaperlibError(f"{hint}: got {kind}")
    for metric, entry in log.items():
        if not isinstance(entry, Mapping) or not {"agg_value", "value_by_index", "forget"} & set(entry):
            raise PaperlibError(f"{hint}: {metric!r} maps to {type(entry).__name__} {str(entry)[:40]!r}, not to "
                             "a dict with 'agg_value' or 'value_by_index' (is it a TOFU_SUMMARY.json?)")
        parts = [entry] if "value_by_index" in entry else []
        if "forget" in entry and not parts:  # MIA entries hold forget / holdout parts
            parts = [entry.get("forget"), entry.get("holdout")]
        for part in parts:
            rows = part.get("value_by_index") if isinstance(part, Mapping) else None
            if not isinstance(rows, Mapping) or not all(isinstance(r, Mapping | None) for r in rows.values()):
                raise PaperlibError(f"{hint}: {metric!r} has no per-sample dict 'value_by_index'")


def _column(log: Mapping, metric: str, field: str, name: str,
            part: str | None = None) -> tuple[list[str], np.ndarray]:
    """(sample indices, values [n] or [n, m]) of one per-sample field; raises on missing or NaN values."""
    label = f"{name}[{metric!r}]" + (f"[{part!r}]" if part else "")
    entry = log.get(metric)
    entry = entry.get(part) if part and isinstance(entry, Mapping) else entry
    if not isinstance(entry, Mapping) or "value_by_index" not in entry:
        raise PaperlibError(f"{label}: missing, or without the per-sample values the aggregates need")
    rows = entry["value_by_index"]
    if not rows:
        raise PaperlibError(f"{label}: no samples")
    values = []
    for i, row in rows.items():
        if row is None or row.get(field) is None:
            raise PaperlibError(f"{label}: sample {i} has no {field!r} value")
        values.append(row[field])
    try:
        arr = np.asarray(values, dtype=float)
    except ValueError:
        raise PaperlibError(f"{label}: {field!r} holds lists of different lengths across samples") from None
    bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
    if bad.any():
        nan = [i for i, b in zip(rows, bad, strict=True) if b]
        raise NonFiniteError(f"{label}: {field!r} is NaN or inf for samples {nan[:10]}")
    return [str(i) for i in rows], arr


def _paired(log: Mapping, a: str, b: str, field: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values of `field` of metrics a and b, aligned on their sample indices, which must be the same."""
    ia, va = _column(log, a, field, name)
    ib, vb = _column(log, b, field, name)
    if set(ia) != set(ib):
        only_a, only_b = sorted(set(ia) - set(ib)), sorted(set(ib) - set(ia))
        raise PaperlibError(f"{name}: {a} and {b} have different sample indices (only in {a}: {only_a[:10]}, "
                         f"only in {b}: {only_b[:10]}); they must pair sample by sample")
    pos = {i: k for k, i in enumerate(ib)}
    return va, vb[[pos[i] for i in ia]]


def _truth_ratios(log: Mapping, metric: str, name: str) -> np.ndarray:
    correct, perturbed = TRUTH_RATIOS[metric]
    return truth_ratio(*_paired(log, correct, perturbed, "avg_loss", name))


def _check_same_split(eval_log: Mapping, retain_log: Mapping) -> None:
    """The reference log must hold the same forget samples (indices, and ROUGE ground truths when logged)."""
    for metric in sorted(m for m in eval_log.keys() & retain_log.keys() if m.startswith("forget_")):
        a, b = eval_log[metric].get("value_by_index"), retain_log[metric].get("value_by_index")
        if a is None or b is None:
            continue
        ia, ib = {str(i) for i in a}, {str(i) for i in b}
        if ia != ib:
            raise PaperlibError(f"retain_log is for another forget split: {metric} has {len(ib)} samples there "
                             f"and {len(ia)} in eval_log (indices only in eval_log: {sorted(ia - ib)[:10]}, "
                             f"only in retain_log: {sorted(ib - ia)[:10]})")
        if metric == "forget_Q_A_ROUGE":
            gt = {str(i): r and r.get("ground_truth") for i, r in b.items()}
            diff = [i for i, r in a.items() if r and r.get("ground_truth") != gt[str(i)]]
            if diff:
                raise PaperlibError(f"retain_log is for another forget split: forget_Q_A_ROUGE ground truths "
                                 f"differ from eval_log's at samples {diff[:10]}")


def mia_aggregates(log: Mapping, metric: str) -> dict[str, float]:
    """{"auc", "forget", "holdout"} of a MIA entry (e.g. "mia_min_k") of an open-unlearning log, recomputed
    from its per-sample forget / holdout scores: the attack AUC and the mean score of each set."""
    validate_tofu_log(log, "log")
    _, f = _column(log, metric, "score", "log", "forget")
    _, h = _column(log, metric, "score", "log", "holdout")
    dtype = np.float32 if metric in FLOAT32_MIA else np.float64
    return {"auc": mia_auc(f, h), "forget": float(np.mean(f.astype(dtype))),
            "holdout": float(np.mean(h.astype(dtype)))}


def summarize_tofu(eval_log: Mapping, retain_log: Mapping | None = None) -> dict[str, float]:
    """{metric: value} for every aggregate of an open-unlearning TOFU_EVAL.json (a superset of its
    TOFU_SUMMARY.json), recomputed from the per-sample values, never copied from `agg_value`:
    truth ratios from PARA / PERT avg_loss, normalised probs from Q_A_Prob / PERT probs, MIA AUCs from
    forget / holdout scores, other metrics as the mean of their per-sample prob / rougeL_recall / score
    (e.g. exact_memorization, extraction_strength, fluency); then model_utility, privleak (MinK AUC against
    `retain_log`'s, or 0.5 with a warning) and forget_quality (KS test against `retain_log`'s forget truth
    ratios; absent, with a warning, without `retain_log`). `retain_log` must cover the same forget split."""
    validate_tofu_log(eval_log, "eval_log")
    if retain_log is not None:
        validate_tofu_log(retain_log, "retain_log")
        _check_same_split(eval_log, retain_log)
    out: dict[str, float] = {}
    for metric, entry in eval_log.items():
        if metric in TRUTH_RATIOS:
            tr = _truth_ratios(eval_log, metric, "eval_log")
            agg = np.minimum(tr, 1 / (tr + EPS)) if metric == "forget_truth_ratio" else np.maximum(0, 1 - tr)
            out[metric] = float(np.mean(agg))
        elif metric in NORMALISED:
            correct, wrong = NORMALISED[metric]
            probs = _paired(eval_log, correct, wrong, "prob", "eval_log")
            out[metric] = float(np.mean(normalised_prob(*probs)))
        elif "forget" in entry:
            out[metric] = mia_aggregates(eval_log, metric)["auc"]
        elif "value_by_index" in entry:
            fields = {f for row in entry["value_by_index"].values() if row for f in row}
            field = next((f for f in MEAN_FIELDS if f in fields), None)
            if field is None:
                raise PaperlibError(f"eval_log[{metric!r}]: no per-sample field of {MEAN_FIELDS} to average")
            values = _column(eval_log, metric, field, "eval_log")[1]
            out[metric] = float(np.mean(values.reshape(len(values), -1).mean(axis=1)))
        elif metric not in DERIVED:
            raise PaperlibError(f"eval_log[{metric!r}] has no per-sample values to recompute it from")
    if "model_utility" in eval_log or all(n in out for n in MU_NAMES):
        out["model_utility"] = model_utility({n: out[n] for n in MU_NAMES if n in out})
    if "mia_min_k" in out:
        ref = None
        if retain_log is not None and "mia_min_k" in retain_log:
            ref = mia_aggregates(retain_log, "mia_min_k")["auc"]
        else:
            warnings.warn("privleak: no reference MinK AUC (no retain_log, or it lacks mia_min_k), so "
                          "AUC_ref = 0.5 as in open-unlearning: this privleak is NOT relative to a retain "
                          "model", stacklevel=2)
        out["privleak"] = privleak(out["mia_min_k"], 0.5 if ref is None else ref)
    elif "privleak" in eval_log:
        raise PaperlibError("eval_log has privleak but no mia_min_k to recompute it from")
    if retain_log is not None:
        out["forget_quality"] = forget_quality(_truth_ratios(eval_log, "forget_truth_ratio", "eval_log"),
                                               _truth_ratios(retain_log, "forget_truth_ratio", "retain_log"))
    elif "forget_quality" in eval_log or "forget_truth_ratio" in eval_log:
        warnings.warn("forget_quality left out: it needs the retain model's evaluation log (retain_log) for "
                      "the reference forget truth ratios", stacklevel=2)
    return dict(sorted(out.items()))


def palu_columns(summary: Mapping[str, float]) -> dict[str, float]:
    """The PALU paper's table columns from a `summarize_tofu` result: FQ (forget_quality; NaN without a
    reference log), MU, Fluency (the summary's `fluency`, e.g. mean `fluency_entropy` of the forget-set
    generations, NaN if absent; `fluency_classifier`, the paper's gibberish-classifier score, when present:
    say which one a table shows), EM (forget-set exact memorisation), F-TR, Ra-TR, R-TR, Rw-TR (the four
    truth-ratio aggregates)."""
    optional = ("FQ", "Fluency")
    missing = [k for c, k in PALU_COLUMNS.items() if c not in optional and k not in summary]
    if missing:
        raise PaperlibError(f"palu_columns: summary lacks {missing}")
    out = {c: float(summary.get(k, math.nan)) for c, k in PALU_COLUMNS.items()}
    if "fluency_classifier" in summary:  # the paper's own measure, when a local classifier was given
        out["Fluency"] = float(summary["fluency_classifier"])
    return out


# ----------------------------------------------------------------------------------------- loc-unlearn
AUES_CLOSE = ("drop", "line")


def upper_envelope(fs: ArrayLike, rs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The (FS, RS) points no other point beats on both (FS >= and RS >=, one of them >), by ascending FS
    (so RS descends): the best retain strength reached at each level of forgetting."""
    fs, rs = np.asarray(fs, dtype=float), np.asarray(rs, dtype=float)
    order = np.lexsort((-rs, -fs))  # highest FS first; at equal FS the highest RS
    keep, best = [], -np.inf
    for i in order:
        if rs[i] > best:
            keep.append(i)
            best = rs[i]
    keep = keep[::-1]
    return fs[keep], rs[keep]


def aues(fs: ArrayLike, rs: ArrayLike, close: str = "drop") -> float:
    """Area under the (Forget Strength, Retain Strength) curve (loc-unlearn's AUES; higher = better trade-off).

    `fs`, `rs`: every point of the curve, pooled (the initial model and each evaluated epoch of every run of one
    method / mask, all learning rates). Choices, as the published definition is not confirmed: the curve is the
    points' upper envelope (`upper_envelope`: a run that is beaten at every FS adds nothing, so pooling over
    learning rates is the envelope of all their points), joined by straight segments (trapezoid rule); from
    FS = 0 to the envelope's lowest FS it is flat at that point's RS; beyond the highest FS reached it is
    closed by `close`: "drop" (default) = RS falls to 0 there (no credit for forgetting never reached),
    "line" = a straight segment to (FS, RS) = (1, 0). FS and RS must lie in [0, 1].
    """
    if close not in AUES_CLOSE:
        raise PaperlibError(f"aues close={close!r}; allowed: {', '.join(AUES_CLOSE)}")
    fs, rs = np.asarray(fs, dtype=float).ravel(), np.asarray(rs, dtype=float).ravel()
    if fs.shape != rs.shape or not len(fs):
        raise PaperlibError(f"aues: {len(fs)} FS and {len(rs)} RS values; allowed: as many of each, at least one")
    check_finite(fs, "aues FS")
    check_finite(rs, "aues RS")
    if fs.min() < 0 or fs.max() > 1 or rs.min() < 0 or rs.max() > 1:
        raise PaperlibError("aues: FS and RS must lie in [0, 1] (they are shares of extraction strength)")
    x, y = upper_envelope(fs, rs)
    area = x[0] * y[0] + float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    if close == "line":
        area += (1 - x[-1]) * y[-1] / 2
    return float(area)
