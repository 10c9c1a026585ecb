"""Unlearning losses, one pure tensor function per paper formula (see shared/spec/methods.md).

Shifting convention: every function takes ALREADY SHIFTED tensors. `logits` is [B, T, V] and
`logits[:, t]` predicts `labels[:, t]` (long [B, T], -100 = ignored: prompt, padding). Per-token flags
(`sensitive`, `unwanted`, masks) live in the same shifted space: position t is flagged when the label it
predicts is flagged. Callers holding HF-style tensors (labels aligned with input_ids) call `shift` first.
Answer positions are the positions with `labels != -100`. Empty masks give a zero that keeps the graph.
"""

from __future__ import annotations

import math
from numbers import Integral

import torch
import torch.nn.functional as F

from paperlib.engine.constants import IGNORE

KL_DIRECTIONS = ("theta_ref", "ref_theta")  # KL(p_theta || p_ref) (PALU's code) or KL(p_ref || p_theta) (its text)
TPO_REDUCTIONS = ("sample_sum", "token_mean")  # TPO's NLL on general tokens (see tpo_loss)
UNILOGIT_REDUCTIONS = ("token", "elementwise")  # Unilogit's KL reduction (see unilogit_loss)


def shift(logits: torch.Tensor, labels: torch.Tensor, *flags: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """HF-style (labels aligned with input_ids) -> shifted: (logits[:, :-1], labels[:, 1:], *flags[:, 1:]).

    A flag aligned with input_ids (flag[t] describes token t) is shifted like the labels.
    """
    return (logits[..., :-1, :], labels[..., 1:], *(f[..., 1:] for f in flags))


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")


def _check(name: str, value: float, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0 and finite, got {value!r}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask; 0 (still attached to x's graph, zero gradient) when mask is empty."""
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def _answer(labels: torch.Tensor) -> torch.Tensor:
    return labels != IGNORE


def _gather(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """logits[..., labels] with ignored labels read at index 0 (callers mask them)."""
    return logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)


def rows_at(x: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`x` at the positions of `mask` [B, T] as rows [M, ...]. `x` is batch-shaped [B, T, ...] or already the
    rows of the positions of `rows` [B, T] (a superset of `mask`) in row-major order, the layout in which a
    reference cache hands out the quantities its losses read row by row."""
    return x[mask] if x.dim() > mask.dim() else x[mask[rows]]


def _all_rows(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)


# ----------------------------------------------------------------------------- likelihoods


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy -log p(y_t) [B, T]; 0 on ignored positions."""
    nll = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORE, reduction="none")
    return nll.view(labels.shape)


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """NLL(x): mean token cross-entropy over all label tokens of the batch (HF's causal-LM loss)."""
    return _masked_mean(token_nll(logits, labels), _answer(labels))


def seq_nll_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """S(x): per-sequence SUM of token NLL, [B]."""
    return token_nll(logits, labels).sum(-1)


def seq_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(y | x) = -S(x), [B]."""
    return -seq_nll_sum(logits, labels)


def gold_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Raw logit of the gold token z[t, y_t], [B, T]; 0 on ignored positions."""
    return torch.where(_answer(labels), _gather(logits, labels), 0.0)


def kl_div_positions(logits_p: torch.Tensor, logits_q: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the full vocabulary per position, averaged over `mask` (0 if empty).

    Either argument may also be log-probabilities (log_softmax leaves them unchanged).
    """
    logp, logq = F.log_softmax(logits_p, -1), F.log_softmax(logits_q, -1)
    return _masked_mean((logp.exp() * (logp - logq)).sum(-1), mask)


def nonsensitive_kl(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, sensitive: torch.Tensor,
                    direction: str = "theta_ref") -> torch.Tensor:
    """PALU's constraint on the non-sensitive answer positions (answer & ~sensitive), 0 if there are none:
    KL(p_theta || p_ref) ("theta_ref", PALU's code) or KL(p_ref || p_theta) ("ref_theta", its paper text).
    `ref_logits` (logits or log-probabilities; [B, T, V] or the rows of the answer positions, `rows_at`) is
    detached; only the kept positions are computed. Used by PALU and by its NCE ablation."""
    _check_choice("kl_direction", direction, KL_DIRECTIONS)
    answer = _answer(labels)
    keep = answer & ~sensitive
    z, ref = logits[keep], rows_at(ref_logits.detach(), answer, keep)
    p, q = (z, ref) if direction == "theta_ref" else (ref, z)
    return kl_div_positions(p, q, _all_rows(z))


# ----------------------------------------------------------------------------- GA / GD
# Gradient ascent (Jang et al. 2023; TOFU, Maini et al. 2024): L = -NLL(forget).
# GD adds alpha * nll(retain_logits, retain_labels) in the caller.


def ga_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-NLL(forget)."""
    return -nll(logits, labels)


# ----------------------------------------------------------------------------- NPO / SimNPO / DPO
# NPO (Zhang et al. 2024, "Negative Preference Optimization", arXiv:2404.05868), as in open-unlearning:
#   L = -(2/beta) mean_b log sigmoid(-beta (log p_theta - log p_ref))
#     = -(2/beta) mean_b log sigmoid(beta (S_theta - S_ref))


def npo_loss(seq_nll_theta: torch.Tensor, seq_nll_ref: torch.Tensor, beta: float = 0.1) -> torch.Tensor:
    """NPO from per-sequence summed NLLs S(x) [B] (ref detached). Equals (2/beta) log 2 at theta = ref."""
    _check("beta", beta)
    return -(2 / beta) * F.logsigmoid(beta * (seq_nll_theta - seq_nll_ref.detach())).mean()


# SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
# Unlearning"), reference-free:
#   L = -(2/beta) mean_b log sigmoid(beta (S_theta / |y| - delta))


def simnpo_loss(
    seq_nll_theta: torch.Tensor, lengths: torch.Tensor, beta: float = 4.5, delta: float = 0.0
) -> torch.Tensor:
    """SimNPO; `lengths` [B] = number of answer tokens |y| (labels != -100 per row)."""
    _check("beta", beta)
    return -(2 / beta) * F.logsigmoid(beta * (seq_nll_theta / lengths.clamp(min=1) - delta)).mean()


# DPO (Rafailov et al. 2023) with an "I don't know" answer as the winner (TOFU's IdK variant), 2/beta scaled
# as in open-unlearning:
#   L = -(2/beta) mean_b log sigmoid(beta [(lp_theta - lp_ref)(win) - (lp_theta - lp_ref)(lose)])


def dpo_loss(
    logp_theta_win: torch.Tensor,
    logp_ref_win: torch.Tensor,
    logp_theta_lose: torch.Tensor,
    logp_ref_lose: torch.Tensor,
    beta: float = 0.1,
) -> torch.Tensor:
    """DPO on sequence log-probs [B]; win = IdK answer, lose = forget answer."""
    _check("beta", beta)
    margin = (logp_theta_win - logp_ref_win.detach()) - (logp_theta_lose - logp_ref_lose.detach())
    return -(2 / beta) * F.logsigmoid(beta * margin).mean()


# ----------------------------------------------------------------------------- WGA / UnDIAL / Unilogit
# WGA (Wang et al. 2025, "Rethinking LLM Unlearning Objectives: A Gradient Perspective and Go Beyond"):
#   L = -mean_t w_t CE_t,  w_t = p_theta(y_t)^beta detached (token mean over the batch).


def wga_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Weighted gradient ascent; beta = 0 is plain GA (-NLL)."""
    _check("beta", beta, allow_zero=True)
    ce = token_nll(logits, labels)
    return -_masked_mean(torch.exp(-ce).detach() ** beta * ce, _answer(labels))


# UnDIAL (Dong et al. 2024, "UNDIAL: Self-Distillation with Adjusted Logits for Robust Unlearning"):
#   target q = softmax(z_ref - beta * onehot(y)); L = mean over answer tokens of -sum_v q_v log p_theta(v).


def undial_target(ref_logits: torch.Tensor, labels: torch.Tensor, beta: float = 10.0) -> torch.Tensor:
    """softmax(z_ref - beta * onehot(y)), [B, T, V], no gradient (ignored positions read label 0)."""
    _check("beta", beta, allow_zero=True)
    z = ref_logits.detach()
    idx = labels.clamp(min=0).unsqueeze(-1)
    return F.softmax(z.scatter(-1, idx, z.gather(-1, idx) - beta), -1)


def undial_loss(
    logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor, beta: float = 10.0
) -> torch.Tensor:
    """Soft-label CE against `undial_target`, forget answer tokens only (no prompt leak); `ref_logits` [B, T, V]
    or the rows of the answer positions (`rows_at`). Only the answer positions are computed."""
    answer = _answer(labels)
    z, y = logits[answer], labels[answer]
    ce = -(undial_target(rows_at(ref_logits, answer, answer), y, beta) * F.log_softmax(z, -1)).sum(-1)
    return _masked_mean(ce, _all_rows(z))


# Unilogit (Vasilev et al. 2025, "Unilogit: Robust Machine Unlearning for LLMs Using Uniform-Target
# Self-Distillation"): z' = z.detach() with z'_y = logsumexp_{j != y} z_j - log(V - 1),
# so softmax(z')_y = 1/V;  L = mean over answer tokens of KL(p_theta || softmax(z')).


def _unilogit_logits(z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if z.shape[-1] < 2:
        raise ValueError(f"unilogit needs a vocabulary of at least 2, got V={z.shape[-1]}")
    idx = labels.clamp(min=0).unsqueeze(-1)
    others = z.scatter(-1, idx, float("-inf")).logsumexp(-1, keepdim=True)
    shifted = z.scatter(-1, idx, others - math.log(z.shape[-1] - 1))
    return torch.where((labels == IGNORE).unsqueeze(-1), z, shifted)


@torch.no_grad()
def unilogit_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Probabilities [..., V]: softmax of the logits with the label's logit set so its probability is 1/V.

    The other logits (hence their ratios) are unchanged; no gradient. Ignored labels get softmax(logits).
    """
    return F.softmax(_unilogit_logits(logits.detach(), labels), -1)


def unilogit_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "token") -> torch.Tensor:
    """Reverse KL(p_theta || unilogit_target); p_theta keeps its gradient.

    reduction "token" (the formula's): the per-token KL (summed over the vocabulary) averaged over answer tokens.
    "elementwise": PyTorch's default `F.kl_div(..., reduction="mean")`, which a port of the official code calls
    and which also averages over the V vocabulary entries, i.e. the token mean divided by V.
    """
    _check_choice("reduction", reduction, UNILOGIT_REDUCTIONS)
    kl = kl_div_positions(logits, _unilogit_logits(logits.detach(), labels), _answer(labels))
    return kl if reduction == "token" else kl / logits.shape[-1]


# ----------------------------------------------------------------------------- TPO
# TPO / TIF (Zhou et al. 2025, "Not All Tokens Are Meant To Be Forgotten", arXiv:2506.03142):
#   lpl = mean_b[mean_{t in U_b} z_ref[t, y_t]] - mean_b[mean_{t in U_b} z_theta[t, y_t]]   (raw gold logits)
#   L = -(2/beta) log sigmoid(beta * lpl) + NLL(general tokens)


def tpo_loss(
    logits: torch.Tensor,
    ref_gold_logits: torch.Tensor,
    labels: torch.Tensor,
    unwanted: torch.Tensor,
    beta: float = 0.32,
    general: str = "sample_sum",
) -> torch.Tensor:
    """Logit preference loss on unwanted answer tokens + NLL on the other (general) answer tokens.

    `ref_gold_logits` [B, T] = gold_logits(ref_logits, labels); `unwanted` bool [B, T] (shifted). The batch
    means run over samples with at least one unwanted token; with none, lpl = 0 and the first term is the
    constant (2/beta) log 2. NLL(general): "sample_sum" (the TPO reference code's, whose numbers the PALU paper
    reports) sums the token NLL over each sample's general tokens, then averages over the B samples;
    "token_mean" is the token mean over the batch's general tokens (0 if there are none).
    """
    _check("beta", beta)
    _check_choice("general", general, TPO_REDUCTIONS)
    answer = _answer(labels)
    unwanted = unwanted & answer
    count = unwanted.sum(-1)
    gap = torch.where(unwanted, ref_gold_logits.detach() - gold_logits(logits, labels), 0.0).sum(-1)
    lpl = _masked_mean(gap / count.clamp(min=1), count > 0)
    general_tokens = answer & ~unwanted
    nll_t = token_nll(logits, labels)
    if general == "sample_sum":
        general_nll = torch.where(general_tokens, nll_t, 0.0).sum(-1).mean()
    else:
        general_nll = _masked_mean(nll_t, general_tokens)
    return -(2 / beta) * F.logsigmoid(beta * lpl) + general_nll


# ----------------------------------------------------------------------------- PDU
# PDU (Entesari et al. 2025, "Constrained Entropic Unlearning: A Primal-Dual Framework for LLMs"):
#   L_f = mean over answer tokens of (max_v z_t - mean_v z_t)^2;  L = gamma L_f + lam (L_r - eps);
#   lam <- max(0, lam + eta (L_r - eps)).


def pdu_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer tokens of the squared logit margin (max - mean)^2; nothing detached."""
    return _masked_mean((logits.max(-1).values - logits.mean(-1)) ** 2, _answer(labels))


def pdu_lagrangian(
    forget_loss: torch.Tensor, retain_loss: torch.Tensor, lam: float, eps: float = 0.3, gamma: float = 1.0
) -> torch.Tensor:
    """gamma * L_f + lam * (L_r - eps); lam is a constant (no gradient)."""
    return gamma * forget_loss + float(lam) * (retain_loss - eps)


def pdu_dual_update(
    lam: float, retain_loss: float | torch.Tensor, eps: float = 0.3, eta: float = 5.0
) -> float:
    """Projected dual ascent step max(0, lam + eta (L_r - eps)) as a plain float."""
    _check("lam", float(lam), allow_zero=True)
    _check("eta", eta)
    return max(0.0, float(lam) + eta * (float(retain_loss) - eps))


# ----------------------------------------------------------------------------- RMU
# RMU (Li et al. 2024, "The WMDP Benchmark", Sec. 5): h_l = output of decoder layer l;
#   forget: MSE(h_l(x_f), c u), u a fixed random unit vector; retain: MSE(h_l(x_r), h_l^ref(x_r)).


def rmu_control_vector(dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The fixed random unit vector u [dim] (uniform in [0, 1)^dim, normalised, as in the WMDP code)."""
    u = torch.rand(dim, generator=generator)
    return u / u.norm()


def _masked_mse(h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    per_pos = ((h - target) ** 2).mean(-1)
    return per_pos.mean() if mask is None else _masked_mean(per_pos, mask)


def rmu_forget_loss(
    h: torch.Tensor, control_vec: torch.Tensor, c: float = 2.0, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE between h [B, T, D] and c*u [D], over positions in mask [B, T] (all positions if None)."""
    _check("c", c)
    return _masked_mse(h, c * control_vec.to(h), mask)


def rmu_retain_loss(h: torch.Tensor, h_ref: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between h and the frozen model's h_ref (detached), over positions in mask (all if None)."""
    return _masked_mse(h, h_ref.detach(), mask)


# ----------------------------------------------------------------------------- CE-U
# CE-U (Yang 2025, "CE-U: Cross Entropy Unlearning"): soft CE against q = softmax(z.detach(), z_y = -inf),
# skipping the first answer token of every sample; no retain term.


def ceu_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer tokens except each sample's first of -sum_v q_v log p_theta(v)."""
    answer = _answer(labels)
    keep = answer & (answer.cumsum(-1) > 1)
    target = F.softmax(logits.detach().scatter(-1, labels.clamp(min=0).unsqueeze(-1), float("-inf")), -1)
    return _masked_mean(-(target * F.log_softmax(logits, -1)).sum(-1), keep)


# ----------------------------------------------------------------------------- PALU
# PALU (prefix-aware localized unlearning), methods.md steps 2-6. On I_init, the first N positions of every
# run of sensitive answer positions:
#   L_local = mean_{t in I_init} (1/K) sum_{i in topK_ref(t)} (z[t, i] - c_t)^2.
# Non-sensitive answer positions get KL(p_theta || p_ref); other sensitive positions get nothing.


def prefix_mask(sensitive: torch.Tensor, n: int) -> torch.Tensor:
    """bool [B, T] keeping the first n positions of every maximal run of True along T (n <= 0: all)."""
    if sensitive.dtype != torch.bool:
        raise ValueError(f"sensitive must be a bool tensor, got {sensitive.dtype}")
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise ValueError(f"n must be an int (<= 0 keeps all), got {n!r}")
    if n <= 0:
        return sensitive.clone()
    pos = torch.arange(sensitive.shape[-1], device=sensitive.device).expand_as(sensitive)
    last_false = torch.where(sensitive, -1, pos).cummax(-1).values  # last non-sensitive index at or before t
    return sensitive & (pos - last_false <= n)  # pos - last_false = 1-based position inside the run


def topk_indices(ref_logits: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the top-k ref logits per position, long [B, T, k] (compute once, cache)."""
    vocab = ref_logits.shape[-1]
    if isinstance(k, bool) or not isinstance(k, Integral) or not 1 <= k <= vocab:
        raise ValueError(f"k must be an int in [1, V={vocab}], got {k!r}")
    return ref_logits.detach().topk(int(k), dim=-1).indices


# c_t from (current logits [B, T, V], their top-K [B, T, K]); RQ4 ablation options (names: TARGETS).
_TARGETS = {
    "global_mean": lambda z, zk: z.mean(-1),
    "local_mean": lambda z, zk: zk.mean(-1),
    "detached_mean": lambda z, zk: z.detach().mean(-1),
    "zero": lambda z, zk: z.new_zeros(z.shape[:-1]),
    "topk_min": lambda z, zk: zk.detach().min(-1).values,
}
TARGETS = tuple(_TARGETS)


def _check_topk(topk_idx: torch.Tensor, x: torch.Tensor, name: str) -> None:
    dense = topk_idx.dim() == x.dim()
    if (dense and topk_idx.shape[:-1] != x.shape[:-1]) or topk_idx.dim() < 2 or topk_idx.shape[-1] < 1:
        raise ValueError(f"topk_idx shape {tuple(topk_idx.shape)} does not fit {name} {tuple(x.shape)}")


def local_entropy(
    logits: torch.Tensor, topk_idx: torch.Tensor, mask: torch.Tensor, target: str = "global_mean",
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scalar mean over masked positions (token mean over the batch) of (1/K) sum_k (z[b,t,idx_k] - c[b,t])^2.

    target: "global_mean" c = mean over all V of the current logits (not detached; the default),
    "local_mean" = mean of the current top-K logits, "detached_mean" = global mean detached,
    "zero" = 0, "topk_min" = min of the current top-K logits, DETACHED. Empty mask -> 0 (graph kept).
    `topk_idx` is [B, T, K], or the [M, K] rows of the positions of `rows` (a superset of `mask`, `rows_at`).
    Only the masked positions are computed.
    """
    if target not in _TARGETS:
        raise ValueError(f"unknown target {target!r}; allowed: {', '.join(_TARGETS)}")
    _check_topk(topk_idx, logits, "logits")
    z = logits[mask]  # [N, V]
    picked = z.gather(-1, rows_at(topk_idx, mask if rows is None else rows, mask))
    c = _TARGETS[target](z, picked)
    return _masked_mean(((picked - c.unsqueeze(-1)) ** 2).mean(-1), _all_rows(picked))


def palu_loss(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    topk_idx: torch.Tensor,
    labels: torch.Tensor,
    sensitive: torch.Tensor,
    n: int,
    target: str = "global_mean",
    kl_direction: str = "theta_ref",
) -> tuple[torch.Tensor, torch.Tensor]:
    """PALU forget terms (L_local, KL_nonsens); the caller forms gamma*L_local + alpha*(NLL_retain + KL).

    L_local: local_entropy on prefix_mask(sensitive & answer, n). KL_nonsens: KL(p_theta || p_ref)
    ("theta_ref", code default) or KL(p_ref || p_theta) ("ref_theta", paper text), averaged over
    non-sensitive answer positions (0 if none). `ref_logits` may be ref logits or log-probs; it and `topk_idx`
    are batch-shaped or the rows of the answer positions (`rows_at`). Sensitive positions beyond the prefix and
    prompt positions get no loss (zero gradient).
    """
    _check_choice("kl_direction", kl_direction, KL_DIRECTIONS)
    answer = _answer(labels)
    local = local_entropy(logits, topk_idx, prefix_mask(sensitive & answer, n), target, rows=answer)
    return local, nonsensitive_kl(logits, ref_logits, labels, sensitive, kl_direction)


# PALU's forget term from hidden states (past the paper, on cost): with z = h W^T + b, the top-K logits are
# z[t, i] = h_t . W_i + b_i and the global mean is h_t . mean_v(W_v) + mean(b), so L_local needs the output
# embedding rows of the top-K indices only, never the full-vocabulary logits at the prefix positions.


def local_entropy_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    topk_idx: torch.Tensor,
    mask: torch.Tensor,
    target: str = "global_mean",
    bias: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """`local_entropy(hidden @ weight.T + bias, topk_idx, mask, target, rows)` without the [B, T, V] logits.

    `hidden` [B, T, D] (after the final norm, shifted like the logits), `weight` [V, D] the output embedding,
    `bias` [V] or None. Only the masked positions are read: their top-K logits come from one matmul with the
    union of their top-K rows of `weight` (N x |U| x D, |U| <= min(V, N K)), the global mean from the mean row.
    Same value and gradient as the plain computation up to float rounding."""
    if target not in _TARGETS:
        raise ValueError(f"unknown target {target!r}; allowed: {', '.join(_TARGETS)}")
    _check_topk(topk_idx, hidden, "hidden")
    if not mask.any():
        return hidden.sum() * 0.0  # empty mask: a zero that keeps the graph
    h = hidden[mask]  # [N, D]
    idx = rows_at(topk_idx, mask if rows is None else rows, mask)  # [N, K]
    rows, inverse = torch.unique(idx, return_inverse=True)  # [U], [N, K]
    z_u = F.linear(h, weight[rows], None if bias is None else bias[rows])  # [N, U]
    picked = z_u.gather(-1, inverse)  # [N, K]
    if target in ("global_mean", "detached_mean"):
        mean = h @ weight.mean(0) + (0.0 if bias is None else bias.mean())
        c = mean if target == "global_mean" else mean.detach()
    elif target == "zero":
        c = picked.new_zeros(picked.shape[:-1])
    else:
        c = _TARGETS[target](None, picked)
    return ((picked - c.unsqueeze(-1)) ** 2).mean(-1).mean()


def palu_loss_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    ref_logits: torch.Tensor | None,
    topk_idx: torch.Tensor,
    labels: torch.Tensor,
    sensitive: torch.Tensor,
    n: int,
    target: str = "global_mean",
    kl_direction: str = "theta_ref",
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`palu_loss` from the shifted hidden states [B, T, D] and the output embedding `weight` [V, D] (+ `bias`):
    L_local by `local_entropy_hidden` on the prefix positions; logits (full vocabulary) only at the
    non-sensitive answer positions, for the KL to `ref_logits` (logits or log-probs, [B, T, V] or the rows of
    the answer positions, `rows_at`; None: no KL, a zero with the graph kept)."""
    _check_choice("kl_direction", kl_direction, KL_DIRECTIONS)
    answer = _answer(labels)
    local = local_entropy_hidden(hidden, weight, topk_idx, prefix_mask(sensitive & answer, n), target, bias,
                                 rows=answer)
    keep = answer & ~sensitive
    if ref_logits is None or not keep.any():
        return local, hidden.sum() * 0.0
    z = F.linear(hidden[keep], weight, bias)  # [M, V]
    ref = rows_at(ref_logits.detach(), answer, keep)
    p, q = (z, ref) if kl_direction == "theta_ref" else (ref, z)
    return local, kl_div_positions(p, q, _all_rows(z))
