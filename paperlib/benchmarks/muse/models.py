"""MUSE's scale per profile and its cached stages: the benchmark folder (mini-MUSE generated here, or the
real corpus) and the target / retrained models (tiny profiles: mini-TOFU's pretrained tiny base fine-tuned with
the project's training loop on forget + retain1 + retain2 / retain1 + retain2, plus the earlier coverage both
read (`mini_muse.prior_texts`), raw text cut into blocks by `paperlib.engine.rawtext`; `MuseSettings.init=
"scratch"`: from scratch, as before issue 23; paper profile: MUSE's published checkpoints). One job, its own
cache fingerprint, so that an edit to notebook helpers (`paperlib.benchmarks.muse.evaluate`) retrains nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from paperlib.benchmarks.muse import data as muse
from paperlib.benchmarks.muse import mini as mini_muse
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import encoding, rawtext
from paperlib.engine.cache import cached_run, file_digest
from paperlib.engine.config import Profile, TrainConfig
from paperlib.engine.errors import PaperlibError
from paperlib.engine.models import auto_device, load_model, load_tokenizer, n_params, tiny_llama
from paperlib.engine.train import Loop, train

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
    init: str = "base"  # tiny models: "base" (fine-tuned from mini-TOFU's pretrained base) or "scratch"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise PaperlibError(f"MuseSettings init={self.init!r}; allowed: {', '.join(map(repr, INITS))}")


INITS = ("base", "scratch")


SETTINGS = {
    "paper": MuseSettings(),
    # issue 23's design m3-30-epochs (`paperlib.studies.muse_calibration.DESIGNS`, chosen by its rule `chosen`)
    "mini": MuseSettings(mini=mini_muse.MiniMuseConfig(n_templates=6, sentences=3, questions=3, prior_share=0.7,
                                                       gt_words=32),
                         block=128, verbmem_new_tokens=64, knowmem_new_tokens=12, max_length=256,
                         train=TrainConfig(lr=3e-3, epochs=30, batch_size=8, warmup_epochs=1.0, schedule="cosine",
                                           weight_decay=0.0)),
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
    return _OVERRIDE.get(name, SETTINGS[name])


_OVERRIDE: dict[str, MuseSettings] = {}


@contextmanager
def using(name: str, s: MuseSettings) -> Iterator[None]:
    """Within the block, profile `name` reads MUSE settings `s` (a calibration design; `studies.muse_calibration`)."""
    _OVERRIDE[name] = s
    try:
        yield
    finally:
        _OVERRIDE.pop(name, None)


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
    init = pipeline.base_model(profile) if s.init == "base" else None
    tok_path = pipeline.tokenizer_path(profile)
    config = {"stage": f"muse-{which}", "benchmark": s.mini, "splits": TRAIN_SPLITS[which], "model": tiny,
              "train": train_cfg, "block": s.block,  # the tokenizer by content, not by its folder in the cache
              "tokenizer": file_digest(Path(tok_path) / "tokenizer.json"),
              "init": init and pipeline.model_identity(init)}

    def build(out: Path) -> None:
        tok = load_tokenizer(tok_path)
        data = load_data(profile)
        prior = Path(benchmark_source(profile)) / mini_muse.PRIOR_FILE
        texts = [t for split in TRAIN_SPLITS[which] for t in data.raw[split]]
        texts += json.loads(prior.read_text()) if prior.is_file() else []
        blocks = [{"input_ids": b["input_ids"], "labels": b["labels"]}
                  for b in rawtext.encode_texts(tok, texts, s.block) if len(b["input_ids"]) > 1]
        torch.manual_seed(train_cfg.seed)
        device, dtype = auto_device()
        if init:  # RoPE positions: the base's 128 extend to MUSE's context without new weights
            model = load_model(init).to(device, dtype)
            model.config.max_position_embeddings = s.context
        else:
            model = tiny_llama(tiny, tok).to(device, dtype)
        print(f"[muse-{which}] {n_params(model):,} parameters, {len(blocks)} blocks, {train_cfg.epochs} epochs",
              flush=True)
        result = train(model, blocks, pipeline.nll_loss, train_cfg, partial(encoding.collate, pad_id=tok.pad_token_id),
                       loop=Loop(desc=f"muse-{which}", progress=False))
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


