"""Automatic sensitive spans (issue 14 item 4): which answer tokens carry the forget set's knowledge, without
the GPT span files, so PALU runs on real TOFU (and on raw text such as MUSE) from two models alone.

Two annotators:
- "logprob": a token is sensitive when log p_original(token) - log p_retain(token) > `threshold` nats (the
  original model was trained on the forget set, the retain model never saw it: the gap is what was learned
  from the forget set alone). Flagged tokens are grouped into spans (`group_spans`): tokens at most `gap`
  unflagged tokens apart join one span, and every span is widened to whole words (a span never cuts a word)
  and stripped of surrounding spaces and punctuation.
- "capitalised": a model-free heuristic fixed in advance: runs of capitalised words and numbers (a sentence's
  first word only when a capitalised word or number follows it), joined across single spaces, hyphens,
  slashes and commas between numbers.

Protocol (no rule chosen on reported numbers): the log-prob rule's threshold and gap are chosen on mini
forget01's questions (the largest token-level F1 on the `THRESHOLDS` x `GAPS` grid, against forget01's exact
spans); precision and recall are reported on forget10's other questions (`REPORT_EXCLUDES`). The command line
(`paperlib spans`) uses a fixed rule (`DEFAULT_RULE`, 1 nat, gap 1) unless told otherwise.

Scores: token level (micro precision / recall / F1 over answer tokens: a token is sensitive when it overlaps a
span) and span level (a predicted span is correct when it overlaps a gold span; a gold span is found when a
predicted span overlaps it; `exact` = share of gold spans predicted with the same boundaries).
Output: the PALU/TPO span-file schema (`datasets.save_to_disk` folder with question, answer, target_words as a
JSON list of {"word", "start", "end"}, common_words as a list of JSON strings), read by `tofu.load_spans`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from paperlib.engine import encoding
from paperlib.engine.errors import PaperlibError
from paperlib.engine.rawtext import sensitive_flags

Span = tuple[int, int]
SOURCES = ("exact", "logprob", "capitalised")  # span sources of the study (exact = the benchmark's span file)
THRESHOLDS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # nats: the tuning grid of the log-prob rule
GAPS = (0, 1, 2)
TUNE_SPLIT, REPORT_SPLIT = "forget01", "forget10"  # rule chosen on forget01's questions, reported on the rest
REPORT_EXCLUDES = TUNE_SPLIT


@dataclass(frozen=True)
class SpanRule:
    """The log-prob annotator's rule: flag a token when log p_orig - log p_retain > threshold (nats); merge
    flagged tokens at most `gap` unflagged tokens apart; widen to whole words."""

    threshold: float = 1.0
    gap: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and np.isfinite(self.threshold)):
            raise PaperlibError(f"span threshold={self.threshold!r}; allowed: a finite number of nats")
        if isinstance(self.gap, bool) or not isinstance(self.gap, int) or self.gap < 0:
            raise PaperlibError(f"span gap={self.gap!r}; allowed: an integer >= 0 (unflagged tokens bridged)")


DEFAULT_RULE = SpanRule()


# ----------------------------------------------------------------------------------------- grouping (pure)
def _word_char(c: str) -> bool:
    return c.isalnum() or c in "-'"


def snap(text: str, start: int, end: int) -> Span | None:
    """A character range widened to whole words and stripped of non-word characters at both ends (None when
    nothing of a word is left). Word characters: letters, digits, hyphen, apostrophe."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    if start >= end:
        return None
    while start > 0 and _word_char(text[start - 1]):
        start -= 1
    while end < len(text) and _word_char(text[end]):
        end += 1
    while start < end and not text[start].isalnum():  # a word starting with "-" or "'" loses it
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return (start, end)


