"""RWKU's metrics as the RWKU code computes them (jinzhuoran/RWKU, src/llmtuner/eval; ../shared/spec/rwku_muse.md).

- Probes (forget levels 1-3, neighbour levels 1-2): the prompt of `probe_prompt` as a user turn of the chat
  template (generation prompt added), then a literal suffix on the assistant side ("Answer:" for most);
  greedy, `max_new_tokens` (RWKU: 30), stopped at EOS / end-of-turn / the first newline; scored by ROUGE-L
  recall of the prediction against `answer` with the `rouge` package (an empty prediction is scored as the
  string "NOANSWER"), averaged per level.
- Multiple choice (MMLU-style utility): a few-shot prompt; the prediction is the argmax of the next-token
  logits over the first tokens of " A" .. " D"; accuracy.
- Fluency: "Instruction: {instruction}\\n" as a user turn, greedy; weighted bi/tri-gram entropy
  (`paperlib.benchmarks.tofu.metrics.fluency_entropy`: weights 2/3, 4/3, log base 2), averaged over outputs.
- MIA: raw text (BOS, no template): per text the mean token NLL (`loss`), `zlib` (NLL / zlib bytes),
  `mink{k}` and `mink++{k}` (minus the mean of the lowest k% token log-probs / Min-K%++ z-scores; from
  `benchmarks.scoring`). Every MIA score is "higher = less likely the model saw it"; the paper's FM / RM columns are
  100 x the mean `loss` (inferred in the spec: -100 x the mean log-likelihood).

Output files use RWKU's keys: forget.json (`level_{1,2,3}_rouge_l_r`), neighbor.json (`level_{1,2}_rouge_l_r`),
mmlu.json (`acc`), forget_mia.json / retain_mia.json (`loss`, `zlib`, `mink20`, ...), fluency.json (`entropy`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from rouge import Rouge

from paperlib.benchmarks import scoring as scores
from paperlib.benchmarks.rwku import data as rwku_data
from paperlib.benchmarks.rwku.data import (  # noqa: F401 (RWKU's prompt formats, re-exported)
    AFFIRMATIVE,
    AFFIRMATIVE_PROMPT,
    ANSWER_SUFFIX,
    FB_PROMPT,
    FLUENCY_PROMPT,
    ICL_PROMPT,
    INCONTEXT,
    MCQ_LETTERS,
    QA_PROMPT,
    chat_prompt,
    mcq_block,
    mcq_prompt,
    probe_prompt,
)
from paperlib.benchmarks.tofu import evaluate, metrics
from paperlib.engine import encoding
from paperlib.engine.corpus import register_evaluator

NOANSWER = "NOANSWER"  # RWKU scores an empty prediction as this string
MIA_KS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # Min-K% / Min-K%++ ratios reported (RWKU's key: mink20 = k 0.2)
LEVELS = {"forget": ("1", "2", "3"), "neighbor": ("1", "2")}
# table columns (RWKU Table 1): probe level -> column name
COLUMNS = {"forget": {"1": "FB", "2": "QA", "3": "AA"}, "neighbor": {"1": "FB", "2": "QA"}}

_ROUGE = Rouge(metrics=["rouge-l"])


# ----------------------------------------------------------------------------------------- scores
def rouge_l_recall(prediction: str, answer: str) -> float:
    """ROUGE-L recall of `prediction` against `answer` (`rouge` package, as RWKU); a prediction the package
    cannot score (nothing but whitespace / punctuation) is scored as "NOANSWER"."""
    pred = prediction.strip() or NOANSWER
    try:
        return float(_ROUGE.get_scores(pred, answer)[0]["rouge-l"]["r"])
    except ValueError:  # the package found no word / sentence in the prediction (e.g. "...")
        return float(_ROUGE.get_scores(NOANSWER, answer)[0]["rouge-l"]["r"])


def level_scores(records: Sequence[Mapping], predictions: Sequence[str]) -> dict[str, list[float]]:
    """{level: per-record ROUGE-L recall} in record order."""
    if len(records) != len(predictions):
        raise ValueError(f"{len(records)} probes but {len(predictions)} predictions")
    out: dict[str, list[float]] = {}
    for r, p in zip(records, predictions):
        out.setdefault(str(r["level"]), []).append(rouge_l_recall(p, r["answer"]))
    return out


def probe_summary(per_level: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """RWKU's keys `level_{l}_rouge_l_r` (mean per level) and `all_rouge_l_r` (pooled over every probe)."""
    out = {f"level_{lv}_rouge_l_r": float(np.mean(v)) for lv, v in sorted(per_level.items()) if len(v)}
    pooled = [x for v in per_level.values() for x in v]
    out["all_rouge_l_r"] = float(np.mean(pooled)) if pooled else float("nan")
    return out


