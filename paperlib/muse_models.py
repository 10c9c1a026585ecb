"""MUSE's scale per profile and its cached stages: the benchmark folder (mini-MUSE generated here, or the
real corpus) and the target / retrained models (tiny profiles: trained from scratch with the project's
training loop on forget + retain1 + retain2 / retain1 + retain2, raw text cut into blocks by
`paperlib.data.rawtext`; paper profile: MUSE's published checkpoints). One job, its own cache fingerprint, so
that an edit to notebook helpers (`paperlib.muse`) retrains nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from paperlib import pipeline
from paperlib.cache import cached_run
from paperlib.config import Profile, TrainConfig
from paperlib.data import encoding, mini_muse, muse, rawtext
from paperlib.errors import PaperlibError
from paperlib.models import auto_device, load_tokenizer, n_params, tiny_llama
from paperlib.train import train

METHODS = ("GA", "GD", "NPO", "SimNPO", "WGA", "UnDIAL", "Unilogit", "RMU", "PALU")
# MUSE's published models (the PALU paper's MUSE rows: News on MUSE's Llama-2-7B target, Books on its ICLM-7B)
PAPER_MODELS = {"news": ("muse-bench/MUSE-news_target", "muse-bench/MUSE-news_retrain", "Llama-2-7B", 6.74),
                "books": ("muse-bench/MUSE-books_target", "muse-bench/MUSE-books_retrain", "ICLM-7B", 6.74)}


@dataclass(frozen=True)
class MuseSettings:
    """MUSE's scale in one profile: data, training block, generation lengths and (tiny) model training."""

    corpus: str = "news"  # paper profile: news / books (hub); tiny profiles: mini-MUSE
    mini: mini_muse.MiniMuseConfig | None = None  # None = the real benchmark
    block: int = 2048  # tokens per training block (MUSE: 2048)
    verbmem_new_tokens: int = 128  # MUSE: 128
    knowmem_new_tokens: int = 32  # MUSE: 32
    max_length: int = 2048  # tokens of a privleak text / prompt the model reads
    batch_size: int = 32  # evaluation batch
    context: int = 256  # tiny models' max_position_embeddings
    # tiny models: about as many steps as mini-TOFU's original model (~1000); 40 epochs at batch 16 (360 steps)
    # gave VerbMem 0.86 but KnowMem-forget 0 (the key-fact answers not memorised)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=3e-3, epochs=60, batch_size=8,
                                                                    warmup_epochs=1.0, schedule="cosine",
                                                                    weight_decay=0.0))
    methods: tuple[str, ...] = METHODS


SETTINGS = {
    "paper": MuseSettings(),
    "mini": MuseSettings(mini=mini_muse.MiniMuseConfig(), block=128, verbmem_new_tokens=32, knowmem_new_tokens=12,
                         max_length=256),
    "smoke": MuseSettings(mini=mini_muse.MiniMuseConfig(n_events=6, n_icl=2), block=128, verbmem_new_tokens=16,
                          knowmem_new_tokens=8, max_length=256,
                          train=TrainConfig(lr=3e-3, epochs=4, batch_size=8, warmup_epochs=1.0, schedule="cosine",
                                            weight_decay=0.0),
                          methods=("GA", "PALU")),
}


def settings(profile: Profile | str) -> MuseSettings:
    name = getattr(profile, "name", profile)
    if name not in SETTINGS:
        raise PaperlibError(f"no MUSE settings for profile {name!r}; allowed: {', '.join(SETTINGS)}")
    return SETTINGS[name]


# ----------------------------------------------------------------------------------------- data and models
def benchmark_source(profile: Profile, force: bool = False) -> str:
    """mini-MUSE folder (generated, cached) or the real corpus's hub id."""
    s = settings(profile)
    if s.mini is None:
        return muse.resolve_source(muse.check_corpus(s.corpus))
    return str(cached_run("muse-benchmark", s.mini, partial(mini_muse.write, s.mini), force=force))


def load_data(profile: Profile) -> muse.MuseData:
    return muse.load_all(benchmark_source(profile))


TRAIN_SPLITS = {"target": ("forget", "retain1", "retain2"), "retrained": ("retain1", "retain2")}


def _model(profile: Profile, which: str, force: bool = False) -> str:
    s = settings(profile)
    if s.mini is None:
        target, retrained, _, _ = PAPER_MODELS[s.corpus]
        return target if which == "target" else retrained
    tiny = replace(profile.model.tiny, max_position_embeddings=s.context)
    # the draw of the tiny models: the seed of the profile's TOFU models (`experiments.second_draw` moves both)
    train_cfg = replace(s.train, seed=profile.finetune.seed)
    config = {"stage": f"muse-{which}", "benchmark": s.mini, "splits": TRAIN_SPLITS[which], "model": tiny,
              "train": train_cfg, "block": s.block, "tokenizer": pipeline.tokenizer_path(profile)}

    def build(out: Path) -> None:
        tok = load_tokenizer(config["tokenizer"])
        data = load_data(profile)
        texts = [t for split in TRAIN_SPLITS[which] for t in data.raw[split]]
        blocks = [{"input_ids": b["input_ids"], "labels": b["labels"]}
                  for b in rawtext.encode_texts(tok, texts, s.block) if len(b["input_ids"]) > 1]
        torch.manual_seed(train_cfg.seed)
        device, dtype = auto_device()
        model = tiny_llama(tiny, tok).to(device, dtype)
        print(f"[muse-{which}] {n_params(model):,} parameters, {len(blocks)} blocks, {train_cfg.epochs} epochs",
              flush=True)
        result = train(model, blocks, pipeline.nll_loss, train_cfg, partial(encoding.collate, pad_id=tok.pad_token_id),
                       desc=f"muse-{which}", progress=False)
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "train_log.json").write_text(json.dumps(result.steps))

    return str(cached_run("muse-model", config, build, force=force))


def target_model(profile: Profile, force: bool = False) -> str:
    """MUSE's target model: trained on forget + retain (tiny profiles: here, cached)."""
    return _model(profile, "target", force)


def retrained_model(profile: Profile, force: bool = False) -> str:
    """MUSE's retrained model: trained on retain only (never sees the forget articles)."""
    return _model(profile, "retrained", force)


