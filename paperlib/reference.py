"""The frozen reference model: run once per forget set before training, its quantities cached per sample.

Quantities (names used by `methods.Needs.ref`), batch-shaped as the losses read them (shifted space):
- "forget.topk"        long  [B, T-1, K]  top-K indices of the reference logits (PALU)
- "forget.logprobs"    float [B, T-1, V]  reference log-probabilities (PALU's KL, UnDIAL, NCE)
- "forget.gold_logits" float [B, T-1]     raw reference logit of the gold token (TPO)
- "forget.seq_nll"     float [B]          reference S(x), summed answer NLL (NPO, DPO)
- "idk.seq_nll"        float [B]          the same for the paired IdK answer (DPO)
- "retain.logprobs"    float [B, T-1, V]  reference log-probabilities of the retain sample (KL retain term)
- "retain.hidden"      float [B, T, D]    output of decoder layer `layer` on the retain sample (RMU)

`CachedReference` stores, per sample index, only the rows a loss reads (answer positions; every token
position for "retain.logprobs"; answer tokens for "retain.hidden") and rebuilds the batch tensors (zeros
elsewhere, which the losses mask out). `LiveReference` runs a frozen copy on every batch instead;
`make_reference` picks the cache unless its estimated size exceeds `ReferenceConfig.cache_gb`. The cache is
computed with the model about to be unlearned (identical to the reference before the first step), so a cached
run never holds a second copy of the model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from paperlib import losses as L
from paperlib.methods import Needs

QUANTITIES = ("forget.topk", "forget.logprobs", "forget.gold_logits", "forget.seq_nll", "idk.seq_nll",
              "retain.logprobs", "retain.hidden")


@dataclass(frozen=True)
class ReferenceConfig:
    """How reference quantities are obtained."""

    cache_gb: float = 8.0  # memory budget of the per-sample cache; above it the reference runs live each step
    batch_size: int = 32  # batch size of the one caching pass
    mode: str = "auto"  # "auto" (cache if it fits cache_gb), "cache" or "live"

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "cache", "live"):
            raise ValueError(f"reference mode {self.mode!r}; allowed: auto, cache, live")
        if not self.cache_gb >= 0 or self.batch_size < 1:
            raise ValueError(f"need cache_gb >= 0 and batch_size >= 1; got {self}")


def _check_needs(needs: Needs) -> None:
    unknown = sorted(set(needs.ref) - set(QUANTITIES))
    if unknown:
        raise ValueError(f"unknown reference quantities {unknown}; allowed: {', '.join(QUANTITIES)}")


@torch.no_grad()
def compute(ref_model: torch.nn.Module, batch: dict, needs: Needs) -> dict[str, torch.Tensor]:
    """Every quantity of `needs.ref` for a collated batch, dense and batch-shaped, from one forward pass
    per part (forget / idk / retain) of the frozen model."""
    _check_needs(needs)
    out: dict[str, torch.Tensor] = {}
    for part in ("forget", "idk", "retain"):
        names = [q for q in needs.ref if q.startswith(part + ".")]
        if not names:
            continue
        p = batch[part]
        res = ref_model(input_ids=p["input_ids"], attention_mask=p["attention_mask"],
                        output_hidden_states=f"{part}.hidden" in names)
        z, y = L.shift(res.logits.float(), p["labels"])
        for name in names:
            kind = name.split(".", 1)[1]
            if kind == "topk":
                out[name] = L.topk_indices(z, needs.topk)
            elif kind == "logprobs":
                out[name] = torch.log_softmax(z, -1)
            elif kind == "gold_logits":
                out[name] = L.gold_logits(z, y)
            elif kind == "seq_nll":
                out[name] = L.seq_nll_sum(z, y)
            elif kind == "hidden":
                out[name] = res.hidden_states[needs.layer + 1].float()
    return out


def _rows_mask(name: str, part: dict) -> torch.Tensor | None:
    """Positions [B, T'] whose rows of quantity `name` the losses read (None: a per-sample scalar)."""
    kind = name.split(".", 1)[1]
    if kind == "seq_nll":
        return None
    if kind == "hidden":
        return part["labels"] != L.IGNORE
    if name == "retain.logprobs":
        return part["attention_mask"][:, 1:].bool()
    return part["labels"][:, 1:] != L.IGNORE


class LiveReference:
    """Runs the frozen model on every training batch (the fallback when a cache would not fit)."""

    mode = "live"

    def __init__(self, ref_model: torch.nn.Module, needs: Needs) -> None:
        _check_needs(needs)
        self.model, self.needs = ref_model.eval().requires_grad_(False), needs

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        if not self.needs.ref:
            return {}
        device = batch["forget"]["input_ids"].device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        return compute(self.model, batch, self.needs)


class CachedReference:
    """Per-sample reference rows computed once (`build`) and re-assembled into batch tensors."""

    mode = "cache"

    def __init__(self, needs: Needs, rows: dict[int, dict[str, torch.Tensor]]) -> None:
        self.needs, self.rows = needs, rows

    @classmethod
    def build(cls, ref_model: torch.nn.Module, data: Sequence[dict], needs: Needs,
              collate: Callable[[list[dict]], dict], batch_size: int = 32) -> CachedReference:
        """Run `ref_model` once over `data` (samples with an int `index`) and keep the rows the losses read."""
        _check_needs(needs)
        device = next(ref_model.parameters()).device
        rows: dict[int, dict[str, torch.Tensor]] = {}
        for i in range(0, len(data), batch_size):
            batch = _to(collate(list(data[i:i + batch_size])), device)
            dense = compute(ref_model, batch, needs)
            for b, idx in enumerate(batch["index"].tolist()):
                rows[idx] = {}
                for name, value in dense.items():
                    mask = _rows_mask(name, batch[name.split(".")[0]])
                    v = value[b] if mask is None else value[b][mask[b]]
                    if name == "forget.topk":
                        v = v.to(torch.int32)
                    rows[idx][name] = v.cpu()
        return cls(needs, rows)

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        indices = batch["index"].tolist()
        for name in self.needs.ref:
            part = batch[name.split(".")[0]]
            mask = _rows_mask(name, part)
            device = part["input_ids"].device
            if mask is None:
                out[name] = torch.stack([self.rows[i][name] for i in indices]).to(device)
                continue
            first = self.rows[indices[0]][name]
            dtype = torch.long if name == "forget.topk" else first.dtype
            dense = torch.zeros((*mask.shape, *first.shape[1:]), dtype=dtype, device=device)
            for b, i in enumerate(indices):
                dense[b][mask[b]] = self.rows[i][name].to(device, dtype)
            out[name] = dense
        return out

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for r in self.rows.values() for t in r.values())


