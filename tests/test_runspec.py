"""RunSpec: one frozen dataclass is both the build argument and the cache key of an unlearning run. A TOFU
run's key is the very dict the code before RunSpec built (`run_config_before_runspec` below is that code,
verbatim), so every cached run and committed result keeps its key; a raw-text run's key holds the corpus
digest, the evaluator's name, arguments and source digest."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import corpus as C
from paperlib.engine.cache import config_hash, to_jsonable
from paperlib.engine.config import RunSpec, get_profile
from paperlib.engine.unlearn import RunOptions, mask_digest, resolve, run_spec, spec_method, text_run_spec
from paperlib.methods import make_method

LOG = "open-unlearning-eval/tofu_Llama-2-7b-chat-hf_retain95/TOFU_EVAL.json"


def run_config_before_runspec(profile, method, forget, train_cfg, ref_cfg, model_path, retain_log, eval_every_epoch,
                              update_mask, save_model) -> dict:
    """paperlib.engine.unlearn.run_config as of commit bd464b9 (the TOFU cache key before RunSpec), verbatim."""
    return {"method": method.name, "hparams": dataclasses.asdict(method.hp), "forget": forget, "train": train_cfg,
            "reference": ref_cfg, "benchmark": profile.benchmark, "template": profile.model.template,
            "lora": (profile.model.lora_r, profile.model.lora_alpha, profile.model.lora_dropout),
            "eval": profile.eval, "model": pipeline.model_identity(model_path),
            "retain_log": pipeline.log_identity(retain_log),
            "eval_every_epoch": eval_every_epoch, "update_mask": mask_digest(update_mask), "save_model": save_model}


CASES = [("mini", "PALU", {"lr": 1e-3}, None, True, True),
         ("paper", "NPO", {"ref_mode": "live"}, None, False, True),
         ("smoke", "GD", {"epochs": 2, "retain_loss": "kl"}, {"w": torch.tensor([True, False])}, True, False),
         ("mini", "TPO", {"general": "token_mean"}, None, False, False)]


@pytest.mark.parametrize("profile_name, method, overrides, mask, every, save", CASES)
def test_tofu_key_is_the_key_before_runspec(shared_data, profile_name, method, overrides, mask, every, save):
    profile = get_profile(profile_name)
    m, train_cfg, ref_cfg = resolve(profile, method, overrides)
    args = (profile, m, "forget05", train_cfg, ref_cfg, "some-org/some-model", str(shared_data / LOG), every, mask,
            save)
    spec = run_spec(profile, (m, train_cfg, ref_cfg), "forget05", "some-org/some-model", str(shared_data / LOG), mask,
                    RunOptions(eval_every_epoch=every, save_model=save))
    old = run_config_before_runspec(*args)
    new = spec.key()
    assert list(new) == list(old)  # same fields in the same order
    assert json.dumps(to_jsonable(new)) == json.dumps(to_jsonable(old))  # byte-identical
    assert config_hash(new, "unlearn") == config_hash(old, "unlearn")  # so the same run folder
    assert spec.kind == "tofu" and spec.model_path == "some-org/some-model"


def test_spec_rebuilds_the_method_and_is_frozen(shared_data):
    profile = get_profile("mini")
    m, train_cfg, ref_cfg = resolve(profile, "PALU", {"n": 5})
    spec = run_spec(profile, (m, train_cfg, ref_cfg), "forget10", "org/model", str(shared_data / LOG), None,
                    RunOptions())
    again = spec_method(spec)
    assert type(again) is type(m) and again.hp == m.hp and again is not m
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.forget = "forget01"


def test_text_key_holds_corpus_and_evaluator(tmp_path):
    @C.register_evaluator("toy-spec")
    def ev(model, tok, profile, args, out_dir):
        return {}
    try:
        profile = get_profile("smoke")
        m, train_cfg, ref_cfg = resolve(profile, "GA", None)
        corpus = C.TextCorpus("toy", ("a b c",), ("d e",), 8)
        spec = text_run_spec(profile, (m, train_cfg, ref_cfg), corpus, C.EvalCall("toy-spec", {"k": 1}), "org/model",
                             None, RunOptions(save_model=False))
        key = spec.key()
        assert spec.kind == "text" and key["kind"] == "text"
        assert key["corpus"]["digest"] == corpus.digest() and key["eval_args"] == {"k": 1}
        assert key["evaluator"] == "toy-spec" and len(key["evaluator_code"]) == 16
        assert "forget" not in key and "retain_log" not in key and "model_path" not in key
        other = dataclasses.replace(spec, corpus=C.TextCorpus("toy", ("a b c",), ("d f",), 8).describe())
        assert config_hash(other.key()) != config_hash(key)
        assert config_hash(dataclasses.replace(spec, eval_args={"k": 2}).key()) != config_hash(key)
    finally:
        C.unregister_evaluator("toy-spec")


def test_spec_refuses_an_ambiguous_kind():
    profile = get_profile("smoke")
    m = make_method("GA")
    common = dict(method="GA", hparams=m.hp, train=profile.finetune, reference=None, template="tiny",
                  lora=(0, 32, 0.05), eval=profile.eval, model="org/model")
    with pytest.raises(ValueError, match="neither"):
        RunSpec(**common)
    with pytest.raises(ValueError, match="both"):
        RunSpec(**common, forget="forget10", corpus={"digest": "x"}, evaluator="e")
    with pytest.raises(ValueError, match="needs an evaluator"):
        RunSpec(**common, corpus={"digest": "x"})