def merge(spans: Sequence[Span]) -> list[Span]:
    """Sorted, with overlapping or touching spans joined."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def group_spans(scores: Sequence[float], offsets: Sequence[Span], text: str, threshold: float,
                gap: int = 1) -> list[Span]:
    """Character spans of `text` from per-token scores: tokens with score > threshold (and a non-empty
    character range) are flagged; flagged tokens at most `gap` unflagged tokens apart form one group; each
    group's range is widened to whole words (`snap`); overlapping results are merged."""
    if len(scores) != len(offsets):
        raise ValueError(f"{len(scores)} scores for {len(offsets)} tokens")
    flagged = [i for i, (x, (s, e)) in enumerate(zip(scores, offsets)) if x > threshold and e > s]
    groups: list[list[int]] = []
    for i in flagged:
        if groups and i - groups[-1][-1] - 1 <= gap:
            groups[-1].append(i)
        else:
            groups.append([i])
    spans = [snap(text, offsets[g[0]][0], offsets[g[-1]][1]) for g in groups]
    return merge([s for s in spans if s is not None])


_CAP_WORD = re.compile(r"[A-Z][\w'-]*|\w*\d[\w/-]*")
_SENTENCE_END = re.compile(r"[.!?]\s+$")


def capitalised_spans(text: str) -> list[Span]:
    """Runs of capitalised words and numbers (see the module docstring); a sentence's first word counts only
    when the next word is also capitalised or a number."""
    words = [(m.start(), m.end()) for m in re.finditer(r"[\w'/-]+", text)]
    keep = []
    for k, (s, e) in enumerate(words):
        if not _CAP_WORD.fullmatch(text[s:e]):
            continue
        first = s == 0 or bool(_SENTENCE_END.search(text[:s]))  # a sentence's first word
        nxt = words[k + 1] if k + 1 < len(words) else None
        if first and not (nxt and _CAP_WORD.fullmatch(text[nxt[0]:nxt[1]]) and text[e:nxt[0]] in (" ", "-")):
            continue
        keep.append((s, e))
    joined: list[Span] = []
    for s, e in keep:
        sep = text[joined[-1][1]:s] if joined else None
        numbers = joined and any(c.isdigit() for c in text[joined[-1][0]:joined[-1][1]]) and \
            any(c.isdigit() for c in text[s:e])
        if sep in (" ", "-", "/") or (sep == ", " and numbers):
            joined[-1] = (joined[-1][0], e)
        else:
            joined.append((s, e))
    return [sp for sp in (snap(text, s, e) for s, e in joined) if sp is not None]


# ----------------------------------------------------------------------------------------- scoring (pure)
def score_spans(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]],
                offsets: Sequence[Sequence[Span]]) -> dict[str, float]:
    """Token-level precision / recall / F1 (micro, over the answer tokens `offsets[i]` of every row) and
    span-level precision / recall (overlap) and exact-boundary recall of `predicted` against `gold`."""
    tp = fp = fn = 0
    hit_pred = n_pred = found = exact = n_gold = 0
    for g, p, off in zip(gold, predicted, offsets, strict=True):
        gf, pf = np.array(sensitive_flags(off, g), bool), np.array(sensitive_flags(off, p), bool)
        tp += int((gf & pf).sum())
        fp += int((~gf & pf).sum())
        fn += int((gf & ~pf).sum())
        n_pred += len(p)
        hit_pred += sum(any(a < d and c < b for c, d in g) for a, b in p)
        n_gold += len(g)
        found += sum(any(a < d and c < b for c, d in p) for a, b in g)
        exact += len(set(map(tuple, g)) & set(map(tuple, p)))

    def ratio(a: int, b: int) -> float:
        return a / b if b else float("nan")
    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {"token P": precision, "token R": recall, "token F1": f1, "span P": ratio(hit_pred, n_pred),
            "span R": ratio(found, n_gold), "span exact": ratio(exact, n_gold), "rows": len(gold),
            "gold spans": n_gold, "predicted spans": n_pred}