def mcq_accuracy(letter_logits: np.ndarray | torch.Tensor, answers: Sequence[int]) -> float:
    """Accuracy of argmax over the option letters' logits [N, 4] against answer indices."""
    pred = np.asarray(letter_logits).argmax(-1)
    return float((pred == np.asarray(answers)).mean())


def fluency(texts: Sequence[str]) -> float:
    """RWKU's fluency: weighted bi/tri-gram entropy, averaged over the outputs (`metrics.fluency_entropy`)."""
    return metrics.fluency_entropy(list(texts))


def mia_text_scores(logits: torch.Tensor, labels: torch.Tensor, texts: Sequence[str],
                    ks: Sequence[float] = MIA_KS) -> dict[str, torch.Tensor]:
    """Per-text MIA scores from shifted logits [B, T, V] and labels [B, T] (-100 = no target): `loss` (mean
    NLL), `zlib`, `mink{k%}`, `mink++{k%}` (RWKU's key names; mink20 = lowest 20%)."""
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        s = scores.all_scores(logits, labels, k=k)
        out.setdefault("loss", s["avg_loss"])
        out[f"mink{round(k * 100)}"] = s["min_k"]
        out[f"mink++{round(k * 100)}"] = s["min_k_pp"]
    out["zlib"] = scores.zlib_score(out["loss"], texts)
    return out


# ----------------------------------------------------------------------------------------- model passes
def _stop_ids(tokenizer) -> list[int]:
    ids = [tokenizer.eos_token_id]
    vocab = tokenizer.get_vocab()
    ids += [vocab[t] for t in ("<|eot_id|>", "<|end_of_text|>") if t in vocab]
    return sorted({i for i in ids if i is not None})


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 32,
             cut_newline: bool = True) -> list[str]:
    """Greedy continuations of rendered `prompts` (left padding), stopped at EOS / end-of-turn and (with
    `cut_newline`) cut at the first newline, stripped. Cutting afterwards equals stopping there: greedy tokens
    before a newline do not depend on what follows."""
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    texts = evaluate.generate_ids(model, tokenizer, enc, max_new_tokens, batch_size, eos_token_id=_stop_ids(tokenizer))
    return [(text.split("\n", 1)[0] if cut_newline else text).strip() for text in texts]


def letter_ids(tokenizer) -> list[int]:
    """First token of " A" .. " D" (RWKU's option tokens)."""
    return [tokenizer(f" {letter}", add_special_tokens=False)["input_ids"][0] for letter in MCQ_LETTERS]


