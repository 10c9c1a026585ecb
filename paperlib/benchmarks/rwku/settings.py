"""RWKU's settings per profile and its benchmark folder: which benchmark (generated mini RWKU or the real one),
how many targets, the evaluation's lengths, the unlearning corpus, the base stage's schedule. Its own module so
that the base model (`rwku.base`) and the benchmark (`rwku.evaluate`) read them without importing each
other."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from paperlib.benchmarks.rwku import data as rwku_data
from paperlib.benchmarks.rwku import mini as mini_rwku
from paperlib.engine.cache import cached_run
from paperlib.engine.config import Profile, TrainConfig
from paperlib.engine.errors import PaperlibError

EVALUATOR = "rwku"
METHODS = ("GA", "NPO", "UnDIAL", "Unilogit", "PALU")
NO_RETAIN = {"NPO": {"alpha": 0.0}, "Unilogit": {"alpha": 0.0}, "PALU": {"alpha": 0.0}}  # RWKU: forget corpus only
SPAN_METHODS = ("PALU",)  # trained on the corpus with automatic sensitive spans (`corpus(..., spans=True)`)
TABLE_COLUMNS = ("forget FB", "forget QA", "forget AA", "forget All", "neighbor FB", "neighbor QA", "neighbor All",
                 "MIA FM", "MIA RM", "utility Gen", "utility Flu")


@dataclass(frozen=True)
class RwkuSettings:
    """RWKU's scale in one profile: which benchmark (`mini`: generated; None: `source`, the hub id or a local
    copy), how many targets, the evaluation's decoding lengths, few-shot count and the training block."""

    mini: mini_rwku.MiniRwkuConfig | None
    source: str = rwku_data.HUB_ID
    n_targets: int = 3
    max_new_tokens: int = 30  # RWKU: 30
    fluency_tokens: int = 256  # RWKU: 256
    shots: int = 5  # RWKU's MMLU: 5-shot
    block: int = 512
    context: int = 256  # tiny model's positions (the prompts with few-shot examples need more than 128)
    base: TrainConfig = field(default_factory=lambda: TrainConfig(lr=3e-3, epochs=30, batch_size=32,
                                                                  schedule="cosine", weight_decay=0.0))
    batch_size: int = 0  # unlearning batch size (0: the profile's); mini corpora are a few blocks
    blocks_estimate: int = 16  # dry run: forget blocks per target (an estimate; RWKU's passages vary)
    forget_corpus: str = "passages"  # "passages" (passage.json) or "generated" (the base model's own texts)
    gen_texts: int = 8  # "generated": sampled texts per target
    gen_tokens: int = 64  # "generated": new tokens per text
    gen_seed: int = 0  # "generated": torch seed of the sampling
    gen_temperature: float = 1.0  # "generated": sampling temperature (top-k / top-p off)
    # tiny base: "base" (mini-TOFU's pretrained base and tokenizer, then the RWKU people) or "scratch" (before
    # issue 23: a tokenizer and a tiny model trained on the mini RWKU text alone)
    init: str = "base"

    def __post_init__(self) -> None:
        check_forget_corpus(self.forget_corpus)
        if self.init not in ("base", "scratch"):
            raise PaperlibError(f"RwkuSettings init={self.init!r}; allowed: 'base', 'scratch'")
        for name in ("gen_texts", "gen_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise PaperlibError(f"RwkuSettings {name}={getattr(self, name)!r}; allowed: an integer >= 1")
        if not self.gen_temperature > 0:
            raise PaperlibError(f"RwkuSettings gen_temperature={self.gen_temperature!r}; allowed: a number > 0")


FORGET_CORPORA = ("passages", "generated")
# "generated": the user turn that asks the base model about the target (RWKU's instruction style; zero-shot,
# only the target's name is given). Its continuations, prompt excluded, are the forget corpus.
GENERATION_PROMPT = "Please write a short passage about {target}.\n"


def check_forget_corpus(value: Any) -> str:
    """`value` if it names a forget corpus, else one PaperlibError naming it and the allowed values."""
    if value not in FORGET_CORPORA:
        raise PaperlibError(f"RWKU forget_corpus={value!r}; allowed: {', '.join(map(repr, FORGET_CORPORA))}")
    return value


SETTINGS: dict[str, RwkuSettings] = {
    # issue 23: 10 targets (3 made "mean ± sd over targets" a spread of 3 values)
    "mini": RwkuSettings(mini=mini_rwku.MiniRwkuConfig(n_targets=10), n_targets=10, max_new_tokens=16,
                         fluency_tokens=40, shots=2, block=32, batch_size=4, blocks_estimate=8,
                         gen_texts=8, gen_tokens=48),
    "smoke": RwkuSettings(mini=mini_rwku.MiniRwkuConfig(n_targets=2, n_background=4, n_general=12, n_fluency=2,
                                                        n_retain_mia=2),
                          n_targets=1, max_new_tokens=8, fluency_tokens=12, shots=1, block=32, batch_size=4,
                          gen_texts=8, gen_tokens=16,
                          base=TrainConfig(lr=3e-3, epochs=3, batch_size=32, schedule="cosine", weight_decay=0.0)),
    "paper": RwkuSettings(mini=None, n_targets=100),  # RWKU's 100 targets, each unlearned on its own
}


def settings(profile: Profile) -> RwkuSettings:
    """RWKU settings of `profile` (its name: smoke, mini, paper)."""
    if profile.name not in SETTINGS:
        raise PaperlibError(f"profile {profile.name!r} has no RWKU settings; allowed: {', '.join(SETTINGS)}")
    return SETTINGS[profile.name]


def benchmark_source(profile: Profile, force: bool = False) -> str:
    """Folder of the mini RWKU (generated and cached) or the real benchmark's hub id / folder."""
    s = settings(profile)
    if s.mini is None:
        return s.source
    return str(cached_run("rwku-benchmark", s.mini, partial(mini_rwku.write, s.mini), force=force))


def target_names(profile: Profile) -> list[str]:
    """The profile's targets: the first `n_targets` of the benchmark (RWKU's index order)."""
    names = rwku_data.targets(benchmark_source(profile))
    return names[: settings(profile).n_targets]