def tune_rule(scores: Sequence[Sequence[float]], offsets: Sequence[Sequence[Span]], answers: Sequence[str],
              gold: Sequence[Sequence[Span]], thresholds: Sequence[float] = THRESHOLDS,
              gaps: Sequence[int] = GAPS) -> tuple[SpanRule, float]:
    """The grid rule with the largest token-level F1 on these rows (ties: the first in grid order), and it."""
    best, best_f1 = None, -1.0
    for t in thresholds:
        for g in gaps:
            pred = [group_spans(s, o, a, t, g) for s, o, a in zip(scores, offsets, answers)]
            f1 = score_spans(gold, pred, offsets)["token F1"]
            if f1 > best_f1:
                best, best_f1 = SpanRule(float(t), int(g)), f1
    return best, best_f1


# ----------------------------------------------------------------------------------------- model scores
def answer_tokens(tokenizer, template: str, question: str, answer: str, max_length: int) -> tuple[dict, list[Span]]:
    """The encoded sample (`encoding.encode`) and, for each answer token (EOS excluded), its character
    range in `answer`."""
    sample = encoding.encode(tokenizer, template, question, answer, max_length=max_length)
    prompt = encoding.render_prompt(template, tokenizer, question)
    enc = tokenizer(prompt + answer, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length - 1)
    start = len(prompt)
    offsets = [(max(s - start, 0), e - start) for s, e in enc["offset_mapping"] if s >= start]
    return sample, offsets


