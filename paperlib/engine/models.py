"""Tokenizer training, the tiny Llama, loading any checkpoint folder or hub id, LoRA, device choice."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from paperlib.engine.config import ModelConfig, TinyLlamaConfig
from paperlib.engine.encoding import TINY_ASSISTANT, TINY_USER

if TYPE_CHECKING:  # transformers is imported where it is used: a warm notebook never loads a model
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def auto_device() -> tuple[torch.device, torch.dtype]:
    """CUDA with bf16 when available, else CPU with fp32."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.bfloat16
    return torch.device("cpu"), torch.float32


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on `texts` (digits split one by one), wrapped as a transformers fast tokenizer
    with the tiny template's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    # digits one by one, as the Llama tokenizers split numbers
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    specials = [*SPECIAL.values(), TINY_USER, TINY_ASSISTANT]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=[TINY_USER, TINY_ASSISTANT],
                                   **SPECIAL)


def tiny_llama(cfg: TinyLlamaConfig, tokenizer) -> LlamaForCausalLM:
    """A randomly initialised LlamaForCausalLM sized by `cfg` for `tokenizer` (seed with torch.manual_seed)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_attention_heads, max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def _resolve(path: str | Path) -> str:
    p = Path(path)
    if p.exists():
        if not (p / "config.json").is_file() and not (p / "tokenizer_config.json").is_file():
            raise FileNotFoundError(f"{p} exists but holds no model or tokenizer (no config.json)")
        return str(p)
    if not _HUB_ID.match(str(path)):
        raise FileNotFoundError(f"model path {str(path)!r} does not exist and is not a hub id (org/name)")
    return str(path)


def load_tokenizer(path: str | Path):
    """Tokenizer of a checkpoint folder or hub id; a pad token is added (= EOS) when missing."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(_resolve(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, device: torch.device | None = None, dtype: torch.dtype | None = None):
    """Causal LM from a checkpoint folder (tiny model or hub download) or a hub id, on the auto device."""
    from transformers import AutoModelForCausalLM

    auto_dev, auto_dtype = auto_device()
    model = AutoModelForCausalLM.from_pretrained(_resolve(path), dtype=dtype or auto_dtype)
    return model.to(device or auto_dev)


def add_lora(model, cfg: ModelConfig):
    """Wrap `model` with LoRA adapters on every linear layer of the decoder (cfg.lora_r > 0)."""
    if cfg.lora_r <= 0:
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                      task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
