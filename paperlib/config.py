"""Settings as dataclasses (one field per knob, the paper's value beside it) and the three profiles.

smoke: seconds per notebook (tests, CI). mini (default): mini-TOFU and a tiny Llama trained here on the
CPU. paper: real TOFU and the papers' Llama checkpoints on GPU nodes. Every profile runs the same code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from paperlib.constants import TEMPLATES
from paperlib.data.mini_tofu import MiniTofuConfig
from paperlib.errors import PaperlibError

PROFILE_NAMES = ("smoke", "mini", "paper")
BENCHMARKS = ("mini-tofu", "tofu")


@dataclass(frozen=True)
class BenchmarkConfig:
    """Which TOFU-shaped benchmark, and where its files are."""

    name: str = "mini-tofu"  # "mini-tofu" (generated here) or "tofu" (real)
    source: str = "locuslab/TOFU"  # tofu: hub dataset id or a local folder in TOFU's layout
    spans: str = ""  # folder with forgetXX_with_common_words_gpt/ ("" = <source>/spans)
    mini: MiniTofuConfig = field(default_factory=MiniTofuConfig)
    forget: str = "forget10"  # default forget split (paper main table: forget05)

    def __post_init__(self) -> None:
        if self.name not in BENCHMARKS:
            raise ValueError(f"benchmark {self.name!r}; allowed: {', '.join(BENCHMARKS)}")


@dataclass(frozen=True)
class TinyLlamaConfig:
    """Architecture of a tiny LlamaForCausalLM trained from scratch (0.7M parameters at these values)."""

    vocab_size: int = 2048  # byte-level BPE trained on the benchmark text
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    max_position_embeddings: int = 128


@dataclass(frozen=True)
class ModelConfig:
    """Where the original / retain models come from: trained here (tiny) or checkpoints (paper)."""

    template: str = "tiny"  # prompt format: tiny | llama2 (`[INST] q [/INST]a`) | llama3 (chat template)
    tiny: TinyLlamaConfig = field(default_factory=TinyLlamaConfig)
    original: str = ""  # checkpoint folder / hub id of the TOFU original model; "" = fine-tune here
    retain: str = ""  # same for retain models, "{retain}" replaced by e.g. retain90; "" = fine-tune here
    retain_log: str = ""  # published retain-model TOFU_EVAL.json, "{retain}" replaced; "" = evaluate ours
    lora_r: int = 0  # 0 = full fine-tuning; > 0 = LoRA rank (peft)
    lora_alpha: int = 32
    lora_dropout: float = 0.05

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template {self.template!r}; allowed: {', '.join(TEMPLATES)}")


@dataclass(frozen=True)
class TrainConfig:
    """One optimisation run (fine-tuning or unlearning). Paper values: methods.md, 'Training defaults'."""

    lr: float = 1e-5  # paper: 1e-5
    epochs: int = 10  # paper: 5 (fine-tune), 10 (unlearn)
    batch_size: int = 32  # per step and device; effective = batch_size * grad_accum * devices (paper: 32)
    grad_accum: int = 1
    weight_decay: float = 0.01  # paper: 0.01
    warmup_epochs: float = 1.0  # paper: 1 warm-up epoch, then linear decay
    schedule: str = "linear"  # "linear" (paper) or "cosine"
    max_grad_norm: float = 1.0
    optimizer: str = "adamw"  # "adamw" or "paged_adamw_32bit" (bitsandbytes, GPU; paper)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule {self.schedule!r}; allowed: linear, cosine")
        if self.optimizer not in ("adamw", "paged_adamw_32bit"):
            raise ValueError(f"optimizer {self.optimizer!r}; allowed: adamw, paged_adamw_32bit")
        for name in ("epochs", "batch_size", "grad_accum", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise PaperlibError(f"TrainConfig {name}={value!r}; allowed: an integer")
        rules = {"lr": (0, False, "a finite number > 0"), "weight_decay": (0, True, "a finite number >= 0"),
                 "warmup_epochs": (0, True, "a finite number >= 0"),
                 "max_grad_norm": (0, True, "a finite number >= 0 (0 = no clipping)")}
        for name, (low, inclusive, allowed) in rules.items():
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and (value >= low if inclusive else value > low)
            if not ok:
                raise PaperlibError(f"TrainConfig {name}={value!r}; allowed: {allowed}")
        if self.epochs < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise PaperlibError(f"need epochs >= 1, batch_size >= 1, grad_accum >= 1; got {self}")


@dataclass(frozen=True)
class EvalConfig:
    """TOFU evaluation settings (open-unlearning's values beside them)."""

    batch_size: int = 32
    max_new_tokens: int = 200  # TOFU: 200
    max_length: int = 512
    fluency_classifier: str = ""  # local copy of a gibberish classifier; "" = model-free n-gram entropy


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to know about scale."""

    name: str
    benchmark: BenchmarkConfig
    model: ModelConfig
    base: TrainConfig  # stage 1 (tiny models): general knowledge (real-authors / world-facts analogues)
    finetune: TrainConfig  # stage 2: original = full, retain = retainYY, on top of the base stage
    eval: EvalConfig


def _profiles() -> dict[str, Profile]:
    mini_train = TrainConfig(lr=3e-3, epochs=30, batch_size=32, warmup_epochs=1.0, schedule="cosine",
                             weight_decay=0.0)
    mini = Profile(
        name="mini",
        benchmark=BenchmarkConfig(),
        model=ModelConfig(),
        base=replace(mini_train, epochs=30),
        finetune=mini_train,
        eval=EvalConfig(batch_size=64, max_new_tokens=48, max_length=128),
    )
    smoke = replace(
        mini,
        name="smoke",
        benchmark=BenchmarkConfig(mini=MiniTofuConfig(n_authors=20, qa_per_author=5, n_real_authors=8,
                                                      n_world_facts=8)),
        model=ModelConfig(tiny=TinyLlamaConfig(vocab_size=1024, hidden_size=64, intermediate_size=128,
                                               num_hidden_layers=1, num_attention_heads=2)),
        base=replace(mini_train, epochs=3),
        finetune=replace(mini_train, epochs=3),
        eval=EvalConfig(batch_size=64, max_new_tokens=16, max_length=128),
    )
    paper = Profile(
        name="paper",
        benchmark=BenchmarkConfig(name="tofu", forget="forget05"),
        model=ModelConfig(template="llama2", original="open-unlearning/tofu_Llama-2-7b-chat-hf_full",
                          retain="open-unlearning/tofu_Llama-2-7b-chat-hf_{retain}"),
        base=TrainConfig(lr=1e-5, epochs=5),
        finetune=TrainConfig(lr=1e-5, epochs=5),
        eval=EvalConfig(batch_size=32, max_new_tokens=200, max_length=512),
    )
    return {p.name: p for p in (smoke, mini, paper)}


def get_profile(name: str) -> Profile:
    """The named profile (smoke, mini or paper)."""
    profiles = _profiles()
    if name not in profiles:
        raise ValueError(f"profile {name!r}; allowed: {', '.join(PROFILE_NAMES)}")
    return profiles[name]