@torch.no_grad()
def token_logprobs(model: torch.nn.Module, samples: Sequence[dict], pad_id: int, batch_size: int = 32
                   ) -> list[np.ndarray]:
    """log p(token) of every answer token (EOS excluded) of each encoded sample, teacher-forced."""
    from paperlib.methods.losses import shift

    out = []
    device = next(model.parameters()).device
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        batch = encoding.collate([{"input_ids": s["input_ids"], "labels": s["labels"]} for s in chunk], pad_id)
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits.float()
        z, y = shift(logits, batch["labels"].to(device))
        lp = torch.log_softmax(z, -1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        for row, labels in zip(lp, y):
            keep = (labels != -100).nonzero().squeeze(-1)
            out.append(row[keep].cpu().numpy()[:-1])  # the last answer target is EOS
    return out


def logprob_gaps(original: str, retain: str, template: str, rows: Sequence[dict], max_length: int,
                 batch_size: int = 32) -> tuple[list[np.ndarray], list[list[Span]]]:
    """Per row: log p_original - log p_retain of each answer token, and the tokens' character ranges."""
    from paperlib.engine.models import load_model, load_tokenizer

    tok = load_tokenizer(original)
    other = load_tokenizer(retain)
    if tok.get_vocab() != other.get_vocab():
        raise PaperlibError(f"the models {original} and {retain} have different tokenizers; allowed: an original "
                            "and a retain model sharing one tokenizer")
    encoded = [answer_tokens(tok, template, r["question"], r["answer"], max_length) for r in rows]
    samples = [s for s, _ in encoded]
    offsets = [o for _, o in encoded]
    gaps = None
    for sign, path in ((1.0, original), (-1.0, retain)):
        model = load_model(path)
        model.eval()
        lps = token_logprobs(model, samples, tok.pad_token_id, batch_size)
        gaps = [sign * lp for lp in lps] if gaps is None else [g + sign * lp for g, lp in zip(gaps, lps)]
        del model
    for g, o in zip(gaps, offsets):
        if len(g) != len(o):
            raise RuntimeError(f"{len(g)} scores for {len(o)} answer tokens (tokenisation mismatch)")
    return gaps, offsets


# ----------------------------------------------------------------------------------------- span files
def span_rows(rows: Sequence[dict], spans: Sequence[Sequence[Span]]) -> list[dict]:
    """Rows in the PALU/TPO span-file schema (question, answer, target_words, common_words)."""
    from paperlib.benchmarks.tofu.mini import common_words

    out = []
    for r, sp in zip(rows, spans, strict=True):
        words = [{"word": r["answer"][s:e], "start": s, "end": e} for s, e in sp]
        out.append({"question": r["question"], "answer": r["answer"], "target_words": json.dumps(words),
                    "common_words": common_words(r["answer"], words)})
    return out


def write_span_file(rows: Sequence[dict], spans: Sequence[Sequence[Span]], out: str | Path) -> Path:
    """Save a span file (`datasets.save_to_disk` folder, read back by `tofu.load_spans`)."""
    import datasets

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PaperlibError(f"--out {out} is a file; allowed: a new folder (the span file is a datasets folder)")
    datasets.Dataset.from_list(span_rows(rows, spans)).save_to_disk(str(out))
    return out


def annotate(rows: Sequence[dict], source: str, original: str = "", retain: str = "", template: str = "tiny",
             rule: SpanRule = DEFAULT_RULE, max_length: int = 512, batch_size: int = 32) -> list[list[Span]]:
    """Automatic spans of every row's answer by `source` ("logprob": needs the two models; "capitalised")."""
    if source == "capitalised":
        return [capitalised_spans(r["answer"]) for r in rows]
    if source == "logprob":
        gaps, offsets = logprob_gaps(original, retain, template, rows, max_length, batch_size)
        return [group_spans(g, o, r["answer"], rule.threshold, rule.gap) for g, o, r in zip(gaps, offsets, rows)]
    raise PaperlibError(f"span source {source!r}; allowed: logprob, capitalised")


def rule_record(rule: SpanRule, **extra) -> dict:
    return {**asdict(rule), **extra}


# ----------------------------------------------------------------------------------------- mini-TOFU study
def _benchmark_rows(profile, split: str, with_spans: bool = True) -> list[dict]:
    """Rows (question, answer[, spans]) of a split of the profile's benchmark, exact spans attached."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import pipeline

    ds = tofu.load_split(pipeline.benchmark_source(profile), split)
    if with_spans:
        ds = tofu.attach_spans(ds, tofu.load_spans(pipeline.spans_dir(profile, split)))
    return ds.to_list()


def study_config(profile, forget: str, source: str) -> dict:
    """What determines an automatic span file of the study (its cache key)."""
    from paperlib.benchmarks.tofu import pipeline

    if source not in SOURCES[1:]:
        raise PaperlibError(f"automatic span source {source!r}; allowed: {', '.join(SOURCES[1:])}")
    config = {"source": source, "forget": forget, "benchmark": profile.benchmark, "template": profile.model.template}
    if source == "logprob":
        config.update(original=pipeline.model_identity(pipeline.original_model(profile)),
                      retain=pipeline.model_identity(pipeline.retain_model(profile, forget)),
                      max_length=profile.eval.max_length, tune=TUNE_SPLIT, thresholds=THRESHOLDS, gaps=GAPS)
    return config


def auto_span_file(profile, forget: str = REPORT_SPLIT, source: str = "logprob") -> Path:
    """The automatic span file of `forget` (cached): "logprob" with the rule tuned on `TUNE_SPLIT`'s questions
    (original vs retain model of `forget`), or "capitalised". The folder holds `rule.json` (the rule, its
    tuning F1) and `spans/` (the span file, for `unlearn(..., overrides={"spans": ...})`)."""
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine.cache import cached_run

    config = study_config(profile, forget, source)

    def build(out: Path) -> None:
        rows = _benchmark_rows(profile, forget, with_spans=False)
        record: dict = {"source": source}
        if source == "logprob":
            original, retain = pipeline.original_model(profile), pipeline.retain_model(profile, forget)
            tune_rows = _benchmark_rows(profile, TUNE_SPLIT)
            gaps, offsets = logprob_gaps(original, retain, profile.model.template, tune_rows, profile.eval.max_length)
            rule, f1 = tune_rule(gaps, offsets, [r["answer"] for r in tune_rows], [r["spans"] for r in tune_rows])
            record.update(rule_record(rule, tuned_on=TUNE_SPLIT, tuning_token_f1=f1, tuning_rows=len(tune_rows)))
            spans = annotate(rows, "logprob", original, retain, profile.model.template, rule, profile.eval.max_length)
        else:
            spans = annotate(rows, "capitalised")
        write_span_file(rows, spans, out / "spans")
        (out / "rule.json").write_text(json.dumps(record, indent=1))

    return cached_run("spans", config, build)


def precision_table(profile, forget: str = REPORT_SPLIT, sources: Sequence[str] = SOURCES[1:]) -> pd.DataFrame:
    """Token- and span-level precision / recall of each automatic source against the exact spans, on the
    questions of `forget` outside `REPORT_EXCLUDES` (the log-prob rule was tuned on those)."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine.models import load_tokenizer

    excluded = {r["question"] for r in _benchmark_rows(profile, REPORT_EXCLUDES, with_spans=False)}
    rows = [r for r in _benchmark_rows(profile, forget) if r["question"] not in excluded]
    if not rows:
        raise PaperlibError(f"{forget} has no question outside {REPORT_EXCLUDES}; allowed: a larger forget split")
    tok = load_tokenizer(pipeline.original_model(profile))
    offsets = [answer_tokens(tok, profile.model.template, r["question"], r["answer"], profile.eval.max_length)[1]
               for r in rows]
    table = []
    for source in sources:
        folder = auto_span_file(profile, forget, source)
        predicted = tofu.load_spans(folder / "spans")
        record = json.loads((folder / "rule.json").read_text())
        scores = score_spans([r["spans"] for r in rows], [predicted[r["question"]]["spans"] for r in rows], offsets)
        rule = f"threshold {record['threshold']:g} nats, gap {record['gap']}" if source == "logprob" else "fixed"
        table.append({"source": source, "rule": rule, **scores})
    return pd.DataFrame(table)


# ----------------------------------------------------------------------------------------- command line
def check_out_folder(out: str | Path) -> Path:
    """Refuse an output that would overwrite something: a file or a non-empty folder."""
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise PaperlibError(f"--out {out} exists and is {'a file' if not path.is_dir() else 'not empty'}; allowed: "
                            "a new or empty folder (the span file is a datasets folder)")
    return path


def make_span_file(profile, forget: str, out: str | Path, source: str = "logprob", model: str | None = None,
                   retain_model: str | None = None, rule: SpanRule = DEFAULT_RULE) -> dict:
    """`paperlib spans`: annotate the answers of `forget` (the profile's benchmark) by `source` and write the
    span file to `out`; for "logprob" the models default to the profile's original model and the retain
    model of `forget`. Returns counts and, when the benchmark has its own span file, the scores against it."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine import checks

    out = check_out_folder(out)
    if source not in SOURCES[1:]:
        raise PaperlibError(f"--source {source!r}; allowed: {', '.join(SOURCES[1:])}")
    tofu.check_split(forget, tofu.FORGET_SPLITS)
    rows = _benchmark_rows(profile, forget, with_spans=False)
    if source == "logprob":
        for path in (model, retain_model):
            if path is not None:
                checks.check_model_dir(path)
        model = str(model or pipeline.original_model(profile))
        retain_model = str(retain_model or pipeline.retain_model(profile, forget))
    spans = annotate(rows, source, model or "", retain_model or "", profile.model.template, rule,
                     profile.eval.max_length)
    write_span_file(rows, spans, out)
    summary: dict = {"rows": len(rows), "spans": sum(map(len, spans)), "source": source,
                     **(rule_record(rule) if source == "logprob" else {})}
    try:
        exact = tofu.load_spans(pipeline.spans_dir(profile, forget))
    except (FileNotFoundError, ValueError):
        return summary
    from paperlib.engine.models import load_tokenizer

    tok = load_tokenizer(model or pipeline.original_model(profile))
    offsets = [answer_tokens(tok, profile.model.template, r["question"], r["answer"], profile.eval.max_length)[1]
               for r in rows]
    gold = [exact[r["question"]]["spans"] if r["question"] in exact else [] for r in rows]
    summary["against the benchmark's span file"] = score_spans(gold, spans, offsets)
    return summary
