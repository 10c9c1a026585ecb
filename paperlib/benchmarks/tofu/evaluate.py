"""Run a causal LM over TOFU's evaluation sets and write open-unlearning-schema logs.

Every per-sample number comes from one batched teacher-forced pass per (question, answer) list
(`teacher_forced`) or one batched greedy generation per question list (`generate`); aggregates come
from `metrics.summarize_tofu`, so our logs and open-unlearning's published ones are read the same way.
"""

from __future__ import annotations

import contextlib
import json
import warnings
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paperlib.benchmarks import scoring as scores
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import metrics
from paperlib.engine import encoding, rawtext
from paperlib.engine.config import EvalConfig
from paperlib.engine.constants import IGNORE
from paperlib.engine.progress import bar as progress_bar

MIA_ATTACKS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")


def _split_head(model) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """(decoder, output head) when the model's logits are exactly head(decoder(...).last_hidden_state) (HF causal
    LMs with an `lm_head`, no logit scaling or soft-capping), else None (then the full logits are used)."""
    cfg = getattr(model, "config", None)
    head = getattr(model, "lm_head", None)
    if cfg is None or not isinstance(head, torch.nn.Linear) or not hasattr(model, "get_decoder"):
        return None
    if getattr(cfg, "final_logit_softcapping", None) or getattr(cfg, "logit_scale", None):
        return None
    return model.get_decoder(), head