@torch.no_grad()
def letter_logits(model, tokenizer, prompts: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Next-token logits [N, 4] of the option letters after each rendered prompt (left padding)."""
    device = next(model.parameters()).device
    letters = torch.tensor(letter_ids(tokenizer), device=device)
    rows = []
    for i in range(0, len(prompts), batch_size):
        chunk = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[i:i + batch_size]]
        ids = encoding.pad(chunk, tokenizer.pad_token_id, left=True).to(device)
        mask = encoding.pad([[1] * len(c) for c in chunk], 0, left=True).to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -1]
        rows.append(logits.float()[:, letters].cpu())
    return torch.cat(rows).numpy() if rows else np.zeros((0, 4))


def mia_scores(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 16
               ) -> dict[str, np.ndarray]:
    """Per-text MIA scores (`mia_text_scores`) of raw texts (`evaluate.score_texts`: BOS first when the
    tokenizer has one, the first `max_length` tokens; every token after the first is a target)."""
    return evaluate.score_texts(model, tokenizer, texts, max_length, mia_text_scores, batch_size)


# ----------------------------------------------------------------------------------------- one target
@dataclass(frozen=True)
class RwkuEvalConfig:
    """How `evaluate_target` decodes and batches: probe / fluency lengths, MMLU shots, MIA length, batch size."""

    max_new_tokens: int = 30  # probe answer length (RWKU: 30)
    fluency_tokens: int = 256  # fluency output length (RWKU: 256)
    shots: int = 5  # few-shot examples of the MMLU prompt (RWKU: 5)
    max_length: int = 512  # tokens of an MIA text the model reads
    batch_size: int = 32  # evaluation batch


def evaluate_target(model, tokenizer, template: str, data: Mapping[str, Sequence[Mapping]],
                    cfg: RwkuEvalConfig = RwkuEvalConfig(), out_dir: Path | None = None) -> dict[str, float]:
    """RWKU's evaluation of one target (`data`: `benchmarks.rwku.data.load_target`'s dict) with the settings `cfg`
    (a `RwkuEvalConfig`: decoding lengths, few-shot count, MIA length, batch size). Returns the table row
    (`summary_row`) and, with `out_dir`, writes RWKU's files with per-item logs."""
    max_new_tokens, fluency_tokens, shots = cfg.max_new_tokens, cfg.fluency_tokens, cfg.shots
    max_length, batch_size = cfg.max_length, cfg.batch_size
    logs: dict[str, dict] = {}
    for part in ("forget", "neighbor"):
        records = [r for lv in LEVELS[part] for r in data[f"{part}_level{lv}"]]
        prompts = [chat_prompt(template, tokenizer, *probe_prompt(r)) for r in records]
        preds = generate(model, tokenizer, prompts, max_new_tokens, batch_size)
        per_level = level_scores(records, preds)
        items = [{"query": r["query"], "answer": r["answer"], "level": str(r["level"]), "type": r.get("type", ""),
                  "prediction": p, "rouge_l_r": rouge_l_recall(p, r["answer"])} for r, p in zip(records, preds)]
        logs[part] = {**probe_summary(per_level), "items": items}
    for part, key in (("forget_mia", "forget_mia"), ("retain_mia", "retain_mia")):
        texts = [r["text"] for r in data[key]]
        s = mia_scores(model, tokenizer, texts, max_length, batch_size)
        logs[part] = {**{k: float(np.mean(v)) for k, v in s.items()},
                      "items": [{k: float(v[i]) for k, v in s.items()} for i in range(len(texts))]}
    mmlu = data["mmlu"]
    if mmlu:
        prompts = [chat_prompt(template, tokenizer, *mcq_prompt(r, shots)) for r in mmlu]
        logits = letter_logits(model, tokenizer, prompts, batch_size)
        logs["mmlu"] = {"acc": mcq_accuracy(logits, [int(r["answer"]) for r in mmlu]),
                        "items": [{"answer": int(r["answer"]), "prediction": int(row.argmax())}
                                  for r, row in zip(mmlu, logits)]}
    prompts = [chat_prompt(template, tokenizer, FLUENCY_PROMPT.format(instruction=r["instruction"]))
               for r in data["fluency"]]
    outputs = generate(model, tokenizer, prompts, fluency_tokens, batch_size, cut_newline=False)
    logs["fluency"] = {"entropy": fluency(outputs), "items": [{"output": o} for o in outputs]}
    if out_dir is not None:
        write_logs(logs, out_dir)
    return summary_row(logs)


def write_logs(logs: Mapping[str, Mapping], out_dir: str | Path) -> None:
    """RWKU's output files: forget.json, neighbor.json, forget_mia.json, retain_mia.json, mmlu.json, fluency.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, log in logs.items():
        (out / f"{name}.json").write_text(json.dumps(log, indent=1))


def summary_row(logs: Mapping[str, Mapping]) -> dict[str, float]:
    """The RWKU table row (x 100, Table 1's layout) from the logs: forget FB/QA/AA/All, neighbour FB/QA/All,
    MIA FM/RM (100 x mean loss), utility Gen (MC accuracy; left out without items) and Flu (entropy)."""
    row: dict[str, float] = {}
    for part in ("forget", "neighbor"):
        for lv, col in COLUMNS[part].items():
            row[f"{part} {col}"] = 100 * logs[part][f"level_{lv}_rouge_l_r"]
        row[f"{part} All"] = 100 * logs[part]["all_rouge_l_r"]
    row["MIA FM"] = 100 * logs["forget_mia"]["loss"]
    row["MIA RM"] = 100 * logs["retain_mia"]["loss"]
    if "mmlu" in logs:
        row["utility Gen"] = 100 * logs["mmlu"]["acc"]
    row["utility Flu"] = logs["fluency"]["entropy"]
    return row


# ----------------------------------------------------------------------------------------- the "rwku" evaluator
@lru_cache(maxsize=64)
def target_data(source: str, target: str) -> str:
    """`rwku_data.load_target` as JSON text (cached per source and target; callers parse their own copy)."""
    return json.dumps(rwku_data.load_target(source, target))


@register_evaluator("rwku")
def evaluate_rwku(model, tokenizer, profile, args: dict, out_dir: Path | None) -> dict:
    """The "rwku" evaluator: RWKU's evaluation of `args["target"]` (`evaluate_target`); writes
    RWKU's files into `out_dir` when given; returns the table row."""
    data = json.loads(target_data(str(args["source"]), str(args["target"])))
    cfg = RwkuEvalConfig(max_new_tokens=int(args.get("max_new_tokens", 30)),
                         fluency_tokens=int(args.get("fluency_tokens", 256)), shots=int(args.get("shots", 5)),
                         max_length=int(args.get("max_length", 512)), batch_size=profile.eval.batch_size)
    return evaluate_target(model, tokenizer, profile.model.template, data, cfg, out_dir=out_dir)
