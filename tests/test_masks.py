"""Localized-unlearning masks (methods.masks), masked training (engine.train), AUES (benchmarks.tofu.metrics) and
MU95 (paperlib.studies.localization) on a hand-built 2-layer tiny Llama: every score against a direct computation."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from paperlib.benchmarks.tofu import metrics
from paperlib.benchmarks.tofu.pipeline import nll_loss
from paperlib.cli import main
from paperlib.engine import encoding
from paperlib.engine.config import TrainConfig
from paperlib.engine.constants import IGNORE
from paperlib.engine.errors import PaperlibError
from paperlib.engine.train import Loop, train
from paperlib.methods import masks
from paperlib.studies.localization import mu95

V = 40


def tiny(seed: int = 0, hidden: int = 16) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=V, hidden_size=hidden, intermediate_size=24, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg).eval()


def samples(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        length = int(torch.randint(6, 11, (1,), generator=g))
        prompt = int(torch.randint(2, 4, (1,), generator=g))
        ids = torch.randint(3, V, (length,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [IGNORE] * prompt + ids[prompt:]})
    return out


COLLATE = partial(encoding.collate, pad_id=0)
FORGET, RETAIN = samples(5, 1), samples(6, 2)


def direct_grad(model, data) -> dict[str, torch.Tensor]:
    """sum over samples, one at a time, of the gradient of HF's own mean answer-token loss."""
    params = dict(model.named_parameters())
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for s in data:
        ids = torch.tensor([s["input_ids"]])
        loss = model(input_ids=ids, labels=torch.tensor([s["labels"]])).loss
        for (n, _), g in zip(params.items(), torch.autograd.grad(loss, list(params.values()), allow_unused=True)):
            if g is not None:
                total[n] += g
    return total


def close(a: dict, b: dict, rtol=1e-4, atol=1e-6) -> None:
    assert a.keys() == b.keys()
    for n in a:
        torch.testing.assert_close(a[n].float(), b[n].float(), rtol=rtol, atol=atol, msg=n)


# ----------------------------------------------------------------------------------------- scores
@pytest.fixture(scope="module")
def model():
    return tiny()


@pytest.fixture(scope="module")
def grads(model):
    return direct_grad(model, FORGET), direct_grad(model, RETAIN)


def scores(model, attribution, **kw):
    return masks.attribution_scores(model, masks.MaskConfig(attribution=attribution, **kw), FORGET, RETAIN, COLLATE)


def test_gradient_and_snip_and_wagle_equal_direct(model, grads):
    gf, gr = grads
    theta = {n: p.detach() for n, p in model.named_parameters()}
    close(scores(model, "gradient"), {n: g.abs() for n, g in gf.items()})
    close(scores(model, "snip"), {n: (g * theta[n]).abs() for n, g in gf.items()})
    close(scores(model, "wagle"), {n: ((theta[n] - gr[n] / 1e-3) * gf[n]).abs() for n in gf}, rtol=1e-3, atol=1e-4)
    assert all(p.grad is None and p.requires_grad for p in model.parameters())  # model left as it was


def test_memflex_equals_direct_ranking(model, grads):
    gf, gr = grads
    units = []  # (name, row, cos, |g_f|)
    for n, g in gf.items():
        f, r = (g.reshape(1, -1), gr[n].reshape(1, -1)) if g.dim() < 2 else (g, gr[n])
        for i in range(f.shape[0]):
            nf, nr = float(f[i].norm()), float(r[i].norm())
            cos = float(f[i] @ r[i]) / (nf * nr) if nf > 0 and nr > 0 else 0.0
            units.append((n, i, cos, nf))
    u = len(units)
    by_cos = {k: u - 1 - pos for pos, k in enumerate(sorted(range(u), key=lambda k: units[k][2]))}
    by_mag = {k: pos for pos, k in enumerate(sorted(range(u), key=lambda k: units[k][3]))}
    expect = {n: torch.zeros_like(g) for n, g in gf.items()}
    for k, (n, i, _cos, _nf) in enumerate(units):
        if gf[n].dim() < 2:
            expect[n][:] = by_cos[k] + by_mag[k]
        else:
            expect[n][i] = by_cos[k] + by_mag[k]
    got = scores(model, "memflex")
    # ranks of near-equal cosines may swap between float paths: compare where the direct cosines are distinct
    agree = sum(torch.equal(got[n].float(), expect[n]) for n in gf)
    assert agree >= len(gf) - 1
    product = scores(model, "memflex", memflex_combine="product")
    n, i, cos, nf = units[3]
    assert math.isclose(float(product[n].reshape(product[n].shape[0], -1)[i, 0]), (1 - cos) / 2 * nf, rel_tol=1e-4)