def _to(batch: dict, device: torch.device) -> dict:
    return {k: _to(v, device) if isinstance(v, dict) else v.to(device) for k, v in batch.items()}


def estimate_bytes(data: Sequence[dict], needs: Needs, vocab_size: int, hidden_size: int) -> int:
    """Bytes a `CachedReference` of `data` would hold (from the encoded samples, before any forward pass)."""
    _check_needs(needs)
    total = 0
    for s in data:
        answer = sum(1 for y in s["forget"]["labels"][1:] if y != L.IGNORE)
        for name in needs.ref:
            part = s[name.split(".")[0]]
            if name == "forget.topk":
                total += answer * needs.topk * 4
            elif name == "forget.logprobs":
                total += answer * vocab_size * 4
            elif name == "forget.gold_logits":
                total += answer * 4
            elif name == "retain.logprobs":
                total += (len(part["input_ids"]) - 1) * vocab_size * 4
            elif name == "retain.hidden":
                total += sum(1 for y in part["labels"] if y != L.IGNORE) * hidden_size * 4
            else:
                total += 4
    return total


def choose_mode(data: Sequence[dict], needs: Needs, vocab_size: int, hidden_size: int,
                cfg: ReferenceConfig = ReferenceConfig()) -> str:
    """"cache" or "live": the cache unless `cfg.mode` says otherwise or (auto) its estimated size exceeds
    `cfg.cache_gb`."""
    if cfg.mode != "auto":
        return cfg.mode
    return "cache" if estimate_bytes(data, needs, vocab_size, hidden_size) <= cfg.cache_gb * 2**30 else "live"


def make_reference(model: torch.nn.Module, data: Sequence[dict], needs: Needs, collate: Callable[[list[dict]], dict],
                   cfg: ReferenceConfig = ReferenceConfig(),
                   load_frozen: Callable[[], torch.nn.Module] | None = None) -> CachedReference | LiveReference:
    """The reference for one run. `model` is the model about to be unlearned, still equal to the reference: the
    one caching pass runs on it (no second copy in memory). Live mode runs `load_frozen()` (default: a deep copy
    of `model`) on every batch. A method without reference quantities gets an empty cache."""
    _check_needs(needs)
    if not needs.ref:
        return CachedReference(needs, {})
    config = model.config
    if choose_mode(data, needs, config.vocab_size, config.hidden_size, cfg) == "live":
        frozen = load_frozen() if load_frozen is not None else copy.deepcopy(model)
        return LiveReference(frozen, needs)
    was_training = model.training
    cached = CachedReference.build(model.eval(), data, needs, collate, cfg.batch_size)
    model.train(was_training)
    return cached
