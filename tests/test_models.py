"""Tokenizer training, tiny Llama, save/load through the same code as a hub checkpoint, bad paths."""

from __future__ import annotations

import pytest
import torch

from paperlib.engine import encoding
from paperlib.engine.config import ModelConfig, TinyLlamaConfig
from paperlib.engine.models import (
    add_lora,
    auto_device,
    load_model,
    load_tokenizer,
    n_params,
    tiny_llama,
    train_tokenizer,
)

TEXTS = ["Who wrote 'The Glass River'?", "Rubei Paisozi wrote it.", "What is the capital of Nistekriia?"] * 20


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tok = train_tokenizer(TEXTS, vocab_size=400)
    torch.manual_seed(0)
    model = tiny_llama(TinyLlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2), tok)
    path = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, model, tok


def test_tokenizer_roundtrip_and_template_tokens(saved):
    path, _, tok = saved
    loaded = load_tokenizer(path)
    text = "Who wrote 'The Glass River'?"
    assert loaded.decode(loaded(text)["input_ids"]) == text
    encoding.check_template("tiny", loaded)
    ids = loaded(encoding.render_prompt("tiny", loaded, "Q?"), add_special_tokens=False)["input_ids"]
    assert ids[0] == loaded.bos_token_id and loaded.convert_tokens_to_ids(encoding.TINY_ASSISTANT) == ids[-1]


def test_model_roundtrip(saved):
    path, model, tok = saved
    loaded = load_model(path)
    device, dtype = auto_device()
    assert next(loaded.parameters()).dtype == dtype and next(loaded.parameters()).device.type == device.type
    x = torch.tensor([tok("Who wrote it?")["input_ids"]])
    assert torch.equal(loaded(x).logits, model(x).logits)
    assert type(loaded).__name__ == "LlamaForCausalLM" and n_params(loaded) == n_params(model)


def test_lora_wraps_linear_layers(saved):
    path, _, _ = saved
    model = add_lora(load_model(path), ModelConfig(lora_r=4))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="model path '/does/not/exist' does not exist"):
        load_model("/does/not/exist")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no model"):
        load_tokenizer(tmp_path / "empty")
