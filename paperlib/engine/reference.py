"""The frozen reference model: run once per forget set before training, its quantities cached per sample.

`QUANTITIES` is the one table of reference quantities (names used by `methods.Needs.ref`): for each, which
part of the batch it reads (forget / idk / retain), how to compute it from one forward pass of the frozen
model, which rows a loss reads (and so which rows the cache keeps), and its bytes per row (the memory
estimate). Batch-shaped as the losses read them (shifted space unless said otherwise):
- "forget.topk"        long  [M, K]       top-K indices of the reference logits at the M answer positions
                                          (PALU; packed)
- "forget.logprobs"    float [M, V]       reference log-probabilities at the M answer positions (PALU's KL,
                                          UnDIAL, NCE; packed: the rows in row-major order, `losses.rows_at`)
- "forget.gold_logits" float [B, T-1]     raw reference logit of the gold token (TPO)
- "forget.seq_nll"     float [B]          reference S(x), summed answer NLL (NPO, DPO)
- "idk.seq_nll"        float [B]          the same for the paired IdK answer (DPO)
- "retain.logprobs"    float [M, V]       reference log-probabilities at the retain sample's M token positions
                                          (KL retain term; packed)
- "retain.hidden"      float [B, T, D]    output of decoder layer `layer` on the retain sample (RMU; unshifted)
A new quantity is one more `Quantity` row.

`CachedReference` stores, per sample index, only the rows a loss reads; a packed quantity is handed over as
those rows concatenated in batch order, the others as batch tensors (zeros elsewhere, which the losses mask
out). `LiveReference` runs a frozen copy on every batch instead;
`make_reference` picks the cache unless its estimated size exceeds `ReferenceConfig.cache_gb`. The cache is
computed with the model about to be unlearned (identical to the reference before the first step), so a cached
run never holds a second copy of the model.

Cached and live values agree to float32 rounding, not bit for bit: the caching pass runs the frozen model on
batches of `ReferenceConfig.batch_size` samples in data order, padded to the longest of them, the live reference
on each training batch (other samples, other padding). Other tensor shapes let the CPU / GPU kernels pick other
blockings and reduction orders for the same sample's matmuls, softmax and sums, so a quantity can differ in its
last bits. Measured on the smoke profile (torch 2.13 CPU): with AVX-512 kernels sample by sample identical; with
`ATEN_CPU_CAPABILITY=default` forget sample 0's S(x) is 218.356018 in a batch of 3 (padded to 64 tokens) and
218.356003 in the caching batch of 10 (padded to 72), one float32 ulp, which moves an NPO loss of ~20 by ~1.5e-5.
Compare cached and live results with a relative tolerance, never bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from paperlib.engine.constants import IGNORE
from paperlib.methods import Needs, capture_layer
from paperlib.methods import losses as L


# ----------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Rows:
    """Which rows of a quantity the losses read: `mask(collated part)` -> bool [B, T'] (None: one value per
    sample) and `count(encoded part)` -> how many rows one sample has (for the memory estimate)."""

    mask: Callable[[dict], torch.Tensor | None]
    count: Callable[[dict], int]


ANSWER = Rows(lambda p: p["labels"][:, 1:] != IGNORE,  # shifted positions predicting an answer token
              lambda s: sum(1 for y in s["labels"][1:] if y != IGNORE))
TOKENS = Rows(lambda p: p["attention_mask"][:, 1:].bool(),  # shifted positions predicting a real token
              lambda s: len(s["input_ids"]) - 1)
ANSWER_TOKENS = Rows(lambda p: p["labels"] != IGNORE,  # unshifted answer tokens (layer outputs)
                     lambda s: sum(1 for y in s["labels"] if y != IGNORE))
SAMPLE = Rows(lambda p: None, lambda s: 1)


@dataclass(frozen=True)
class Pass:
    """One forward pass of the frozen model on a part: shifted float32 logits and labels, and the output of
    decoder layer `needs.layer` when a quantity asked for it."""

    z: torch.Tensor
    y: torch.Tensor
    hidden: torch.Tensor | None
    needs: Needs


@dataclass(frozen=True)
class Quantity:
    """One reference quantity: `compute(Pass)` -> dense batch tensor; `rows` kept by the cache;
    `row_bytes(vocab_size, hidden_size, needs)` per row; `store` the dtype the cache keeps (None: as
    computed) and `load` the dtype handed to the loss; `hidden`: the pass must hook the decoder layer; `packed`:
    the loss reads the rows of `rows.mask` only (`losses.rows_at`), so they are handed over as such."""

    part: str
    compute: Callable[[Pass], torch.Tensor]
    rows: Rows
    row_bytes: Callable[[int, int, Needs], int]
    store: torch.dtype | None = None
    load: torch.dtype | None = None
    hidden: bool = False
    packed: bool = False  # handed to the loss as its rows [M, ...] (row-major order, `losses.rows_at`), not dense


def _logprobs(p: Pass) -> torch.Tensor:
    return torch.log_softmax(p.z, -1)


def _seq_nll(p: Pass) -> torch.Tensor:
    return L.seq_nll_sum(p.z, p.y)


QUANTITIES: dict[str, Quantity] = {
    "forget.topk": Quantity("forget", lambda p: L.topk_indices(p.z, p.needs.topk), ANSWER,
                            lambda v, d, n: n.topk * 4, store=torch.int32, load=torch.long, packed=True),
    "forget.logprobs": Quantity("forget", _logprobs, ANSWER, lambda v, d, n: v * 4, packed=True),
    "forget.gold_logits": Quantity("forget", lambda p: L.gold_logits(p.z, p.y), ANSWER, lambda v, d, n: 4),
    "forget.seq_nll": Quantity("forget", _seq_nll, SAMPLE, lambda v, d, n: 4),
    "idk.seq_nll": Quantity("idk", _seq_nll, SAMPLE, lambda v, d, n: 4),
    "retain.logprobs": Quantity("retain", _logprobs, TOKENS, lambda v, d, n: v * 4, packed=True),
    "retain.hidden": Quantity("retain", lambda p: p.hidden.float(), ANSWER_TOKENS, lambda v, d, n: d * 4,
                              hidden=True),
}
PARTS = ("forget", "idk", "retain")


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
    for part in PARTS:
        names = [q for q in needs.ref if QUANTITIES[q].part == part]
        if not names:
            continue
        p = batch[part]
        hook = any(QUANTITIES[q].hidden for q in names)
        with capture_layer(ref_model, needs.layer) if hook else contextlib.nullcontext([]) as seen:
            logits = ref_model(input_ids=p["input_ids"], attention_mask=p["attention_mask"]).logits
        z, y = L.shift(logits.float(), p["labels"])
        fwd = Pass(z, y, seen[0] if seen else None, needs)
        for name in names:
            out[name] = QUANTITIES[name].compute(fwd)
    return out


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
        out = compute(self.model, batch, self.needs)
        for name, value in out.items():
            q = QUANTITIES[name]
            if q.packed:
                out[name] = value[q.rows.mask(batch[q.part])]
        return out


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
                    q = QUANTITIES[name]
                    mask = q.rows.mask(batch[q.part])
                    v = value[b] if mask is None else value[b][mask[b]]
                    rows[idx][name] = (v if q.store is None else v.to(q.store)).cpu()
        return cls(needs, rows)

    def __call__(self, batch: dict) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        indices = batch["index"].tolist()
        for name in self.needs.ref:
            q = QUANTITIES[name]
            part = batch[q.part]
            mask = q.rows.mask(part)
            device = part["input_ids"].device
            if mask is None:
                out[name] = torch.stack([self.rows[i][name] for i in indices]).to(device)
                continue
            if q.packed:
                out[name] = torch.cat([self.rows[i][name] for i in indices]).to(device, q.load)
                continue
            first = self.rows[indices[0]][name]
            dtype = q.load or first.dtype
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
        for name in needs.ref:
            q = QUANTITIES[name]
            total += q.rows.count(s[q.part]) * q.row_bytes(vocab_size, hidden_size, needs)
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