def test_activation_equals_direct(model):
    got = scores(model, "activation")
    seen = {}
    hooks = [layer.mlp.register_forward_pre_hook(lambda m, x, i=i: seen.__setitem__(i, x[0]))
             for i, layer in enumerate(model.model.layers)]
    sums, count = {}, 0
    with torch.no_grad():
        for s in FORGET:
            model(input_ids=torch.tensor([s["input_ids"]]))
            answer = torch.tensor(s["labels"]) != IGNORE
            count += int(answer.sum())
            for i, layer in enumerate(model.model.layers):
                mlp = layer.mlp
                h = mlp.act_fn(mlp.gate_proj(seen[i][0])) * mlp.up_proj(seen[i][0])
                sums[i] = sums.get(i, 0) + h[answer].sum(0)
    for h in hooks:
        h.remove()
    assert set(got) == {f"model.layers.{i}.mlp.down_proj.weight" for i in range(2)}
    for i, layer in enumerate(model.model.layers):
        w = layer.mlp.down_proj.weight.detach()
        expect = ((sums[i] / count).abs() * w.norm(dim=0)).expand_as(w)
        torch.testing.assert_close(got[f"model.layers.{i}.mlp.down_proj.weight"], expect, rtol=1e-4, atol=1e-6)
    mask = masks.make_mask(model, masks.MaskConfig(attribution="activation", ratio=0.25, scope="per_tensor"),
                           FORGET, RETAIN, COLLATE)
    for m in mask.values():  # 0.25 * 24 neurons = 6 whole columns
        assert m.all(dim=0).sum() == 6 and m.sum() == 6 * m.shape[0]


def test_random_scores_and_candidates(model):
    got = scores(model, "random_down", seed=3)
    g = torch.Generator().manual_seed(3)
    close(got, {n: torch.rand(model.get_parameter(n).shape, generator=g) for n in got})
    assert len(scores(model, "random")) == len(list(model.parameters()))
    linear = masks.candidate_names(model, "linear")
    assert len(linear) == 14 and all(".layers." in n for n in linear)


# ----------------------------------------------------------------------------------------- selection
@pytest.mark.parametrize("scope", ["global", "per_tensor"])
@pytest.mark.parametrize("ratio", [0.1, 0.37, 1.0])
def test_ratio_and_complement(model, scope, ratio):
    cfg = masks.MaskConfig(attribution="gradient", ratio=ratio, scope=scope)
    mask = masks.make_mask(model, cfg, FORGET, RETAIN, COLLATE)
    total = sum(m.numel() for m in mask.values())
    if scope == "per_tensor":
        assert all(abs(int(m.sum()) - ratio * m.numel()) <= 0.5 for m in mask.values())
    else:
        assert abs(sum(int(m.sum()) for m in mask.values()) - ratio * total) <= 0.5
    if ratio > 0.5:
        with pytest.raises(PaperlibError, match="ratio <= 0.5"):
            masks.MaskConfig(attribution="gradient", ratio=ratio, kind="random_complement")
        return
    comp = masks.make_mask(model, masks.MaskConfig(attribution="gradient", ratio=ratio, scope=scope,
                                                   kind="random_complement"), FORGET, RETAIN, COLLATE)
    assert not any((mask[n] & comp[n]).any() for n in mask)
    if scope == "per_tensor":
        assert all(int(mask[n].sum()) == int(comp[n].sum()) for n in mask)
    assert sum(int(m.sum()) for m in mask.values()) == sum(int(m.sum()) for m in comp.values())


def test_random_complement_of_a_random_mask(model):
    normal = masks.make_mask(model, masks.MaskConfig(attribution="random_down", ratio=0.1, seed=5))
    comp = masks.make_mask(model, masks.MaskConfig(attribution="random_down", ratio=0.1, seed=5,
                                                   kind="random_complement"))
    assert set(normal) == set(comp) and not any((normal[n] & comp[n]).any() for n in normal)
    assert sum(int(m.sum()) for m in normal.values()) == sum(int(m.sum()) for m in comp.values()) == 77  # 0.1*768