def _answer_window(x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop shifted per-position rows x [B, T, ...] and labels [B, T] to each row's span from its first to its
    last answer position, left-aligned and padded with -100 labels: [B, A, ...], [B, A] (A = widest span)."""
    keep = labels != IGNORE
    t = labels.shape[1]
    ar = torch.arange(t, device=labels.device)
    first = torch.where(keep, ar, t).min(-1).values
    last = torch.where(keep, ar, -1).max(-1).values
    width = (last - first + 1).clamp_min(0)
    a = max(1, int(width.max()))
    steps = torch.arange(a, device=labels.device)
    pos = (first.clamp(max=t - 1)[:, None] + steps).clamp(max=t - 1)
    lab = labels.gather(1, pos).masked_fill(steps >= width[:, None], IGNORE)
    rows = x.gather(1, pos.view(*pos.shape, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:]))
    return rows, lab


def _answer_logits(model, batch: dict, device, split) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted logits (at least float32) and labels at the answer positions only (the output head runs on those rows;
    every score reads answer positions only, so the values equal the full-logits ones up to rounding)."""
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    labels = batch["labels"].to(device)[:, 1:]
    if split is None:
        logits, labels = _answer_window(model(input_ids=ids, attention_mask=mask).logits[:, :-1], labels)
        return scores._float(logits), labels
    decoder, head = split
    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    hidden, labels = _answer_window(hidden, labels)
    return scores._float(head(hidden)), labels


def _order(lengths: Sequence[int]) -> list[int]:
    """Indices sorted by length (stable): batches of similar lengths, little padding."""
    return sorted(range(len(lengths)), key=lambda i: lengths[i])


@torch.no_grad()
def score_encoded(model, enc: Sequence[dict], pad_id: int, eos_id: int, batch_size: int = 32, full: bool = False,
                  desc: str = "") -> dict[str, np.ndarray]:
    """`teacher_forced` on encoded samples (`encoding.encode`), in the input order."""
    device = next(model.parameters()).device
    split = _split_head(model)
    order = _order([len(e["input_ids"]) for e in enc])
    out: dict[str, list] = {}
    for i in progress_bar(range(0, len(enc), batch_size), desc or "teacher-forced", bool(desc), leave=False):
        batch = encoding.collate([enc[j] for j in order[i:i + batch_size]], pad_id)
        logits, labels = _answer_logits(model, batch, device, split)
        if full:
            parts = scores.all_scores(logits, labels, eos_id=eos_id)
        else:
            parts = {"avg_loss": scores.avg_loss(logits, labels)}
        for k, v in parts.items():
            out.setdefault(k, []).append(v.cpu())
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return {k: torch.cat(v).double()[back].numpy() for k, v in out.items()}


@torch.no_grad()
def score_texts(model, tokenizer, texts: Sequence[str], max_length: int, score_fn, batch_size: int = 32
                ) -> dict[str, np.ndarray]:
    """Per-text scores of raw texts (MUSE, RWKU): each text read as `rawtext.tokenize` (BOS first), its first
    `max_length` tokens, every token after the first a target; `score_fn(logits, labels, texts)` maps one
    batch's shifted logits [B, T, V] and labels [B, T] (IGNORE = padding) to {name: [B] tensor}."""
    device = next(model.parameters()).device
    cols: dict[str, list] = {}
    for i in range(0, len(texts), batch_size):
        chunk = texts[i:i + batch_size]
        ids = [rawtext.tokenize(tokenizer, t)[0][:max_length] for t in chunk]
        batch = encoding.pad(ids, tokenizer.pad_token_id).to(device)
        mask = encoding.pad([[1] * len(x) for x in ids], 0).to(device)
        labels = encoding.pad(ids, IGNORE).to(device)[:, 1:]
        logits = model(input_ids=batch, attention_mask=mask).logits[:, :-1]
        for k, v in score_fn(logits, labels, chunk).items():
            cols.setdefault(k, []).append(v.double().cpu())
    return {k: torch.cat(v).numpy() for k, v in cols.items()}


_ENCODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def encode_pairs(tokenizer, template: str, pairs: Sequence[tuple[str, str]], max_length: int) -> list[dict]:
    """`encoding.encode` of every (question, answer) pair, memoised per tokenizer object (and its length) for the
    life of the tokenizer: a run evaluates after every epoch on the same pairs. The dicts are shared: read only."""
    memo = _ENCODED.setdefault(tokenizer, {})
    size = len(tokenizer)
    out = []
    for q, a in pairs:
        key = (size, template, max_length, q, a)
        if key not in memo:
            memo[key] = encoding.encode(tokenizer, template, q, a, max_length=max_length)
        out.append(memo[key])
    return out


def teacher_forced(model, tokenizer, template: str, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                   max_length: int = 512, full: bool = False, desc: str = "") -> dict[str, np.ndarray]:
    """Per-sample avg_loss (always) and, with `full`, exact memorisation, extraction strength, MinK and
    MinK++ (open-unlearning's definitions), from one batched forward pass. Batches group sequences of similar
    length (less padding) and the output head runs on the answer positions only; results come back in the
    order of `pairs` and equal a plain padded pass up to float rounding."""
    enc = encode_pairs(tokenizer, template, pairs, max_length)
    return score_encoded(model, enc, tokenizer.pad_token_id, tokenizer.eos_token_id, batch_size, full, desc)


@torch.no_grad()
def generate(model, tokenizer, template: str, questions: Sequence[str], max_new_tokens: int = 200,
             batch_size: int = 32, desc: str = "") -> list[str]:
    """Greedy answers (left padding, KV cache, batched; batches group prompts of similar length), cut at EOS
    and stripped, in the order of `questions`."""
    prompts = [encoding.encode_prompt(tokenizer, template, q) for q in questions]
    return [t.strip() for t in generate_ids(model, tokenizer, prompts, max_new_tokens, batch_size, desc)]


@torch.no_grad()
def generate_ids(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int = 32,
                 desc: str = "", eos_token_id: int | list[int] | None = None) -> list[str]:
    """Greedy continuations of token-id prompts (left padding, KV cache, batched; batches group prompts of
    similar length), stopped at `eos_token_id` (default the tokenizer's EOS), decoded without special tokens,
    in the order of `prompts`."""
    device = next(model.parameters()).device
    order = _order([len(p) for p in prompts])
    texts: list[str] = [""] * len(prompts)
    for i in progress_bar(range(0, len(prompts), batch_size), desc or "generate", bool(desc), leave=False):
        chunk = [prompts[j] for j in order[i:i + batch_size]]
        ids = encoding.pad(chunk, tokenizer.pad_token_id, left=True).to(device)
        mask = encoding.pad([[1] * len(p) for p in chunk], 0, left=True).to(device)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             use_cache=True, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id if eos_token_id is None else eos_token_id)
        decoded = tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)
        for j, t in zip(order[i:i + batch_size], decoded):
            texts[j] = t
    return texts


