"""paperlib.methods, engine.reference and paperlib.engine.unlearn on the smoke profile (seconds): the registry and
its defaults, bad input caught before any compute, reference cache == live reference at every step, PDU's
dual variable, divergence, the update mask, LoRA and the `paperlib unlearn` command."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from functools import partial

import pytest
import torch

from paperlib import methods
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import pipeline
from paperlib.cli import main as cli_main
from paperlib.engine import encoding, reference
from paperlib.engine import unlearn as U
from paperlib.engine.config import get_profile
from paperlib.engine.models import load_model, load_tokenizer
from paperlib.engine.unlearn import RunOptions

REQUIRED = ("GA", "GD", "NPO", "SimNPO", "DPO", "WGA", "TPO", "PDU", "UnDIAL", "Unilogit", "RMU", "CE-U", "PALU")


@pytest.fixture(scope="module")
def smoke():
    return get_profile("smoke")


@pytest.fixture
def no_compute(monkeypatch):
    """Fail the test if an unlearning run gets as far as loading models or training."""

    def boom(*args, **kwargs):
        raise AssertionError("compute started before the bad input was reported")

    monkeypatch.setattr(U, "_build", boom)


# Cached and live reference quantities agree to float32 rounding only (other batch shapes, other kernel reduction
# orders: see paperlib/engine/reference.py): a 1-ulp difference of one sample's reference S(x) ~ 300 (3e-5) moves an NPO
# loss of ~20 by up to 3e-5, measured 1.5e-5 with ATEN_CPU_CAPABILITY=default. So losses are compared relatively:
# 1e-5 is ~80 float32 ulps of the loss and several ulps of every sample's S(x), while a real cache bug (wrong
# rows, a quantity stored in half precision) moves the loss by 1e-3 relative or more.
F32_LOSS = {"rel": 1e-5, "abs": 1e-6}


def run_steps(profile, method: str, **overrides) -> tuple[dict, list[dict]]:
    run = U.unlearn(profile, method, "forget10", overrides=overrides,
                    options=RunOptions(force=True, eval_every_epoch=False, save_model=False, progress=False))
    r = U.read_run(run)
    return r["status"], r["steps"]


# ----------------------------------------------------------------------------------------- registry, defaults
def test_registry_holds_every_method_with_a_loss_and_needs():
    assert methods.names() == list(REQUIRED)  # the paper table's order
    assert methods.names(ablation=True) == [*REQUIRED, "NCE"] and methods.METHODS["NCE"].ablation
    colors = methods.colors()
    assert set(colors) == set(methods.METHODS) and len(set(colors.values())) == len(colors)
    assert colors["PALU"] == "#d62728"
    for name in methods.METHODS:
        m = methods.make_method(name)
        assert m.name == name and isinstance(m.needs(), methods.Needs)
        assert set(m.needs().ref) <= set(reference.QUANTITIES)


def test_paper_defaults():
    hp = {n: methods.make_method(n).hp for n in methods.METHODS}
    assert hp["NPO"].beta == 0.1 and hp["DPO"].beta == 0.1 and hp["WGA"].beta == 1.0 and hp["TPO"].beta == 0.32
    assert (hp["SimNPO"].beta, hp["SimNPO"].delta, hp["SimNPO"].gamma) == (4.5, 0.0, 0.125)
    assert (hp["UnDIAL"].beta, hp["UnDIAL"].alpha) == (10.0, 0.0)
    assert (hp["PDU"].lam0, hp["PDU"].eta, hp["PDU"].eps, hp["PDU"].dual_warmup_epochs) == (100.0, 5.0, 0.3, 5.0)
    assert (hp["RMU"].c, hp["RMU"].layer) == (2.0, 7)
    palu = hp["PALU"]
    assert (palu.n, palu.k, palu.target, palu.kl_direction, palu.gamma, palu.alpha) == (
        3, 5000, "global_mean", "theta_ref", 1.0, 1.0)
    assert all(hp[n].retain_loss == "nll" for n in ("GD", "NPO", "PALU", "TPO"))
    paper = methods.train_config("paper", "NPO")
    assert (paper.lr, paper.epochs, paper.batch_size, paper.weight_decay, paper.warmup_epochs, paper.schedule) == (
        1e-5, 10, 32, 0.01, 1.0, "linear")
    assert methods.train_config("paper", "UnDIAL").lr == 1e-4 and methods.train_config("paper", "WGA").epochs == 5
    assert methods.profile_hparams("paper", "PALU") == {}
    # paper: every other method trains with the common schedule; mini: one schedule for every method (4 epochs,
    # batch 16, the grid sets lr), no per-method deviation
    assert {methods.train_config("paper", n) for n in methods.METHODS if n not in ("UnDIAL", "WGA")} == {paper}
    assert {(c.lr, c.epochs, c.batch_size, c.weight_decay, c.warmup_epochs, c.schedule) for c in
            (methods.train_config("mini", n) for n in methods.METHODS)} == {(1e-3, 4, 16, 0.01, 1.0, "linear")}


def test_needs_follow_the_hyperparameters():
    assert methods.make_method("PALU").needs().spans and methods.make_method("TPO").needs().common
    assert not methods.make_method("PALU", {"tokens": "all"}).needs().spans
    assert methods.make_method("DPO").needs().idk
    assert methods.make_method("GA").needs() == methods.Needs()
    assert not methods.make_method("NPO", {"alpha": 0}).needs().retain
    assert "retain.logprobs" in methods.make_method("GD", {"retain_loss": "kl"}).needs().ref
    assert methods.make_method("PALU", {"k": 7}).needs().topk == 7


# ----------------------------------------------------------------------------------------- bad input
def test_unknown_method_and_hyperparameter_list_the_allowed_names():
    with pytest.raises(ValueError, match=r"unknown method 'PALUX'; allowed: GA, GD, NPO"):
        methods.make_method("PALUX")
    with pytest.raises(ValueError, match=r"unknown hyperparameter 'beta' for PALU; allowed: .*\bn\b.*\bk\b"):
        methods.make_method("PALU", {"beta": 1})
    with pytest.raises(ValueError, match=r"target='middle'; allowed: global_mean"):
        methods.make_method("PALU", {"target": "middle"})
    with pytest.raises(ValueError, match=r"n='three'; allowed: a int"):
        methods.make_method("PALU", {"n": "three"})
    with pytest.raises(ValueError, match=r"retain_loss='mse'; allowed: nll, kl"):
        methods.make_method("NPO", {"retain_loss": "mse"})
    with pytest.raises(ValueError, match=r"unknown setting 'learning_rate' for GA; allowed: .*\blr\b"):
        U.split_overrides("GA", {"learning_rate": 1e-3})


def test_settings_from_strings_are_parsed_to_their_types():
    hp, train, ref = U.split_overrides("PALU", {"n": "2", "alpha": "0.5", "lr": "3e-4", "train.epochs": "2",
                                                "ref_cache_gb": "0"})
    m = methods.make_method("PALU", hp)
    assert (m.hp.n, m.hp.alpha) == (2, 0.5) and train == {"lr": 3e-4, "epochs": 2} and ref == {"cache_gb": 0.0}


def test_k_outside_1_to_V_is_rejected_before_any_compute(smoke, no_compute):
    with pytest.raises(ValueError, match=r"k=0; allowed: an int in 1..V"):
        methods.make_method("PALU", {"k": 0})
    vocab = len(load_tokenizer(pipeline.original_model(smoke)))
    with pytest.raises(ValueError, match=rf"k={vocab + 1}; allowed: 1..{vocab}"):
        U.unlearn(smoke, "PALU", overrides={"k": vocab + 1})


def test_settings_the_profile_refuses_are_refused_on_an_empty_cache_before_anything_is_built(smoke, tmp_path,
                                                                                            monkeypatch, capsys):
    """`paperlib unlearn --set k=100000` (or an RMU layer the profile's model lacks) on an empty run cache: one
    line naming the setting, its value and the allowed range, and the cache stays empty (it used to build the
    benchmark, tokenizer, base and original models first). V and the depth come from the profile."""
    from transformers import LlamaConfig

    from paperlib.methods import masks

    runs = tmp_path / "runs"
    monkeypatch.setenv("PAPERLIB_CACHE", str(runs))
    tiny = smoke.model.tiny
    vocab, layers = tiny.vocab_size, tiny.num_hidden_layers
    arch = LlamaConfig(vocab_size=vocab, hidden_size=tiny.hidden_size, intermediate_size=tiny.intermediate_size,
                       num_hidden_layers=layers, num_attention_heads=tiny.num_attention_heads)
    mask = tmp_path / "mask"  # checking a mask against the model builds the model: k is checked before that
    masks.save_mask({"model.layers.0.mlp.down_proj.weight": torch.ones(tiny.hidden_size, tiny.intermediate_size,
                                                                       dtype=torch.bool)}, mask, arch)
    k_text = rf"k=100000; allowed: 1..{vocab} "
    for method, extra, text in (("PALU", ["--set", "k=100000"], k_text),
                                ("PALU", ["--set", "k=100000", "--mask", str(mask)], k_text),
                                ("RMU", ["--set", "layer=9"], rf"layer=9; allowed: 0..{layers - 1} ")):
        with pytest.raises(SystemExit) as info:
            cli_main(["unlearn", "--profile", "smoke", "--method", method, *extra, "--out", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert re.search(f"^paperlib unlearn: error: {text}", err), err
        assert not runs.exists() or not any(runs.rglob("*")), sorted(runs.rglob("*"))


def test_forget_set_without_span_annotation_is_rejected(smoke, tmp_path, no_compute):
    missing = replace(smoke, benchmark=replace(smoke.benchmark, spans=str(tmp_path / "nowhere")))
    model = pipeline.original_model(smoke)
    for method in ("PALU", "TPO"):
        with pytest.raises(FileNotFoundError, match="no span annotation for forget10"):
            U.unlearn(missing, method, model_path=model)
    U.forget_rows(missing, "forget10", methods.make_method("NPO").needs())  # methods without spans don't care
    # a span file that annotates only some of the forget questions
    import datasets

    source = pipeline.benchmark_source(smoke)
    full = datasets.load_from_disk(str(pipeline.spans_dir(smoke, "forget10")))
    partial_dir = tmp_path / "spans" / "forget10_with_common_words_gpt"
    full.select(range(len(full) - 1)).save_to_disk(str(partial_dir))
    some = replace(smoke, benchmark=replace(smoke.benchmark, spans=str(tmp_path / "spans")))
    with pytest.raises(ValueError, match="1 of .* questions have no span annotation"):
        U.unlearn(some, "PALU", model_path=model)
    assert len(tofu.load_split(source, "forget10")) == len(full)


def test_mask_for_parameters_the_model_lacks_is_rejected_before_any_compute(smoke, no_compute):
    with pytest.raises(ValueError, match=r"mask names parameters the model does not have: \['model.nope'\]"):
        U.unlearn(smoke, "GA", update_mask={"model.nope": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"mask for model.embed_tokens.weight is torch.bool \(1,\); allowed: bool"):
        U.unlearn(smoke, "GA", update_mask={"model.embed_tokens.weight": torch.ones(1, dtype=torch.bool)})


def test_rmu_layer_must_exist(smoke, no_compute):
    with pytest.raises(ValueError, match=r"layer=9; allowed: 0..0"):
        U.unlearn(smoke, "RMU", overrides={"layer": 9})


# ----------------------------------------------------------------------------------------- reference cache
def _smoke_batch(profile, method: methods.Method):
    path = pipeline.original_model(profile)
    tok = load_tokenizer(path)
    needs = method.needs()
    rows = U.forget_rows(profile, "forget10", needs)
    retain = tofu.load_split(pipeline.benchmark_source(profile), "retain90").to_list()
    idk = tofu.load_idk(pipeline.benchmark_source(profile))
    data = U.encode_samples(tok, profile.model.template, rows, retain, idk, method, profile.eval.max_length)
    return load_model(path), data, partial(encoding.collate, pad_id=tok.pad_token_id)


@pytest.mark.parametrize("name", ["PALU", "NPO", "UnDIAL", "TPO", "DPO", "RMU"])
def test_cached_quantities_equal_a_live_forward(smoke, name):
    extra = {} if name == "RMU" else {"alpha": 1.0, "retain_loss": "kl"}  # exercise the KL retain term too
    m = methods.make_method(name, methods.profile_hparams(smoke, name) | extra)
    model, data, collate = _smoke_batch(smoke, m)
    cached = reference.CachedReference.build(model, data, m.needs(), collate, batch_size=4)
    live = reference.LiveReference(model, m.needs())
    batch = collate([data[i] for i in (5, 0, 7)])  # another order and padding than the caching pass
    a, b = cached(batch), live(batch)
    assert set(a) == set(b) == set(m.needs().ref)
    torch.manual_seed(0)
    la, pa = m.loss(model, batch, a)
    lb, pb = m.loss(model, batch, b)
    assert la.item() == pytest.approx(lb.item(), **F32_LOSS), (la.item(), lb.item())
    assert pa.keys() == pb.keys()


@pytest.mark.parametrize("name", ["PALU", "NPO", "UnDIAL"])
def test_reference_cache_and_live_reference_give_the_same_losses_at_every_step(smoke, name):
    """Equal to float32 rounding at every step, not bit for bit: the caching pass sees the forget samples in
    batches of 32 (here all 10, padded to 72 tokens), the live reference in the training batches of 8 and 2 with
    their own padding; other shapes can round a sample's reference S(x) differently in its last bit (this
    failed once with an absolute 1e-5 on an NPO loss of 19.8; `ATEN_CPU_CAPABILITY=default` reproduces it)."""
    s_cache, cache = run_steps(smoke, name, epochs=3, ref_mode="cache")
    s_live, live = run_steps(smoke, name, epochs=3, ref_mode="live")
    assert s_cache["timing"]["reference"]["mode"] == "cache" and s_live["timing"]["reference"]["mode"] == "live"
    assert len(cache) == len(live) >= 3
    for a, b in zip(cache, live):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], **F32_LOSS), (name, a["step"], key, a[key], b[key])


def test_auto_mode_falls_back_to_live_over_the_memory_budget(smoke):
    m = methods.make_method("PALU", methods.profile_hparams(smoke, "PALU"))
    model, data, collate = _smoke_batch(smoke, m)
    size = reference.estimate_bytes(data, m.needs(), model.config.vocab_size, model.config.hidden_size)
    cached = reference.make_reference(model, data, m.needs(), collate, reference.ReferenceConfig(cache_gb=1.0))
    assert cached.mode == "cache" and cached.nbytes() == size
    live = reference.make_reference(model, data, m.needs(), collate, reference.ReferenceConfig(cache_gb=size / 2**31))
    assert live.mode == "live"


# ----------------------------------------------------------------------------------------- PDU, divergence
def test_pdu_dual_variable_is_updated_and_logged_every_step(smoke):
    status, steps = run_steps(smoke, "PDU", epochs=3, dual_warmup_epochs="1", lam0="2", eta="5", eps="0.3")
    assert status["status"] == "completed"
    per_epoch = sum(1 for s in steps if s["epoch"] == 1)
    lams = [s["lam"] for s in steps]
    assert lams[:per_epoch + 1] == [2.0] * (per_epoch + 1)  # held during the dual warm-up epoch
    for prev, nxt in zip(steps[per_epoch:], steps[per_epoch + 1:]):
        assert nxt["lam"] == pytest.approx(max(0.0, prev["lam"] + 5.0 * (prev["retain"] - 0.3)), abs=1e-9)
    assert "forget" in steps[0] and "retain" in steps[0]


class _NaNAtStep3(methods.GA):
    name = "NaNAtStep3"

    def setup(self, batches_per_epoch: int) -> None:
        self.calls = 0

    def loss(self, model, batch, ref):
        loss, parts = super().loss(model, batch, ref)
        self.calls += 1
        return (loss * math.nan if self.calls == 3 else loss), parts


def test_a_nan_loss_stops_the_run_and_the_status_says_so(smoke, monkeypatch):
    monkeypatch.setitem(methods.METHODS, _NaNAtStep3.name, _NaNAtStep3)
    run = U.unlearn(smoke, "NaNAtStep3", overrides={"epochs": 3},
                    options=RunOptions(force=True, save_model=False, progress=False))
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "diverged" and status["step"] == 3 and "(step 3)" in status["message"]
    assert status["last"]["step"]["step"] == 2 and math.isfinite(status["last"]["step"]["loss"])
    assert (run / "COMPLETE").is_file() and len(json.loads((run / "train_log.json").read_text())) == 2
    assert not (run / "TOFU_SUMMARY.json").exists()  # a diverged model is not evaluated (a result, no metric)


# ----------------------------------------------------------------------------------------- mask, LoRA, outputs
def test_update_mask_freezes_everything_outside_it(smoke):
    original = load_model(pipeline.original_model(smoke))
    name = "model.layers.0.mlp.down_proj.weight"
    mask = {name: torch.rand(original.get_parameter(name).shape, generator=torch.Generator().manual_seed(0)) < 0.1}
    run = U.unlearn(smoke, "GA", overrides={"epochs": 2}, update_mask=mask,
                    options=RunOptions(force=True, progress=False))
    after = dict(load_model(U.unlearned_model(run)).named_parameters())
    for n, p in original.named_parameters():
        if n != name:
            assert torch.equal(p, after[n]), n
    changed = original.get_parameter(name) != after[name]
    assert changed.any() and not (changed & ~mask[name]).any()


def test_run_folder_holds_curves_logs_status_and_weights(smoke):
    run = U.unlearn(smoke, "NPO", overrides={"epochs": 2}, options=RunOptions(force=True, progress=False))
    r = U.read_run(run)
    assert r["status"]["status"] == "completed" and [e["epoch"] for e in r["epochs"]] == [1, 2]
    assert {"forget_quality", "model_utility"} <= set(r["epochs"][-1]) and r["summary"] == {
        k: v for k, v in r["epochs"][-1].items() if k != "epoch"}
    assert {"loss", "lr", "forget", "retain", "epoch", "step"} <= set(r["steps"][0])
    assert (run / "TOFU_EVAL.json").is_file() and r["config"]["method"] == "NPO"
    assert load_model(U.unlearned_model(run)).config.vocab_size > 0
    assert U.unlearn(smoke, "NPO", overrides={"epochs": 2}, options=RunOptions(progress=False)) == run  # cached


def test_lora_run_saves_merged_weights(smoke):
    lora = replace(smoke, model=replace(smoke.model, lora_r=4))
    run = U.unlearn(lora, "GD", overrides={"epochs": 1}, options=RunOptions(force=True, progress=False))
    assert U.read_run(run)["status"]["status"] == "completed"
    names = [n for n, _ in load_model(U.unlearned_model(run)).named_parameters()]
    assert names and not any("lora" in n for n in names)


def test_cli_unlearn_copies_the_run_and_rejects_unknown_settings(tmp_path, capsys):
    out = tmp_path / "run"
    cli_main(["unlearn", "--method", "GA", "--profile", "smoke", "--set", "epochs=1", "--out", str(out)])
    assert json.loads((out / "status.json").read_text())["status"] == "completed"
    assert "copied to" in capsys.readouterr().out
    capsys.readouterr()
    for argv, message in ((["--method", "GA", "--set", "gamma=2"], "unknown setting 'gamma' for GA"),
                          (["--method", "XX"], "unknown method 'XX'")):
        with pytest.raises(SystemExit) as exit_:
            cli_main(["unlearn", *argv, "--profile", "smoke", "--out", str(out)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_paper_profile_settings_and_the_gpu_only_optimizer():
    paper = get_profile("paper")
    m, train, ref = U.resolve(paper, "PALU", {"n": "2"})
    assert (m.hp.n, m.hp.k, train.lr, train.epochs, train.optimizer) == (2, 5000, 1e-5, 10, "paged_adamw_32bit")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"paged_adamw_32bit' needs bitsandbytes and a CUDA GPU; allowed here"):
            U._check_optimizer(train)
    U._check_optimizer(methods.train_config("mini", "PALU"))
