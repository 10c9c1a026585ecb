"""Run a causal LM over TOFU's evaluation sets and write open-unlearning-schema logs.

Every per-sample number comes from one batched teacher-forced pass per (question, answer) list
(`teacher_forced`) or one batched greedy generation per question list (`generate`); aggregates come
from `metrics.summarize_tofu`, so our logs and open-unlearning's published ones are read the same way.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from paperlib import losses, metrics, scores
from paperlib.config import EvalConfig
from paperlib.data import encoding, tofu

MIA_ATTACKS = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus")


@torch.no_grad()
def teacher_forced(model, tokenizer, template: str, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                   max_length: int = 512, full: bool = False, desc: str = "") -> dict[str, np.ndarray]:
    """Per-sample avg_loss (always) and, with `full`, exact memorisation, extraction strength, MinK and
    MinK++ (open-unlearning's definitions), from one batched forward pass."""
    device = next(model.parameters()).device
    enc = [encoding.encode(tokenizer, template, q, a, max_length=max_length) for q, a in pairs]
    out: dict[str, list] = {}
    for i in tqdm(range(0, len(enc), batch_size), desc=desc or "teacher-forced", leave=False, disable=not desc):
        batch = encoding.collate(enc[i:i + batch_size], tokenizer.pad_token_id)
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits.float()
        logits, labels = losses.shift(logits, batch["labels"].to(device))
        parts = {"avg_loss": scores.avg_loss(logits, labels)}
        if full:
            eos = tokenizer.eos_token_id
            parts |= {"em": scores.exact_memorization(logits, labels, eos_id=eos),
                      "es": scores.extraction_strength(logits, labels, eos_id=eos),
                      "min_k": scores.min_k(logits, labels, eos_id=eos),
                      "min_k_pp": scores.min_k_plus_plus(logits, labels, eos_id=eos)}
        for k, v in parts.items():
            out.setdefault(k, []).append(v.cpu())
    return {k: torch.cat(v).double().numpy() for k, v in out.items()}


@torch.no_grad()
def generate(model, tokenizer, template: str, questions: Sequence[str], max_new_tokens: int = 200,
             batch_size: int = 32, desc: str = "") -> list[str]:
    """Greedy answers (left padding, KV cache, batched), cut at EOS and stripped."""
    device = next(model.parameters()).device
    prompts = [encoding.encode_prompt(tokenizer, template, q) for q in questions]
    texts = []
    for i in tqdm(range(0, len(prompts), batch_size), desc=desc or "generate", leave=False, disable=not desc):
        chunk = prompts[i:i + batch_size]
        ids = encoding.pad(chunk, tokenizer.pad_token_id, left=True).to(device)
        mask = encoding.pad([[1] * len(p) for p in chunk], 0, left=True).to(device)
        gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             use_cache=True, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        texts += [t.strip() for t in tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True)]
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

    def _tf(self, pairs, full: bool = False, desc: str = "") -> dict[str, np.ndarray]:
        return teacher_forced(self.model, self.tok, self.template, pairs, self.cfg.batch_size, self.cfg.max_length,
                              full=full, desc=desc if self.progress else "")

    def _pert(self, ds, desc: str) -> np.ndarray:
        """avg_loss [n, m] of every perturbed answer."""
        m = len(ds[0]["perturbed_answer"])
        if any(len(p) != m for p in ds["perturbed_answer"]):
            raise ValueError(f"{desc}: every row needs the same number of perturbed answers ({m})")
        pairs = [(q, p) for q, ps in zip(ds["question"], ds["perturbed_answer"]) for p in ps]
        return self._tf(pairs, desc=desc)["avg_loss"].reshape(len(ds), m)

    def _rouge(self, ds, desc: str) -> dict:
        gens = generate(self.model, self.tok, self.template, ds["question"], self.cfg.max_new_tokens,
                        self.cfg.batch_size, desc=desc if self.progress else "")
        rows = {}
        for i, (q, a, g) in enumerate(zip(ds["question"], ds["answer"], gens)):
            rows[str(i)] = {**metrics.rouge_scores(g, a), "input": encoding.render_prompt(self.template, self.tok, q),
                            "ground_truth": a, "generation": g}
        return {"value_by_index": rows}

    def _prob_block(self, prefix: str, ds, main: np.ndarray | None, desc: str) -> dict:
        """Prob, paraphrase/perturbed probs and truth ratio of one set (open-unlearning's metric names).
        Sets with a paraphrased answer (forget, retain) use it as the truth ratio's correct answer; the
        others (real authors, world facts) use the answer itself and add the normalised probability."""
        if main is None:
            main = self._tf(list(zip(ds["question"], ds["answer"])), desc=f"{desc} answers")["avg_loss"]
        log = {f"{prefix}_Q_A_Prob": _prob_entry(main)}
        pert = self._pert(ds, f"{desc} perturbed")
        log[f"{prefix}_Q_A_PERT_Prob"] = _prob_entry(pert)
        if "paraphrased_answer" in ds.column_names:
            correct = self._tf(list(zip(ds["question"], ds["paraphrased_answer"])), desc=f"{desc} paraphrased")
            correct = correct["avg_loss"]
            log[f"{prefix}_Q_A_PARA_Prob"] = _prob_entry(correct)
        else:
            correct = main
            norm = metrics.normalised_prob(np.exp(-main), np.exp(-pert))
            log[f"{prefix}_Q_A_Prob_normalised"] = {"value_by_index": _by_index(prob=norm)}
        name = "forget_truth_ratio" if prefix == "forget" else f"{prefix}_Truth_Ratio"
        log[name] = {"value_by_index": _by_index(score=metrics.truth_ratio(correct, pert))}
        return log

    def _mia(self) -> tuple[dict, dict[str, np.ndarray]]:
        """MIA scores of forget and holdout answers; also returns the forget set's per-sample scores."""
        out = {}
        for part in ("forget", "holdout"):
            ds = self.sets[part]
            s = self._tf(list(zip(ds["question"], ds["answer"])), full=True, desc=f"{part} answers")
            s["zlib"] = scores.zlib_score(torch.from_numpy(s["avg_loss"]), ds["answer"]).numpy()
            out[part] = s
        log = {attack: {part: {"value_by_index": _by_index(score=out[part][key])} for part in out}
               for attack, key in zip(MIA_ATTACKS, ("avg_loss", "zlib", "min_k", "min_k_pp"))}
        return log, out["forget"]

    def run(self) -> dict:
        """The TOFU_EVAL.json dict (per-sample values; aggregates are filled by `fill_aggregates`)."""
        s = self.sets
        log, forget = self._mia()
        log["exact_memorization"] = {"value_by_index": _by_index(score=forget["em"])}
        log["extraction_strength"] = {"value_by_index": _by_index(score=forget["es"])}
        log |= self._prob_block("forget", s["forget_pert"], forget["avg_loss"], "forget")
        log |= self._prob_block("retain", s["retain"], None, "retain")
        log |= self._prob_block("ra", s["ra"], None, "real authors")
        log |= self._prob_block("wf", s["wf"], None, "world facts")
        for prefix, ds in (("forget", s["forget"]), ("retain", s["retain"]), ("ra", s["ra"]), ("wf", s["wf"])):
            log[f"{prefix}_Q_A_ROUGE"] = self._rouge(ds, f"ROUGE {prefix}")
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

    from paperlib.models import _resolve

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


def evaluate_tofu(model, tokenizer, template: str, source: str, forget: str, cfg: EvalConfig,
                  retain_log: dict | None = None, out_dir: str | Path | None = None,
                  progress: bool = True) -> tuple[dict, dict]:
    """Evaluate, summarise (forget_quality and privleak against `retain_log`) and optionally write logs."""
    log = TofuEvaluator(model, tokenizer, template, source, forget, cfg, progress).run()
    if retain_log is None:
        warnings.warn("no retain-model log given: forget_quality is absent and privleak uses AUC_ref = 0.5",
                      stacklevel=2)
    summary = metrics.summarize_tofu(log, retain_log)
    if out_dir is not None:
        write_logs(log, summary, out_dir)
    return log, summary


def load_log(path: str | Path) -> dict:
    """A TOFU_EVAL.json file (or the folder holding it)."""
    p = Path(path)
    p = p / "TOFU_EVAL.json" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"no TOFU_EVAL.json at {p}")
    return json.loads(p.read_text())
