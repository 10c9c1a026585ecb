"""The reference cache hands packed quantities over as the rows the losses read (`losses.rows_at`), equal to the
batch tensors at those rows; the KL retain term gives the same value from packed rows as the dense formula."""

from __future__ import annotations

from functools import partial

import torch

from paperlib import methods
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import encoding, reference
from paperlib.engine import unlearn as U
from paperlib.engine.config import get_profile
from paperlib.engine.models import load_model, load_tokenizer
from paperlib.methods import losses as L


def test_packed_quantities_are_the_batch_tensors_at_the_rows_the_losses_read():
    smoke = get_profile("smoke")
    m = methods.make_method("PALU", methods.profile_hparams(smoke, "PALU") | {"alpha": 1.0, "retain_loss": "kl"})
    needs = m.needs()
    path = pipeline.original_model(smoke)
    tok = load_tokenizer(path)
    source = pipeline.benchmark_source(smoke)
    data = U.encode_samples(tok, smoke.model.template, U.forget_rows(smoke, "forget10", needs),
                            tofu.load_split(source, "retain90").to_list(), None, m, smoke.eval.max_length)
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)
    model = load_model(path)
    cached = reference.CachedReference.build(model, data, needs, collate, batch_size=4)
    live = reference.LiveReference(model, needs)
    batch = collate([data[i] for i in (5, 0, 7)])  # other order and padding than the caching pass
    dense = reference.compute(model, batch, needs)
    packed = [n for n in needs.ref if reference.QUANTITIES[n].packed]
    assert sorted(packed) == ["forget.logprobs", "forget.topk", "retain.logprobs"]
    a, b = cached(batch), live(batch)
    for name in packed:
        q = reference.QUANTITIES[name]
        mask = q.rows.mask(batch[q.part])
        assert a[name].shape == b[name].shape == (int(mask.sum()), dense[name].shape[-1])
        torch.testing.assert_close(a[name], dense[name][mask])
        torch.testing.assert_close(b[name], dense[name][mask])
    assert a["forget.topk"].dtype == b["forget.topk"].dtype == torch.long


def test_kl_retain_term_from_packed_rows_equals_the_dense_formula():
    g = torch.Generator().manual_seed(0)
    part = {"input_ids": torch.ones(2, 5, dtype=torch.long),
            "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
            "labels": torch.tensor([[-100, 2, 3, 4, -100], [-100, -100, 1, 2, 3]])}
    logits = torch.randn(2, 5, 7, generator=g, dtype=torch.float64)
    ref = torch.log_softmax(torch.randn(2, 4, 7, generator=g, dtype=torch.float64), -1)

    class Fixed(torch.nn.Module):
        def forward(self, input_ids, attention_mask, output_hidden_states=False):
            return type("Out", (), {"logits": logits})()

    gd = methods.make_method("GD", {"retain_loss": "kl"})
    mask = methods.token_mask(part)
    old = L.kl_div_positions(ref, logits[:, :-1], mask)  # the formula before the packed layout
    for r in (ref, ref[mask]):
        torch.testing.assert_close(gd.retain_term(Fixed(), {"retain": part}, {"retain.logprobs": r}), old)
    assert old.item() > 0
