"""Settings as dataclasses (one field per knob, the paper's value beside it) and the three profiles.

smoke: seconds per notebook (tests, CI). mini (default): mini-TOFU and a tiny Llama trained here on the
CPU. paper: real TOFU and the papers' Llama checkpoints on GPU nodes. Every profile runs the same code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from typing import Any, ClassVar

from paperlib.benchmarks.tofu.mini import MiniTofuConfig
from paperlib.engine.constants import TEMPLATES
from paperlib.engine.errors import PaperlibError

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
    name: str = ""  # paper models: display name (e.g. "Llama-2-7B-chat"); "" = the tiny model
    params_b: float = 0.0  # paper models: parameters in billions (memory / GPU-hour estimates); 0 = tiny
    base: str = ""  # paper models: the pretrained hub model the TOFU original / retain models start from

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template {self.template!r}; allowed: {', '.join(TEMPLATES)}")


BNB_OPTIMIZERS = ("paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit")  # bitsandbytes (CUDA GPU)
OPTIMIZERS = ("adamw", *BNB_OPTIMIZERS)
PRECISIONS = ("no", "bf16")  # accelerate's mixed_precision


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
    optimizer: str = "adamw"  # "adamw", or bitsandbytes' (GPU): "paged_adamw_32bit" (paper), 8-bit variants
    mixed_precision: str = "no"  # "bf16": accelerate's autocast (paper models on GPUs); "no": the weights' dtype
    seed: int = 0
    stop_epoch: int = 0  # > 0: train only epochs 1..stop_epoch of this schedule (a checkpoint of the sweep)

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"schedule {self.schedule!r}; allowed: linear, cosine")
        if self.optimizer not in OPTIMIZERS:
            raise PaperlibError(f"TrainConfig optimizer={self.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
        if self.mixed_precision not in PRECISIONS:
            raise PaperlibError(f"TrainConfig mixed_precision={self.mixed_precision!r}; allowed: "
                                f"{', '.join(PRECISIONS)}")
        for name in ("epochs", "batch_size", "grad_accum", "seed", "stop_epoch"):
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
        if not 0 <= self.stop_epoch <= self.epochs:
            raise PaperlibError(f"TrainConfig stop_epoch={self.stop_epoch}; allowed: 0 (all) .. epochs={self.epochs}")

    @property
    def last_epoch(self) -> int:
        """The last epoch this run trains (stop_epoch, or every epoch of the schedule)."""
        return self.stop_epoch or self.epochs


@dataclass(frozen=True)
class EvalConfig:
    """TOFU evaluation settings (open-unlearning's values beside them)."""

    batch_size: int = 32
    max_new_tokens: int = 200  # TOFU: 200
    max_length: int = 512
    fluency_classifier: str = ""  # local copy of a gibberish classifier; "" = model-free n-gram entropy


@dataclass(frozen=True)
class RunSpec:
    """One unlearning run: every setting that determines its result. `key()` is its cache key (the dict that
    `paperlib.engine.cache` hashes and stores as run_config.json) and the same object is the build's argument
    (`paperlib.engine.unlearn`). A TOFU run sets `forget`, `benchmark` and `retain_log`; a raw-text run sets `corpus`
    (`TextCorpus.describe()`, its digest included), `evaluator`, `eval_args` and `evaluator_code`. Bulk inputs
    enter by digest (`update_mask`, `corpus`, `model`, `retain_log`); the locations `model_path` and
    `retain_log_path` are not part of the key (the content identities are). `spans`: the digest of a span file
    that replaces the benchmark's (e.g. automatic spans, `paperlib.benchmarks.spans`), in the key only when set."""

    method: str
    hparams: Any  # the method's frozen hyperparameter dataclass
    train: TrainConfig
    reference: Any  # paperlib.engine.reference.ReferenceConfig
    template: str
    lora: tuple[int, int, float]  # (lora_r, lora_alpha, lora_dropout)
    eval: EvalConfig
    model: Any  # pipeline.model_identity(model_path)
    model_path: str = ""
    eval_every_epoch: bool = True
    update_mask: str | None = None  # unlearn.mask_digest of the update mask
    save_model: bool = True
    forget: str = ""  # TOFU runs
    benchmark: BenchmarkConfig | None = None
    retain_log: dict | None = None  # pipeline.log_identity(retain_log_path)
    retain_log_path: str = ""
    spans: str | None = None  # a span file other than the benchmark's: the digest of its content (None: keyless)
    spans_path: str = ""
    corpus: dict | None = None  # raw-text runs
    evaluator: str = ""
    eval_args: dict | None = None
    evaluator_code: str = ""  # corpus.evaluator_code(evaluator): digest of the evaluator's source

    # the key's fields, in the order of the TOFU key before RunSpec existed (keys of cached runs stay valid)
    TOFU_KEY: ClassVar[tuple[str, ...]] = ("method", "hparams", "forget", "train", "reference", "benchmark",
                                           "template", "lora", "eval", "model", "retain_log", "eval_every_epoch",
                                           "update_mask", "save_model")
    TEXT_KEY: ClassVar[tuple[str, ...]] = ("method", "hparams", "corpus", "evaluator", "eval_args",
                                           "evaluator_code", "train", "reference", "template", "lora", "eval",
                                           "model", "eval_every_epoch", "update_mask", "save_model")

    def __post_init__(self) -> None:
        tofu, text = bool(self.forget), self.corpus is not None
        if tofu == text:
            raise ValueError("RunSpec: set either forget (a TOFU run) or corpus (a raw-text run), not "
                             f"{'both' if tofu else 'neither'}")
        if text and not self.evaluator:
            raise ValueError("RunSpec: a raw-text run needs an evaluator name")
        if not is_dataclass(self.hparams):
            raise TypeError(f"RunSpec hparams is {type(self.hparams).__name__}; allowed: a method's Hparams")

    @property
    def kind(self) -> str:
        """"tofu" or "text"."""
        return "text" if self.corpus is not None else "tofu"

    def key(self) -> dict[str, Any]:
        """The cache key: the key fields as a dict (hyperparameters as a dict; a raw-text key starts with
        "kind": "text"); a TOFU key is the same dict the pre-RunSpec `unlearn.run_config` returned."""
        names = self.TOFU_KEY if self.kind == "tofu" else self.TEXT_KEY
        key = {name: getattr(self, name) for name in names}
        key["hparams"] = asdict(self.hparams)
        if self.spans is not None:  # only then: keys of runs on the benchmark's own span file stay as they were
            key["spans"] = self.spans
        return key if self.kind == "tofu" else {"kind": "text", **key}


@dataclass(frozen=True)
class Profile:
    """Everything a notebook needs to know about scale."""

    name: str
    benchmark: BenchmarkConfig
    model: ModelConfig
    base: TrainConfig  # stage 1 (tiny models): pretraining on the general corpus (`mini_tofu.pretrain_rows`)
    finetune: TrainConfig  # stage 2: original = base fine-tuned on full, retain = on retainYY (TOFU's recipe)
    eval: EvalConfig
    # settings every unlearning run of the notebooks takes, as (key, value) pairs: TrainConfig fields for every
    # method, a hyperparameter for the methods that have it (e.g. optimizer=adamw where no GPU runs the paper's
    # paged AdamW; `paperlib.studies.palu`)
    unlearn: tuple[tuple[str, Any], ...] = ()
    tuning: tuple[tuple[str, Any], ...] = ()  # changes to the tuning grid (`methods.tuning.Grid` fields: lrs, seeds)


def _profiles() -> dict[str, Profile]:
    # the calibrated miniature (paperlib.studies.calibration.DESIGNS[-1]): pretraining at 3e-3 for 8 epochs, then TOFU's
    # recipe at a third of that learning rate for 15 epochs, until the original memorises its answers
    mini_train = TrainConfig(lr=3e-3, epochs=8, batch_size=32, warmup_epochs=1.0, schedule="cosine",
                             weight_decay=0.0)
    mini = Profile(
        name="mini",
        benchmark=BenchmarkConfig(),
        model=ModelConfig(),
        base=mini_train,
        finetune=replace(mini_train, lr=1e-3, epochs=15),
        eval=EvalConfig(batch_size=64, max_new_tokens=48, max_length=128),
    )
    smoke = replace(
        mini,
        name="smoke",
        benchmark=BenchmarkConfig(mini=MiniTofuConfig(n_authors=20, qa_per_author=5, n_real_authors=8,
                                                      n_world_facts=8, n_pretrain_people=20, pretrain_wordings=1)),
        model=ModelConfig(tiny=TinyLlamaConfig(vocab_size=1024, hidden_size=64, intermediate_size=128,
                                               num_hidden_layers=1, num_attention_heads=2)),
        base=replace(mini_train, epochs=3),
        finetune=replace(mini_train, epochs=3),
        eval=EvalConfig(batch_size=64, max_new_tokens=16, max_length=128),
    )
    paper = Profile(
        name="paper",
        benchmark=BenchmarkConfig(name="tofu", forget="forget05"),
        model=PAPER_MODELS["llama2-7b-chat"],
        base=TrainConfig(lr=1e-5, epochs=5),
        finetune=TrainConfig(lr=1e-5, epochs=5),
        eval=EvalConfig(batch_size=32, max_new_tokens=200, max_length=512),
    )
    return {p.name: p for p in (smoke, mini, paper)}


# ----------------------------------------------------------------------------------------- paper models
# Every model the three papers use. Sizes are the published parameter counts; `original` / `retain` are TOFU
# checkpoints ("{retain}" -> retain95 ...), "" where none is published (the model is fine-tuned from `base`).
PAPER_MODELS: dict[str, ModelConfig] = {
    "llama2-7b-chat": ModelConfig(  # PALU Table 1 (main rows), TPO; open-unlearning's published checkpoints
        template="llama2", name="Llama-2-7B-chat", params_b=6.74, base="meta-llama/Llama-2-7b-chat-hf",
        original="open-unlearning/tofu_Llama-2-7b-chat-hf_full",
        retain="open-unlearning/tofu_Llama-2-7b-chat-hf_{retain}"),
    "llama3.1-8b-instruct": ModelConfig(  # PALU Table 1 (Llama-3.1 rows), loc-unlearn
        template="llama3", name="Llama-3.1-8B-Instruct", params_b=8.03, base="meta-llama/Llama-3.1-8B-Instruct",
        original="open-unlearning/tofu_Llama-3.1-8B-Instruct_full",
        retain="open-unlearning/tofu_Llama-3.1-8B-Instruct_{retain}"),
    "olmo2-7b-instruct": ModelConfig(  # loc-unlearn; no published TOFU checkpoints: fine-tuned from `base`
        template="olmo2", name="OLMo-2-7B-Instruct", params_b=7.30, base="allenai/OLMo-2-1124-7B-Instruct"),
    "llama3-8b-instruct": ModelConfig(  # Unilogit on RWKU (zero-shot: the instruct model is the original)
        template="llama3", name="Llama-3-8B-Instruct", params_b=8.03, base="meta-llama/Meta-Llama-3-8B-Instruct",
        original="meta-llama/Meta-Llama-3-8B-Instruct"),
}


@dataclass(frozen=True)
class PaperSetting:
    """One paper's use of one model: the profile `paper-<model>` (the paper setting, name "paper", with that
    model), which paper, on which benchmarks, and which notebooks run it."""

    model: str  # key of PAPER_MODELS
    paper: str
    benchmarks: tuple[str, ...]
    notebooks: tuple[str, ...]  # notebook prefixes (00-08: PALU; 09: loc-unlearn; 10-12: Unilogit)


PALU_NOTEBOOKS = tuple(f"{i:02d}" for i in range(9))
PAPER_SETTINGS: tuple[PaperSetting, ...] = (
    PaperSetting("llama2-7b-chat", "PALU", ("tofu",), PALU_NOTEBOOKS),
    PaperSetting("llama3.1-8b-instruct", "PALU", ("tofu",), PALU_NOTEBOOKS),
    PaperSetting("llama3.1-8b-instruct", "loc-unlearn", ("tofu",), ("09",)),
    PaperSetting("olmo2-7b-instruct", "loc-unlearn", ("tofu",), ("09",)),
    PaperSetting("llama3-8b-instruct", "Unilogit", ("muse-news", "rwku"), ("10", "11", "12")),
)
PAPER_PROFILE_NAMES = tuple(f"paper-{key}" for key in PAPER_MODELS)  # get_profile("paper-llama3.1-8b-instruct")


def paper_profile(model: str) -> Profile:
    """The paper setting (name "paper": the papers' schedule and hyperparameters, `paperlib.methods.tuning`) with one
    of `PAPER_MODELS`; "paper" itself is the Llama-2-7B-chat one."""
    if model not in PAPER_MODELS:
        raise ValueError(f"paper model {model!r}; allowed: {', '.join(PAPER_MODELS)}")
    return replace(_profiles()["paper"], model=PAPER_MODELS[model])


def model_params_b(profile: Profile) -> float:
    """Parameters of the profile's model in billions: the paper model's published size, else the tiny Llama's
    (embedding tied with the output layer; attention 4 h^2, MLP 3 h i per layer)."""
    if profile.model.params_b:
        return profile.model.params_b
    t = profile.model.tiny
    per_layer = 4 * t.hidden_size ** 2 + 3 * t.hidden_size * t.intermediate_size
    return (t.vocab_size * t.hidden_size + t.num_hidden_layers * per_layer) / 1e9


# Full-parameter training memory per parameter: bf16 weights (2 B) + bf16 gradients (2 B) + fp32 master
# weights (4 B) + AdamW's two fp32 moments (8 B) = 16 B; a frozen bf16 reference model adds 2 B. Activations
# (batch- and length-dependent; small next to these at batch 4 x 512 tokens with checkpointing) not counted.
TRAIN_BYTES_PER_PARAM, REFERENCE_BYTES_PER_PARAM = 16, 2


def training_memory_gb(params_b: float, reference: bool = False) -> float:
    """GB for full-parameter AdamW in bf16 with fp32 states (plus a frozen bf16 reference model)."""
    return params_b * (TRAIN_BYTES_PER_PARAM + (REFERENCE_BYTES_PER_PARAM if reference else 0))


PROFILE_FILE_KEYS = ("base", "benchmark", "model", "eval", "unlearn", "tuning")
GRID_KEYS = ("lrs", "epochs", "seeds", "every_epoch")  # paperlib.methods.tuning.Grid's fields


def profile_file(path: str) -> Profile:
    """The profile a JSON file describes: {"base": a profile name, "benchmark": {field: value}, "model": {...},
    "eval": {...}, "unlearn": {key: value}, "tuning": {lrs | epochs | seeds | every_epoch: value}}, i.e. the
    base profile (its name, schedule and tuning grid) with those fields replaced, e.g. the paper setting
    pointed at local stand-ins (`paperlib.benchmarks.tofu.standins.save_profile`)."""
    import json
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise PaperlibError(f"profile file {path} does not exist; allowed: a profile name "
                            f"({', '.join(PROFILE_NAMES + PAPER_PROFILE_NAMES)}) or a .json profile file")
    spec = json.loads(file.read_text())
    unknown = sorted(set(spec) - set(PROFILE_FILE_KEYS))
    if unknown or spec.get("base") not in PROFILE_NAMES + PAPER_PROFILE_NAMES:
        names = ", ".join(PROFILE_NAMES + PAPER_PROFILE_NAMES)
        raise PaperlibError(f"profile file {path}: base {spec.get('base')!r}, unknown keys {unknown}; allowed keys: "
                            f"{', '.join(PROFILE_FILE_KEYS)}, base one of {names}")
    bad_tuning = sorted(set(spec.get("tuning", {})) - set(GRID_KEYS))
    if bad_tuning:
        raise PaperlibError(f"profile file {path}: tuning {bad_tuning}; allowed: {', '.join(GRID_KEYS)}")
    base = get_profile(spec["base"])
    parts = {k: replace(getattr(base, k), **spec[k]) for k in ("benchmark", "model", "eval") if k in spec}
    return replace(base, **parts, unlearn=tuple(spec.get("unlearn", {}).items()),
                   tuning=tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.get("tuning", {}).items()))


def get_profile(name: str) -> Profile:
    """The named profile: smoke, mini, paper (Llama-2-7B-chat) or paper-<model> (`PAPER_PROFILE_NAMES`), or the
    one a .json profile file describes (`profile_file`)."""
    if str(name).endswith(".json"):
        return profile_file(name)
    if name in PAPER_PROFILE_NAMES:
        return paper_profile(name.removeprefix("paper-"))
    profiles = _profiles()
    if name not in profiles:
        raise ValueError(f"profile {name!r}; allowed: {', '.join(PROFILE_NAMES + PAPER_PROFILE_NAMES)}")
    return profiles[name]
