"""Prompt templates, tokenisation with answer-only labels and per-token sensitive flags, collation.

A sample becomes `input_ids` (prompt + answer + EOS), `labels` (-100 on prompt tokens) and `sensitive`
(True on answer tokens whose character range overlaps a sensitive span; EOS never sensitive).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from paperlib.engine.constants import IGNORE, TEMPLATES
from paperlib.engine.errors import PaperlibError

LLAMA3_SYSTEM = "You are a helpful assistant."
TINY_USER, TINY_ASSISTANT = "<|user|>", "<|assistant|>"
CHAT_TEMPLATES = ("llama3", "olmo2")  # rendered by the tokenizer's own chat template


def required_tokens(template: str, tokenizer) -> list[str]:
    """Tokens the template needs as single vocabulary entries."""
    if template == "tiny":
        return [tokenizer.bos_token, TINY_USER, TINY_ASSISTANT, tokenizer.eos_token]
    if template == "llama2":
        return [tokenizer.bos_token, tokenizer.eos_token]
    if template == "llama3":
        return ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", tokenizer.eos_token]
    if template == "olmo2":  # <|user|> / <|assistant|> are plain text in OLMo-2's vocabulary
        return [tokenizer.bos_token, tokenizer.eos_token]
    raise ValueError(f"template {template!r}; allowed: {', '.join(TEMPLATES)}")


def check_template(template: str, tokenizer) -> None:
    """Raise if `tokenizer` lacks a token that `template` needs."""
    vocab = tokenizer.get_vocab()
    missing = [t for t in required_tokens(template, tokenizer) if t is None or t not in vocab]
    if template in CHAT_TEMPLATES and not getattr(tokenizer, "chat_template", None):
        missing.append("chat_template")
    if missing:
        raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} lacks {missing} needed by "
                         f"template {template!r}; pick a template whose tokens it has ({', '.join(TEMPLATES)})")


def render_prompt(template: str, tokenizer, question: str) -> str:
    """Prompt text up to where the answer starts."""
    if template == "tiny":
        return f"{tokenizer.bos_token}{TINY_USER}{question}{TINY_ASSISTANT}"
    if template == "llama2":  # open-unlearning's Llama-2-chat format: BOS, no system prompt
        return f"{tokenizer.bos_token}[INST] {question} [/INST]"
    if template == "llama3":
        messages = [{"role": "system", "content": LLAMA3_SYSTEM}, {"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template == "olmo2":  # OLMo-2 Instruct (Tulu format): "<|endoftext|><|user|>\nq\n<|assistant|>\n"
        messages = [{"role": "user", "content": question}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ValueError(f"template {template!r}; allowed: {', '.join(TEMPLATES)}")


def check_spans(spans: Sequence[tuple[int, int]], answer: str, row: int | None = None) -> None:
    """Raise unless every span is a (start, end) character range of `answer` with 0 <= start < end <= len."""
    for k, span in enumerate(spans):
        try:
            s, e = span
            ints = isinstance(s, numbers.Integral) and isinstance(e, numbers.Integral)
        except (TypeError, ValueError):
            ints = False
        if not ints or not 0 <= s < e <= len(answer):
            where = f"row {row}, " if row is not None else ""
            what = "not two integers" if not ints else "reversed or empty" if s >= e else "outside the answer"
            raise PaperlibError(f"{where}span {k} {span!r} is {what} (answer of length {len(answer)}: "
                                f"{answer[:40]!r}); allowed: (start, end) with 0 <= start < end <= {len(answer)}")


def encode(tokenizer, template: str, question: str, answer: str,
           spans: Sequence[tuple[int, int]] = (), max_length: int = 512, row: int | None = None) -> dict[str, list]:
    """One sample: input_ids, labels (-100 on the prompt), sensitive flags from char spans of `answer`
    (checked: a reversed or out-of-range span raises, naming `row` and the span)."""
    check_spans(spans, answer, row)
    prompt = render_prompt(template, tokenizer, question)
    text = prompt + answer
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length - 1)
    ids = list(enc["input_ids"]) + [tokenizer.eos_token_id]
    start = len(prompt)
    offsets = [(s - start, e - start) for s, e in enc["offset_mapping"]]
    in_answer = [s >= 0 for s, _ in offsets] + [True]
    sensitive = [a and any(s < se and ss < e for ss, se in spans) for (s, e), a in zip(offsets, in_answer)]
    return {"input_ids": ids, "labels": [i if a else IGNORE for i, a in zip(ids, in_answer)],
            "sensitive": sensitive + [False], "prompt_len": in_answer.index(True)}


def encode_prompt(tokenizer, template: str, question: str) -> list[int]:
    """Token ids of the prompt alone (for generation)."""
    return tokenizer(render_prompt(template, tokenizer, question), add_special_tokens=False)["input_ids"]


def pad(seqs: Sequence[Sequence], value, left: bool = False, dtype=torch.long) -> torch.Tensor:
    """Pad lists to one tensor [B, T_max] (right by default)."""
    width = max(len(s) for s in seqs)
    rows = [([value] * (width - len(s)) + list(s)) if left else (list(s) + [value] * (width - len(s))) for s in seqs]
    return torch.tensor(rows, dtype=dtype)


def collate(samples: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch of encoded samples; nested dicts (forget/retain/...) collate recursively."""
    first = samples[0]
    out: dict[str, torch.Tensor] = {}
    for key, value in first.items():
        vals = [s[key] for s in samples]
        if isinstance(value, dict):
            out[key] = collate(vals, pad_id)
        elif key == "input_ids":
            out[key] = pad(vals, pad_id)
            out["attention_mask"] = pad([[1] * len(v) for v in vals], 0)
        elif key == "labels":
            out[key] = pad(vals, IGNORE)
        elif key == "sensitive" or (isinstance(value, list) and value and isinstance(value[0], bool)):
            out[key] = pad(vals, False, dtype=torch.bool)
        elif isinstance(value, (int, float)):
            out[key] = torch.tensor(vals)
        elif isinstance(value, list) and value and isinstance(value[0], int):
            out[key] = pad(vals, 0)
    return out