def _by_index(**columns) -> dict[str, dict]:
    """{"0": {name: value, ...}, ...} from equally long columns."""
    n = len(next(iter(columns.values())))
    return {str(i): {k: _plain(v[i]) for k, v in columns.items()} for i in range(n)}


def _prob_entry(avg_loss: np.ndarray) -> dict:
    return {"value_by_index": _by_index(prob=np.exp(-avg_loss), avg_loss=avg_loss)}


def _plain(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x.item() if hasattr(x, "item") else x


class TofuEvaluator:
    """Evaluates one model on a TOFU-shaped benchmark's sets for one forget split."""

    def __init__(self, model, tokenizer, template: str, source: str, forget: str, cfg: EvalConfig,
                 progress: bool = True) -> None:
        tofu.check_split(forget, tofu.FORGET_SPLITS)
        encoding.check_template(template, tokenizer)
        self.model, self.tok, self.template, self.cfg, self.progress = model, tokenizer, template, cfg, progress
        self.forget = forget
        load = lambda split: tofu.load_split(source, split)  # noqa: E731
        self.sets = {"forget": load(forget), "forget_pert": load(f"{forget}_perturbed"),
                     "retain": load("retain_perturbed"), "holdout": load(tofu.holdout_of(forget)),
                     "ra": load("real_authors_perturbed"), "wf": load("world_facts_perturbed")}

    def _tf_many(self, lists: dict[str, list[tuple[str, str]]], full: bool = False, desc: str = "") -> dict:
        """`teacher_forced` over several (question, answer) lists in ONE batched pass (sorted by length across
        the lists): {list name: {score: per-sample array}}."""
        pairs = [qa for qas in lists.values() for qa in qas]
        res = teacher_forced(self.model, self.tok, self.template, pairs, self.cfg.batch_size, self.cfg.max_length,
                             full=full, desc=desc if self.progress else "")
        out, at = {}, 0
        for name, qas in lists.items():
            out[name] = {k: v[at:at + len(qas)] for k, v in res.items()}
            at += len(qas)
        return out

    @staticmethod
    def _pert_pairs(ds, desc: str) -> tuple[list[tuple[str, str]], int]:
        """Every (question, perturbed answer) pair of a set, row by row, and the number per row."""
        m = len(ds[0]["perturbed_answer"])
        if any(len(p) != m for p in ds["perturbed_answer"]):
            raise ValueError(f"{desc}: every row needs the same number of perturbed answers ({m})")
        return [(q, p) for q, ps in zip(ds["question"], ds["perturbed_answer"]) for p in ps], m

    def _rouge(self, ds, gens: Sequence[str]) -> dict:
        rows = {}
        for i, (q, a, g) in enumerate(zip(ds["question"], ds["answer"], gens)):
            rows[str(i)] = {**metrics.rouge_scores(g, a), "input": encoding.render_prompt(self.template, self.tok, q),
                            "ground_truth": a, "generation": g}
        return {"value_by_index": rows}

    @staticmethod
    def _prob_block(prefix: str, ds, main: np.ndarray, pert: np.ndarray, para: np.ndarray | None) -> dict:
        """Prob, paraphrase/perturbed probs and truth ratio of one set (open-unlearning's metric names).
        Sets with a paraphrased answer (forget, retain) use it as the truth ratio's correct answer; the
        others (real authors, world facts) use the answer itself and add the normalised probability."""
        log = {f"{prefix}_Q_A_Prob": _prob_entry(main), f"{prefix}_Q_A_PERT_Prob": _prob_entry(pert)}
        if para is not None:
            correct = para
            log[f"{prefix}_Q_A_PARA_Prob"] = _prob_entry(correct)
        else:
            correct = main
            norm = metrics.normalised_prob(np.exp(-main), np.exp(-pert))
            log[f"{prefix}_Q_A_Prob_normalised"] = {"value_by_index": _by_index(prob=norm)}
        name = "forget_truth_ratio" if prefix == "forget" else f"{prefix}_Truth_Ratio"
        log[name] = {"value_by_index": _by_index(score=metrics.truth_ratio(correct, pert))}
        return log

    def run(self) -> dict:
        """The TOFU_EVAL.json dict (per-sample values; aggregates are filled by `fill_aggregates`).

        Every sequence is read once: one teacher-forced pass with the MIA scores over the forget, holdout and
        retain answers, one pass (avg_loss) over every other answer / paraphrase / perturbed answer of every set, one
        greedy generation over the questions of the four ROUGE sets; each pass batches by length across sets.
        The retain answers join the first pass: their extraction strength is `retain_extraction_strength`
        (loc-unlearn's Retain Strength), beside the forget set's `extraction_strength`."""
        s = self.sets
        qa = lambda ds, col: list(zip(ds["question"], ds[col]))  # noqa: E731
        mia = self._tf_many({"forget": qa(s["forget"], "answer"), "holdout": qa(s["holdout"], "answer"),
                             "retain": qa(s["retain"], "answer")}, full=True, desc="forget/holdout/retain answers")
        retain = mia.pop("retain")
        blocks = (("forget", "forget_pert", "forget"), ("retain", "retain", "retain"), ("ra", "ra", "real authors"),
                  ("wf", "wf", "world facts"))
        lists, widths = {}, {}
        for prefix, key, desc in blocks:
            ds = s[key]
            if prefix not in ("forget", "retain"):
                lists[f"{prefix}.answer"] = qa(ds, "answer")
            if "paraphrased_answer" in ds.column_names:
                lists[f"{prefix}.para"] = qa(ds, "paraphrased_answer")
            lists[f"{prefix}.pert"], widths[prefix] = self._pert_pairs(ds, f"{desc} perturbed")
        tf = self._tf_many(lists, desc="answers, paraphrases, perturbed")
        rouge_sets = (("forget", s["forget"]), ("retain", s["retain"]), ("ra", s["ra"]), ("wf", s["wf"]))
        questions = [q for _, ds in rouge_sets for q in ds["question"]]
        gens = generate(self.model, self.tok, self.template, questions, self.cfg.max_new_tokens, self.cfg.batch_size,
                        desc="generate" if self.progress else "")

        for part, ds in (("forget", s["forget"]), ("holdout", s["holdout"])):
            mia[part]["zlib"] = scores.zlib_score(torch.from_numpy(mia[part]["avg_loss"]), ds["answer"]).numpy()
        log = {attack: {part: {"value_by_index": _by_index(score=mia[part][key])} for part in mia}
               for attack, key in zip(MIA_ATTACKS, ("avg_loss", "zlib", "min_k", "min_k_pp"))}
        forget = mia["forget"]
        log["exact_memorization"] = {"value_by_index": _by_index(score=forget["em"])}
        log["extraction_strength"] = {"value_by_index": _by_index(score=forget["es"])}
        log["retain_extraction_strength"] = {"value_by_index": _by_index(score=retain["es"])}
        for prefix, key, _ in blocks:
            main = {"forget": forget, "retain": retain}.get(prefix, tf.get(f"{prefix}.answer"))["avg_loss"]
            pert = tf[f"{prefix}.pert"]["avg_loss"].reshape(len(s[key]), widths[prefix])
            para = tf[f"{prefix}.para"]["avg_loss"] if f"{prefix}.para" in tf else None
            log |= self._prob_block(prefix, s[key], main, pert, para)
        at = 0
        for prefix, ds in rouge_sets:
            log[f"{prefix}_Q_A_ROUGE"] = self._rouge(ds, gens[at:at + len(ds)])
            at += len(ds)
        gens = [r["generation"] for r in log["forget_Q_A_ROUGE"]["value_by_index"].values()]
        log["fluency"] = {"value_by_index": _by_index(score=[metrics.fluency_entropy([g]) for g in gens])}
        if self.cfg.fluency_classifier:
            clean = classifier_fluency(gens, self.cfg.fluency_classifier, self.cfg.batch_size)
            log["fluency_classifier"] = {"value_by_index": _by_index(score=clean)}
        return log


def classifier_fluency(texts: Sequence[str], path: str, batch_size: int = 32) -> list[float]:
    """P(label "clean") of a local copy of the gibberish classifier the PALU paper scores fluency with
    (`madhurjindal/autonlp-Gibberish-Detector-492513457`, labels clean / mild gibberish / noise / word salad)."""
    from transformers import pipeline as hf_pipeline

    from paperlib.engine.models import _resolve

    clf = hf_pipeline("text-classification", model=_resolve(path), top_k=None, device=-1)
    if "clean" not in clf.model.config.label2id:
        raise ValueError(f"fluency classifier {path} has labels {list(clf.model.config.label2id)}; needs 'clean'")
    scores = clf([t or " " for t in texts], batch_size=batch_size, truncation=True)
    return [next(s["score"] for s in row if s["label"] == "clean") for row in scores]


def fill_aggregates(log: dict, summary: dict) -> dict:
    """Write each summary number into its metric's `agg_value` (open-unlearning's TOFU_EVAL layout)."""
    for name, value in summary.items():
        log.setdefault(name, {})["agg_value"] = value
    return log


def write_logs(log: dict, summary: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "TOFU_EVAL.json").write_text(json.dumps(fill_aggregates(log, summary), indent=1))
    (out / "TOFU_SUMMARY.json").write_text(json.dumps(summary, indent=4))
    return out


# What an evaluation without a reference (retain-model) log warns about: forget_quality absent, privleak against
# AUC_ref = 0.5. Right for a user's model evaluated alone; noise where the library evaluates the reference itself.
NO_REFERENCE_WARNINGS = "no retain-model log given|privleak: no reference|forget_quality left out"


@contextlib.contextmanager
def reference_model_evaluation() -> Iterator[None]:
    """Around the library's own evaluation of a reference model (the retain model IS the reference, so it has no
    reference log by design): the `NO_REFERENCE_WARNINGS` are not shown (they reached notebooks as stderr
    cells). Every other warning still is."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=NO_REFERENCE_WARNINGS)
        yield


@dataclass(frozen=True)
class EvalOutput:
    """What `evaluate_tofu` shows and writes besides its result: progress bars and the log files."""

    out_dir: str | Path | None = None  # folder for TOFU_EVAL.json / TOFU_SUMMARY.json (None: nothing written)
    progress: bool = True  # show the evaluation's progress bars


def evaluate_tofu(model, tokenizer, template: str, source: str, forget: str, cfg: EvalConfig,
                  retain_log: dict | None = None, output: EvalOutput = EvalOutput()) -> tuple[dict, dict]:
    """Evaluate, summarise (forget_quality and privleak against `retain_log`) and optionally write logs.

    `output` (an `EvalOutput`): `output.progress` shows progress bars; with `output.out_dir` the logs
    (TOFU_EVAL.json, TOFU_SUMMARY.json) are written there (`write_logs`)."""
    log = TofuEvaluator(model, tokenizer, template, source, forget, cfg, output.progress).run()
    if retain_log is None:
        warnings.warn("no retain-model log given: forget_quality is absent and privleak uses AUC_ref = 0.5",
                      stacklevel=2)
    summary = metrics.summarize_tofu(log, retain_log)
    if output.out_dir is not None:
        write_logs(log, summary, output.out_dir)
    return log, summary


def load_log(path: str | Path) -> dict:
    """A TOFU_EVAL.json file (or the folder holding it)."""
    p = Path(path)
    p = p / "TOFU_EVAL.json" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no TOFU_EVAL.json at {p}")
    return json.loads(p.read_text())
