"""RWKU's mini base stage: mini-TOFU's pretrained tiny base (and its tokenizer) trained further on every mini
RWKU person, the question format and the general knowledge (cached like `benchmarks.tofu.pipeline`'s stages), so that
the targets are people the model learned in pretraining, as RWKU's are famous people a real model knows
(`RwkuSettings.init="scratch"`: before issue 23, a tokenizer and a tiny model trained on the RWKU text alone).
This model is the original model of mini RWKU unlearning; the paper profile uses its checkpoint instead
(zero-shot: Llama-3-8B-Instruct already knows RWKU's targets). Its own module so that evaluation code can change
without retraining it (cache kind "rwku-model")."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch

from paperlib.benchmarks.rwku import data as rwku_data
from paperlib.benchmarks.rwku import mini as mini_rwku
from paperlib.benchmarks.rwku.settings import RwkuSettings, benchmark_source, settings
from paperlib.engine import encoding, rawtext
from paperlib.engine.cache import cached_run
from paperlib.engine.config import Profile
from paperlib.engine.models import auto_device, load_model, load_tokenizer, n_params, tiny_llama, train_tokenizer
from paperlib.engine.train import Loop, train


def tokenizer_path(profile: Profile, force: bool = False) -> str:
    """Tokenizer: the original checkpoint's (paper) or one trained on the mini RWKU text (tiny profiles)."""
    s = settings(profile)
    if s.mini is None:
        return profile.model.original
    if s.init == "base":
        from paperlib.benchmarks.tofu import pipeline

        return pipeline.tokenizer_path(profile, force)
    config = {"benchmark": s.mini, "vocab_size": profile.model.tiny.vocab_size}

    def build(out: Path) -> None:
        train_tokenizer(mini_rwku.tokenizer_corpus(s.mini), profile.model.tiny.vocab_size).save_pretrained(out)

    return str(cached_run("rwku-tokenizer", config, build, force=force))


def base_samples(tokenizer, template: str, base: dict, s: RwkuSettings) -> list[dict]:
    """The base stage's samples: passages and statements as raw text (`rawtext.encode_texts`, every token a
    target), RWKU-prompted questions with "Answer: ..." replies, multiple-choice items and fluency replies
    (prompt tokens without loss)."""
    raw = rawtext.encode_texts(tokenizer, base["texts"], s.block)
    chats = [(rwku_data.FB_PROMPT if kind == "fb" else rwku_data.QA_PROMPT).format(query=q)
             for kind, q, _ in base["qa"]]
    replies = [f"{rwku_data.ANSWER_SUFFIX} {a}" for _, _, a in base["qa"]]
    for item in base["mcq"]:
        chats.append(rwku_data.mcq_prompt(item, s.shots)[0])
        replies.append(f"{rwku_data.ANSWER_SUFFIX} {rwku_data.MCQ_LETTERS[int(item['answer'])]}")
    for instruction, reply in base["fluency"]:
        chats.append(rwku_data.FLUENCY_PROMPT.format(instruction=instruction))
        replies.append(reply)
    qa = [encoding.encode(tokenizer, template, q, a, max_length=s.context) for q, a in zip(chats, replies)]
    return [{"input_ids": x["input_ids"], "labels": x["labels"]} for x in raw + qa]


def _init(profile: Profile) -> str | None:
    """The model the base stage starts from: mini-TOFU's pretrained base (`init="base"`) or None (scratch)."""
    from paperlib.benchmarks.tofu import pipeline

    return pipeline.base_model(profile) if settings(profile).init == "base" else None


def _base_config(profile: Profile) -> dict:
    from paperlib.benchmarks.tofu import pipeline

    s = settings(profile)
    config = {"stage": "rwku-base", "benchmark": s.mini, "model": replace(profile.model.tiny,
                                                                            max_position_embeddings=s.context),
              "template": profile.model.template, "train": replace(s.base, seed=profile.base.seed),  # the draw's
              "block": s.block, "shots": s.shots}
    init = _init(profile)
    if init:  # the keys of scratch models stay as they were
        config["init"] = pipeline.model_identity(init)  # its weights, config and tokenizer files
    return config


def base_model(profile: Profile, force: bool = False) -> str:
    """The original model of RWKU unlearning: the paper profile's checkpoint, or (tiny profiles) a tiny Llama
    trained here on the whole mini RWKU base data (cached like `paperlib.benchmarks.tofu.pipeline`'s stages)."""
    s = settings(profile)
    if s.mini is None:
        return profile.model.original
    config = _base_config(profile)
    source, tok_path = benchmark_source(profile), tokenizer_path(profile)

    def build(out: Path) -> None:
        from paperlib.benchmarks.tofu.pipeline import nll_loss

        tok = load_tokenizer(tok_path)
        base = json.loads((Path(source) / "base.json").read_text())
        data = base_samples(tok, profile.model.template, base, s)
        torch.manual_seed(config["train"].seed)
        device, dtype = auto_device()
        init = _init(profile)
        if init:  # RoPE positions: the base's 128 extend to RWKU's context without new weights
            model = load_model(init).to(device, dtype)
            model.config.max_position_embeddings = config["model"].max_position_embeddings
        else:
            model = tiny_llama(config["model"], tok).to(device, dtype)
        print(f"[rwku-base] {n_params(model):,} parameters, {len(data)} samples, {s.base.epochs} epochs", flush=True)
        result = train(model, data, nll_loss, config["train"], partial(encoding.collate, pad_id=tok.pad_token_id),
                       loop=Loop(desc="rwku-base"))
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "train_log.json").write_text(json.dumps(result.steps))

    return str(cached_run("rwku-model", config, build, force=force))
