"""RWKU's generated forget corpus (issue 13, zero-shot setting): the `forget_corpus` option's validation, the
sampled texts (deterministic per seed, only what the model produced, RWKU's {"text"} rows) on a tiny model,
and the cache keys: the run's corpus digest changes with the option, the generation stage's key with the
model and every generation setting."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from paperlib.benchmarks.rwku import evaluate as rwku
from paperlib.engine.config import TinyLlamaConfig, get_profile
from paperlib.engine.errors import PaperlibError
from paperlib.engine.models import tiny_llama, train_tokenizer


def test_forget_corpus_option_is_checked():
    assert rwku.check_forget_corpus("passages") == "passages"
    assert rwku.settings(get_profile("mini")).forget_corpus == "passages"  # default as before
    with pytest.raises(PaperlibError, match=r"forget_corpus='model'; allowed: 'passages', 'generated'"):
        rwku.check_forget_corpus("model")
    with pytest.raises(PaperlibError, match="forget_corpus='Generated'.*allowed: 'passages', 'generated'"):
        rwku.RwkuSettings(mini=None, forget_corpus="Generated")
    with pytest.raises(PaperlibError, match="forget_corpus=3"):
        rwku.corpus(get_profile("smoke"), "anyone", forget_corpus=3)
    with pytest.raises(PaperlibError, match="gen_texts=0"):
        rwku.RwkuSettings(mini=None, gen_texts=0)


@pytest.fixture(scope="module")
def tiny():
    texts = ["Mara Velin was born in Lorsa in 1901.", "Please write a short passage about the river.",
             "She painted the Silent Harbor and won the Golden Lantern."] * 20
    tok = train_tokenizer(texts, 300)
    torch.manual_seed(0)
    cfg = TinyLlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                          max_position_embeddings=64)
    return tok, tiny_llama(cfg, tok).eval()


def test_generation_is_deterministic_and_holds_only_model_output(tiny):
    tok, model = tiny
    seen = []
    generate = model.generate

    def recording(*args, **kwargs):
        out = generate(*args, **kwargs)
        seen.append((kwargs["input_ids"].shape[1], out))
        return out

    model.generate = recording
    try:
        a = rwku.generate_texts(model, tok, "tiny", "Mara Velin", n_texts=4, max_new_tokens=12, seed=0)
        b = rwku.generate_texts(model, tok, "tiny", "Mara Velin", n_texts=4, max_new_tokens=12, seed=0)
        c = rwku.generate_texts(model, tok, "tiny", "Mara Velin", n_texts=4, max_new_tokens=12, seed=1)
    finally:
        del model.generate
    assert a == b and a != c
    assert all(set(r) == {"text"} and isinstance(r["text"], str) and r["text"] for r in a)  # RWKU's schema
    start, out = seen[0]
    produced = [t.strip() for t in tok.batch_decode(out[:, start:], skip_special_tokens=True)]
    assert [r["text"] for r in a] == [t for t in produced if t]  # the continuations, nothing else
    prompt = tok.decode(out[0, :start], skip_special_tokens=True)
    assert "Mara Velin" in prompt and "short passage" in rwku.GENERATION_PROMPT
    assert len(out[0]) - start <= 12


def test_generation_with_only_empty_output_is_an_error(tiny):
    tok, model = tiny
    eos = tok.eos_token_id

    def only_eos(input_ids, **kwargs):
        return torch.cat([input_ids, torch.full((input_ids.shape[0], 1), eos)], dim=1)

    model.generate = only_eos
    try:
        with pytest.raises(PaperlibError, match="only empty texts about RWKU target 'X'"):
            rwku.generate_texts(model, tok, "tiny", "X", n_texts=2, max_new_tokens=4, seed=0)
    finally:
        del model.generate


def test_cache_keys_change_with_the_option_and_generation_settings(monkeypatch, tmp_path):
    import paperlib.benchmarks.tofu.pipeline

    P = get_profile("smoke")
    target = rwku.target_names(P)[0]
    configs = []
    real = rwku.cached_run

    def fake_cached_run(kind, config, build, force=False):
        if kind != "rwku-generated":
            return real(kind, config, build, force=force)
        configs.append((kind, config))
        out = tmp_path / str(len(configs))
        out.mkdir()
        (out / "generated.json").write_text(json.dumps([{"text": f"{target} was a model's text."}]))
        return out

    monkeypatch.setattr(rwku, "cached_run", fake_cached_run)
    monkeypatch.setattr(rwku, "base_model", lambda profile, force=False: "base-dir")
    monkeypatch.setattr(paperlib.benchmarks.tofu.pipeline, "model_identity", lambda path: f"sha-of-{path}")
    passages = rwku.corpus(P, target)
    generated = rwku.corpus(P, target, forget_corpus="generated")
    assert passages.name == f"rwku:{target}" and generated.name == f"rwku:{target}:generated"
    assert generated.forget == (f"{target} was a model's text.",)
    assert passages.digest() != generated.digest()  # the corpus digest is part of every unlearning run's key
    monkeypatch.setitem(rwku.SETTINGS, "smoke", replace(rwku.SETTINGS["smoke"], forget_corpus="generated"))
    assert rwku.corpus(P, target).digest() == generated.digest()  # the profile's option selects it
    kind, first = configs[0]
    assert kind == "rwku-generated"
    assert first["model"] == "sha-of-base-dir" and first["target"] == target
    assert first["prompt"] == rwku.GENERATION_PROMPT
    for change in ({"gen_seed": 7}, {"gen_texts": 3}, {"gen_tokens": 5}, {"gen_temperature": 0.5}):
        monkeypatch.setitem(rwku.SETTINGS, "smoke", replace(rwku.SETTINGS["smoke"], **change))
        rwku.generated_corpus(P, target)
        assert configs[-1][1] != first, change
