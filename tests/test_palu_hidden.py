"""PALU's forget term from hidden states (`losses.palu_loss_hidden`, PALU `forget_from_hidden`) equals the plain
computation from full-vocabulary logits, value and gradient, on random tensors and on the smoke model."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from paperlib import methods
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import encoding, reference
from paperlib.engine import unlearn as U
from paperlib.engine.config import get_profile
from paperlib.engine.models import load_model, load_tokenizer
from paperlib.methods import losses as L

# The two paths sum the same float32 terms in other orders: values of up to ~8 agree to a few ulps, not bit for
# bit, so they are compared relatively (an absolute 1e-5 is only ~20 ulps at 8).
F32 = {"rel": 1e-5, "abs": 1e-6}


def _inputs(seed: int, bias: bool, dtype=torch.float32, b=3, t=7, d=16, v=50):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(b, t, d, generator=g, dtype=dtype).requires_grad_(True)
    w = (torch.randn(v, d, generator=g, dtype=dtype) / d**0.5).requires_grad_(True)
    bb = torch.randn(v, generator=g, dtype=dtype).requires_grad_(True) if bias else None
    ref = torch.log_softmax(torch.randn(b, t, v, generator=g, dtype=dtype), -1)
    labels = torch.randint(0, v, (b, t), generator=g)
    labels[:, :2] = L.IGNORE  # prompt positions
    sensitive = torch.rand(b, t, generator=g) < 0.5
    return h, w, bb, ref, labels, sensitive


def _grads(loss, tensors):
    return torch.autograd.grad(loss, [x for x in tensors if x is not None], allow_unused=True, retain_graph=True)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("target", L.TARGETS)
@pytest.mark.parametrize("k", [1, 5, 50])
@pytest.mark.parametrize("direction", L.KL_DIRECTIONS)
def test_hidden_equals_plain_on_random_tensors(bias, target, k, direction):
    h, w, b, ref, labels, sensitive = _inputs(k, bias)
    idx = L.topk_indices(ref, k)
    plain = L.palu_loss(F.linear(h, w, b), ref, idx, labels, sensitive, 2, target, direction)
    fast = L.palu_loss_hidden(h, w, ref, idx, labels, sensitive, 2, target, direction, bias=b)
    for a, c in zip(plain, fast):
        assert a.item() == pytest.approx(c.item(), **F32), (a.item(), c.item())
        for ga, gc in zip(_grads(a, (h, w, b)), _grads(c, (h, w, b))):
            assert torch.allclose(ga, gc, atol=1e-5, rtol=1e-5)


def test_hidden_empty_masks_give_a_zero_with_the_graph():
    h, w, _, ref, labels, _ = _inputs(0, False)
    none = torch.zeros_like(labels, dtype=torch.bool)
    local = L.local_entropy_hidden(h, w, L.topk_indices(ref, 3), none)
    assert local.item() == 0.0 and local.requires_grad
    local, kl = L.palu_loss_hidden(h, w, None, L.topk_indices(ref, 3), labels, none, 2)
    assert kl.item() == 0.0 and kl.requires_grad


def test_forget_from_hidden_equals_plain_on_the_smoke_model():
    profile = get_profile("smoke")
    path = pipeline.original_model(profile)
    tok = load_tokenizer(path)
    hp = methods.profile_hparams(profile, "PALU") | {"alpha": 1.0}
    plain = methods.make_method("PALU", hp | {"forget_from_hidden": False})
    fast = methods.make_method("PALU", hp | {"forget_from_hidden": True})
    assert methods.PALUHparams().forget_from_hidden and methods.hidden_path_applies(load_model(path))
    rows = U.forget_rows(profile, "forget10", plain.needs())
    retain = tofu.load_split(pipeline.benchmark_source(profile), "retain90").to_list()
    data = U.encode_samples(tok, profile.model.template, rows, retain, None, plain, profile.eval.max_length)
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)
    model = load_model(path)
    torch.manual_seed(0)
    with torch.no_grad():  # move the model away from the reference so the KL and its gradient are not zero
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ref = reference.CachedReference.build(load_model(path), data, plain.needs(), collate, batch_size=4)
    batch = collate([data[i] for i in (3, 0, 7, 1)])
    r = ref(batch)
    results = []
    for m in (plain, fast):
        model.zero_grad()
        loss, parts = m.loss(model, batch, r)
        loss.backward()
        results.append((loss.item(), {k: float(v) for k, v in parts.items()},
                        {n: p.grad.clone() for n, p in model.named_parameters()}))
    (la, pa, ga), (lb, pb, gb) = results
    assert la == pytest.approx(lb, **F32) and pa.keys() == pb.keys()
    assert pa["kl"] > 0 and pa["forget"] > 0
    for key in pa:
        assert pa[key] == pytest.approx(pb[key], **F32), key
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=1e-5, rtol=1e-4), name


class _ScaledHead(torch.nn.Module):
    """A head that is not a plain linear layer: logits = 2 (h W^T)."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, h):
        return 2 * self.linear(h)


def test_default_falls_back_to_the_logits_where_the_head_is_not_plain_linear():
    profile = get_profile("smoke")
    path = pipeline.original_model(profile)
    tok = load_tokenizer(path)
    hp = methods.profile_hparams(profile, "PALU") | {"alpha": 1.0}
    default, plain = methods.make_method("PALU", hp), methods.make_method("PALU", hp | {"forget_from_hidden": False})
    rows = U.forget_rows(profile, "forget10", plain.needs())
    retain = tofu.load_split(pipeline.benchmark_source(profile), "retain90").to_list()
    data = U.encode_samples(tok, profile.model.template, rows, retain, None, plain, profile.eval.max_length)
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)
    model = load_model(path)
    ref = reference.CachedReference.build(model, data, plain.needs(), collate, batch_size=4)
    model.lm_head = _ScaledHead(model.lm_head)  # the hidden path would ignore the factor 2
    assert not methods.hidden_path_applies(model)
    batch = collate([data[i] for i in (3, 0, 7, 1)])
    r = ref(batch)
    (a, pa), (b, pb) = default.loss(model, batch, r), plain.loss(model, batch, r)
    assert a.item() == b.item() and pa["forget"].item() == pb["forget"].item()
    with pytest.raises(ValueError, match="plain linear head"):
        default._loss_from_hidden(model, batch, r)
