"""1b and 3: PALU's forget term vs the full-vocabulary forget losses, and PALU's term from hidden states.

1b: forward + backward of each loss from a logits tensor [8, 256, V] (a leaf that requires grad, allocated
before timing): PALU's local entropy for K in {1, 100, 1000, 5000} (K <= V), negated CE, PDU's margin and
Unilogit's KL, for V in {mini, 32000, 128256}. The top-K indices are given (a reference cache holds them).
3: PALU's term computed from the hidden states h [8, 256, D] and the output embedding W [V, D]: plain = the
logits h W^T then `local_entropy` (what a forward pass does), hidden = `local_entropy_hidden` (the top-K rows of
W only); backward into h and W in both. D = 256 (CPU budget); prefix positions: 8 per row (3 %).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from common import median, timed

from paperlib.methods import losses as L

BATCH, SEQ, PREFIX_PER_ROW = 8, 256, 8


def _inputs(v: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, v, (BATCH, SEQ), generator=g)
    mask = torch.zeros(BATCH, SEQ, dtype=torch.bool)
    for b in range(BATCH):
        mask[b, torch.randperm(SEQ, generator=g)[:PREFIX_PER_ROW]] = True
    return g, labels, mask


def _topk(v: int, k: int, mask: torch.Tensor, g) -> torch.Tensor:
    """[B, T, K] indices, K distinct random rows at masked positions (0..K-1 elsewhere)."""
    idx = torch.arange(k).expand(BATCH, SEQ, k).clone()
    n = int(mask.sum())
    idx[mask] = torch.multinomial(torch.ones(n, v), k, replacement=False, generator=g)
    return idx


def _run(fn, leaves, repeats):
    def once():
        loss = fn()
        loss.backward()
        for x in leaves:
            x.grad = None

    if repeats == 1:  # the largest V: one call, timed and measured together
        dt, peak = timed(once, memory=True)
        return {"s": dt, "peak_bytes": peak}
    once()  # warm-up
    times = [timed(once)[0] for _ in range(repeats)]
    mems = [timed(once, memory=True)[1] for _ in range(2)]
    return {"s": median(times), "peak_bytes": median(mems)}


def _forget_terms_at(v: int, ks, reps: int) -> list[dict]:
    g, labels, mask = _inputs(v)
    z = torch.randn(BATCH, SEQ, v, generator=g).requires_grad_(True)
    terms = {"negated CE": lambda: -L.nll(z, labels), "PDU margin": lambda: L.pdu_margin(z, labels),
             "Unilogit KL": lambda: L.unilogit_loss(z, labels)}
    for k in ks:
        if k <= v:
            idx = _topk(v, k, mask, g)
            terms[f"PALU K={k}"] = lambda idx=idx: L.local_entropy(z, idx, mask)
    rows = []
    for name, fn in terms.items():
        r = _run(fn, [z], reps)
        rows.append({"V": v, "term": name, **r})
        print(f"  loss V={v:6d} {name:12s} {r['s'] * 1e3:8.1f} ms  {r['peak_bytes'] / 2**20:8.1f} MiB", flush=True)
    return rows


def bench_forget_terms(vocab_sizes, ks=(1, 100, 1000, 5000), repeats=3) -> list[dict]:
    return [r for v in vocab_sizes for r in _forget_terms_at(v, ks, 1 if v > 100_000 else repeats)]


def _hidden_at(v: int, ks, dim: int, reps: int) -> list[dict]:
    g, labels, mask = _inputs(v, seed=1)
    h = torch.randn(BATCH, SEQ, dim, generator=g).requires_grad_(True)
    w = (torch.randn(v, dim, generator=g) / dim**0.5).requires_grad_(True)
    rows = []
    for k in ks:
        idx = _topk(v, k, mask, g)
        plain = _run(lambda idx=idx: L.local_entropy(F.linear(h, w), idx, mask), [h, w], reps)
        hidden = _run(lambda idx=idx: L.local_entropy_hidden(h, w, idx, mask), [h, w], reps)
        rows.append({"V": v, "K": k, "D": dim, "plain_s": plain["s"], "hidden_s": hidden["s"],
                     "plain_peak_bytes": plain["peak_bytes"], "hidden_peak_bytes": hidden["peak_bytes"],
                     "speedup": plain["s"] / hidden["s"]})
        print(f"  hidden V={v:6d} K={k:5d} plain {plain['s'] * 1e3:8.1f} ms hidden {hidden['s'] * 1e3:8.1f} ms"
              f"  x{plain['s'] / hidden['s']:.1f}", flush=True)
    return rows


def bench_hidden(vocab_sizes=(32000, 128256), ks=(100, 1000, 5000), dim=256, repeats=3) -> list[dict]:
    return [r for v in vocab_sizes for r in _hidden_at(v, ks, dim, 1 if v > 100_000 else repeats)]