# ----------------------------------------------------------------------------------------- masked training
def test_masked_training_with_weight_decay_is_bit_exact_outside_the_mask():
    model = tiny(1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=g) < 0.3 for n, p in model.named_parameters() if "mlp" in n}
    cfg = TrainConfig(lr=1e-2, epochs=2, batch_size=2, weight_decay=0.5, warmup_epochs=0.0, max_grad_norm=1.0)
    result = train(model, FORGET + RETAIN, nll_loss, cfg, COLLATE, update_mask=mask, loop=Loop(log_every=1))
    assert result.diverged_at is None and len(result.steps) == 12
    for n, p in model.named_parameters():
        bits, bits0 = p.detach().view(torch.int32), before[n].view(torch.int32)
        keep = ~mask[n] if n in mask else torch.ones_like(bits, dtype=torch.bool)
        assert torch.equal(bits[keep], bits0[keep]), n
        if n in mask:
            assert (p.detach()[mask[n]] != before[n][mask[n]]).float().mean() > 0.9, n
    # an all-True mask trains like no mask at all (weight decay included), up to rounding
    a, b = tiny(2), tiny(2)
    train(a, FORGET, nll_loss, cfg, COLLATE, update_mask={n: torch.ones_like(p, dtype=torch.bool)
                                                         for n, p in a.named_parameters()})
    train(b, FORGET, nll_loss, cfg, COLLATE)
    close(dict(a.named_parameters()), dict(b.named_parameters()), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------------------- AUES, MU95
def test_aues_of_known_polylines():
    fs, rs = [0.0, 0.5, 0.8, 0.4], [1.0, 0.8, 0.2, 0.5]  # (0.4, 0.5) is beaten by (0.5, 0.8): left out
    assert math.isclose(metrics.aues(fs, rs), 0.5 * 1.8 / 2 + 0.3 * 1.0 / 2)  # 0.45 + 0.15
    assert math.isclose(metrics.aues(fs, rs, close="line"), 0.6 + 0.2 * 0.2 / 2)
    assert math.isclose(metrics.aues([0.2], [0.9]), 0.18)  # flat from FS = 0, drop after 0.2
    assert math.isclose(metrics.aues([0.2], [0.9], close="line"), 0.18 + 0.8 * 0.9 / 2)
    assert math.isclose(metrics.aues([0.0, 1.0], [1.0, 1.0]), 1.0)
    with pytest.raises(PaperlibError, match="close"):
        metrics.aues(fs, rs, close="step")
    with pytest.raises(PaperlibError, match=r"\[0, 1\]"):
        metrics.aues([1.2], [0.5])


def test_mu95_on_a_hand_made_table():
    t = pd.DataFrame({"lr": [np.nan, 1e-3, 1e-3, 3e-3, 3e-3], "epoch": [0, 1, 2, 1, 2],
                      "FQ": [1e-5, 1e-3, 0.2, 0.5, 0.9], "MU": [0.80, 0.79, 0.77, 0.76, 0.5],
                      "FS": [0.0, 0.3, 0.5, 0.7, 0.95], "status": ["initial"] + ["completed"] * 4})
    got = mu95(t, 0.80)  # threshold 0.76: the 3e-3 epoch-2 point (MU 0.5) does not qualify
    assert got == {"MU95_FQ": 0.5, "MU95_FS": 0.7, "MU95_lr": 3e-3, "MU95_epoch": 1}
    assert mu95(t, 0.9)["MU95_FQ"] != mu95(t, 0.9)["MU95_FQ"]  # nothing qualifies: NaN


# ----------------------------------------------------------------------------------------- files and bad input
@pytest.mark.parametrize("bad, match", [({"ratio": 0}, "ratio"), ({"ratio": 1.5}, "ratio"),
                                        ({"ratio": -0.1}, "ratio"), ({"attribution": "magic"}, "attribution"),
                                        ({"scope": "layer"}, "scope"), ({"kind": "inverse"}, "kind"),
                                        ({"attribution": "activation", "params": "all"}, "down")])
def test_bad_config_is_one_error(bad, match):
    with pytest.raises(PaperlibError, match=match):
        masks.MaskConfig(**bad)


def test_save_load_and_refusals(model, tmp_path):
    from safetensors.torch import load_file, save_file

    mask = masks.make_mask(model, masks.MaskConfig(attribution="random", ratio=0.2))
    out = masks.save_mask(mask, tmp_path / "m", model, {"config": {"attribution": "random"}})
    back, info = masks.load_mask(out, model)
    assert back.keys() == mask.keys() and all(torch.equal(back[n], mask[n]) for n in mask)
    assert info["config"] == {"attribution": "random"} and info["summary"]["tensors"] == len(mask)
    with pytest.raises(PaperlibError, match="another architecture"):
        masks.load_mask(out, tiny(hidden=8))
    partial_mask = load_file(str(out / masks.MASK_FILE))
    partial_mask.pop(next(iter(partial_mask)))
    save_file(partial_mask, str(out / masks.MASK_FILE))
    with pytest.raises(PaperlibError, match="missing"):
        masks.load_mask(out)
    with pytest.raises(PaperlibError, match="lacks"):
        masks.load_mask(tmp_path / "nothing")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(PaperlibError, match="holds no mask"):
        masks.save_mask(mask, tmp_path / "busy", model)


@pytest.mark.parametrize("argv, match", [
    (["mask", "--attribution", "wagle", "--ratio", "0", "--profile", "smoke"], "ratio"),
    (["mask", "--attribution", "wagle", "--ratio", "1.5", "--profile", "smoke"], "ratio"),
    (["mask", "--attribution", "magic", "--profile", "smoke"], "attribution"),
    (["unlearn", "--method", "GA", "--profile", "smoke", "--mask", "{tmp}/no-mask"], "lacks"),
])
def test_cli_bad_input_is_one_line_before_compute(argv, match, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PAPERLIB_CACHE", str(tmp_path / "cache"))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as err:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert err.value.code == 2 and len(lines) == 1 and match in lines[0]
    assert not (tmp_path / "cache").exists()  # nothing computed, not even the benchmark
