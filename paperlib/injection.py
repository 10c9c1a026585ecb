"""The oracle experiment's first stage (loc-unlearn, methods.md): put the forget set into a known place.

`injected_model`: the retain model (it never saw the forget authors) fine-tuned on the forget answers (NLL)
with only a random `ratio` (10%) share of the MLP down_proj weights trainable (`oracle_mask`), plus
`retain_weight` x NLL on a paired, seeded random retain sample as the retain regulariser, so the rest of the
model's behaviour is held while the forget facts go into the masked weights. Cached as kind "inject"
(`paperlib.cache.CODE["inject"]` fingerprints this module, so an edit here rebuilds it);
`paperlib.localization` unlearns the result with the same mask vs its random complement.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from paperlib import masks
from paperlib.cache import cached_run
from paperlib.config import Profile, TrainConfig
from paperlib.errors import PaperlibError


def oracle_mask_config(ratio: float = 0.1, seed: int = 0, complement: bool = False) -> masks.MaskConfig:
    """The oracle's random down_proj mask (global top ratio of uniform scores), or its random complement."""
    return masks.MaskConfig(attribution="random_down", ratio=ratio, scope="global", seed=seed,
                            kind="random_complement" if complement else "normal")


def oracle_mask(profile: Profile, forget: str = "forget10", ratio: float = 0.1, seed: int = 0,
                complement: bool = False) -> dict[str, torch.Tensor]:
    """The injection mask (or its complement) for the profile's retain model of `forget` (shapes only)."""
    from paperlib import pipeline

    model = pipeline.retain_model(profile, forget)
    return masks.mask_for(profile, oracle_mask_config(ratio, seed, complement), forget, model)[0]


def inject_train_config(profile: Profile, **changes: Any) -> TrainConfig:
    """Injection schedule: the profile's fine-tuning schedule (`profile.finetune`) with `changes`."""
    return replace(profile.finetune, **changes)


def injected_model(profile: Profile, forget: str = "forget10", ratio: float = 0.1, seed: int = 0,
                   retain_weight: float = 1.0, train_changes: dict[str, Any] | None = None,
                   force: bool = False) -> str:
    """Folder of the retain model with the forget set injected through the oracle mask (cached, kind
    "inject", keyed by the mask's digest, the schedule and the data; see the module docstring)."""
    from paperlib import pipeline
    from paperlib.data import encoding, tofu
    from paperlib.models import load_model, load_tokenizer
    from paperlib.train import train
    from paperlib.unlearn import mask_digest

    if retain_weight < 0:
        raise PaperlibError(f"retain_weight={retain_weight}; allowed: >= 0")
    train_cfg = inject_train_config(profile, **(train_changes or {}))
    retain_path = pipeline.retain_model(profile, forget)
    mask = oracle_mask(profile, forget, ratio, seed)
    config = {"stage": "inject", "benchmark": profile.benchmark, "template": profile.model.template,
              "forget": forget, "model": pipeline.model_identity(retain_path),
              "mask": {"config": asdict(oracle_mask_config(ratio, seed)), "digest": mask_digest(mask)},
              "train": train_cfg, "retain_weight": retain_weight, "max_length": profile.eval.max_length}

    def build(out: Path) -> None:
        tok = load_tokenizer(retain_path)
        source = pipeline.benchmark_source(profile)
        enc = partial(encoding.encode, tok, profile.model.template, max_length=profile.eval.max_length)
        rows = tofu.load_split(source, forget).to_list()
        retain_rows = tofu.load_split(source, tofu.retain_of(forget)).to_list()
        rng = random.Random(train_cfg.seed)
        data = []
        for row in rows:
            r = retain_rows[rng.randrange(len(retain_rows))]
            data.append({"forget": _plain(enc(row["question"], row["answer"])),
                         "retain": _plain(enc(r["question"], r["answer"]))})
        model = load_model(retain_path)
        result = train(model, data, partial(_inject_loss, retain_weight=retain_weight), train_cfg,
                       partial(encoding.collate, pad_id=tok.pad_token_id), update_mask=mask, desc="inject")
        if result.diverged_at is not None:
            raise PaperlibError(f"injection diverged ({result.reason}); allowed: a smaller lr (train_changes)")
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "train_log.json").write_text(json.dumps(result.steps))

    return str(cached_run("inject", config, build, force=force))


def _plain(sample: dict) -> dict:
    return {"input_ids": sample["input_ids"], "labels": sample["labels"]}


def _inject_loss(model: torch.nn.Module, batch: dict, retain_weight: float):
    from paperlib.pipeline import nll_loss

    forget = nll_loss(model, batch["forget"])[0]
    retain = nll_loss(model, batch["retain"])[0]
    return forget + retain_weight * retain, {"forget_nll": forget.detach(), "retain_nll": retain.detach()}
