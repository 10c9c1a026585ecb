"""Per-sample scores from one teacher-forced pass, batched, as open-unlearning defines them (see metrics.py).

Inputs are already shifted: `logits` [B, T, V] where logits[:, t] predicts labels[:, t]; `labels` long [B, T]
with -100 on every position that is not an answer token (prompt, padding). Outputs are per-sample [B].
Half-precision logits are upcast to float32. A sample without answer tokens scores NaN.

open-unlearning drops the last answer token (the EOS) for EM, ES, MinK and MinK++, and keeps it for the
average loss; pass `eos_id` to those four to do the same.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch

from paperlib.engine.constants import IGNORE as IGNORE_INDEX
from paperlib.methods.losses import token_nll


def _float(logits: torch.Tensor) -> torch.Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _answer_mask(labels: torch.Tensor, eos_id: int | None = None) -> torch.Tensor:
    mask = labels != IGNORE_INDEX
    return mask if eos_id is None else mask & (labels != eos_id)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels[b, t]) [B, T], 0 where labels == -100."""
    return -token_nll(_float(logits), labels)


def avg_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean token NLL over the answer tokens (EOS included); prob = exp(-avg_loss)."""
    return -token_logprobs(logits, labels).sum(-1) / (labels != IGNORE_INDEX).sum(-1)


def exact_memorization(logits: torch.Tensor, labels: torch.Tensor, eos_id: int | None = None) -> torch.Tensor:
    """Teacher-forced accuracy of the argmax predictions on the answer tokens (EOS excluded with eos_id)."""
    mask = _answer_mask(labels, eos_id)
    return ((logits.argmax(-1) == labels) & mask).sum(-1) / mask.sum(-1)


def extraction_strength(logits: torch.Tensor, labels: torch.Tensor,
                        eos_id: int | None = None) -> torch.Tensor:
    """1 - k/n for the smallest k such that the argmax predictions equal the answer y[k:] (its last n - k
    tokens), i.e. the length share of the longest correctly predicted answer suffix; 0 when not even the last
    token matches. (open-unlearning's loop gives 1/n in that case: its k stays at n - 1.)"""
    mask = _answer_mask(labels, eos_id)
    ok = (logits.argmax(-1) == labels) | ~mask
    suffix_ok = ok.flip(-1).int().cummin(-1).values.flip(-1).bool()
    return (suffix_ok & mask).sum(-1) / mask.sum(-1)


def _neg_mean_lowest(x: torch.Tensor, mask: torch.Tensor, k: float) -> torch.Tensor:
    """Per row: -mean of the max(1, int(n * k)) lowest masked values; NaN if n = 0."""
    n = mask.sum(-1)
    num = (n.double() * k).long().clamp_min(1)
    lowest = x.masked_fill(~mask, float("inf")).sort(-1).values
    take = torch.arange(x.shape[-1], device=x.device) < num[:, None]
    out = -torch.where(take, lowest, 0.0).sum(-1) / num
    return out.masked_fill(n == 0, float("nan"))


def min_k(logits: torch.Tensor, labels: torch.Tensor, k: float = 0.4,
          eos_id: int | None = None) -> torch.Tensor:
    """Min-K% attack score: minus the mean of the lowest max(1, int(n * k)) answer-token log-probs."""
    return _neg_mean_lowest(token_logprobs(logits, labels), _answer_mask(labels, eos_id), k)


def min_k_plus_plus(logits: torch.Tensor, labels: torch.Tensor, k: float = 0.4,
                    eos_id: int | None = None) -> torch.Tensor:
    """Min-K%++ attack score: per token z = (log p(y_t) - mu_t) / sigma_t with mu_t = sum_v p_v log p_v and
    sigma_t^2 = sum_v p_v (log p_v)^2 - mu_t^2 (clamped at 1e-6), then minus the mean of the lowest
    max(1, int(n * k)) z of the answer."""
    logp = torch.log_softmax(_float(logits), -1)
    p = logp.exp()
    logp0 = logp.masked_fill(p == 0, 0.0)  # 0 * log 0 = 0 for vocabulary entries with -inf logits
    mu = (p * logp0).sum(-1)
    var = (p * logp0.square()).sum(-1) - mu.square()
    target = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    z = (target - mu) / var.clamp_min(1e-6).sqrt()
    return _neg_mean_lowest(z, _answer_mask(labels, eos_id), k)


def zlib_score(avg_loss: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """ZLib attack score: avg_loss / byte length of zlib.compress(text.encode("utf-8")) of each answer text
    (open-unlearning decodes the answer's label tokens, special tokens skipped). float64 [B]."""
    if len(texts) != len(avg_loss):
        raise ValueError(f"zlib_score: {len(avg_loss)} losses but {len(texts)} texts")
    sizes = [len(zlib.compress(t.encode("utf-8"))) for t in texts]
    return avg_loss.double() / torch.tensor(sizes, dtype=torch.float64, device=avg_loss.device)


def all_scores(logits: torch.Tensor, labels: torch.Tensor, eos_id: int | None = None, k: float = 0.4
               ) -> dict[str, torch.Tensor]:
    """avg_loss, em, es, min_k and min_k_pp of one batch (as the functions above, `eos_id` for the last four),
    from ONE log-softmax and one argmax over the vocabulary (the separate functions take three and two)."""
    logp = torch.log_softmax(_float(logits), -1)
    answer = labels != IGNORE_INDEX
    target = logp.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    token_lp = torch.where(answer, target, 0.0)
    mask = _answer_mask(labels, eos_id)
    hit = logits.argmax(-1) == labels
    suffix_ok = (hit | ~mask).flip(-1).int().cummin(-1).values.flip(-1).bool()
    p = logp.exp()
    logp0 = logp.masked_fill(p == 0, 0.0)
    mu = (p * logp0).sum(-1)
    var = (p * logp0.square()).sum(-1) - mu.square()
    z = (target - mu) / var.clamp_min(1e-6).sqrt()
    return {"avg_loss": -token_lp.sum(-1) / answer.sum(-1),
            "em": (hit & mask).sum(-1) / mask.sum(-1),
            "es": (suffix_ok & mask).sum(-1) / mask.sum(-1),
            "min_k": _neg_mean_lowest(token_lp, mask, k),
            "min_k_pp": _neg_mean_lowest(z, mask, k)}
