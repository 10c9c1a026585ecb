"""One unlearning run, cached: forget data -> reference pass -> the one training loop -> evaluations.

`unlearn(profile, method, forget)` builds the forget dataset (each forget item paired with one seeded,
uniformly random retain item and, for DPO, one IdK answer; the method adds its flags), checks every input
before any compute, runs the frozen reference model once (`paperlib.engine.reference`), trains with
`paperlib.engine.train.train` and the method's loss, evaluates after every epoch against the retain model's log,
and returns a run folder (`<cache>/unlearn/<hash of the full config>/`) holding:

- `train_log.json`: one row per step (loss, lr and the method's loss parts, e.g. PDU's `lam`);
- `epochs.json`: the TOFU summary after each evaluated epoch (curves);
- `TOFU_EVAL.json`, `TOFU_SUMMARY.json`: the final evaluation (open-unlearning's schema);
- `status.json` (strict JSON, non-finite numbers as null): {"status": "completed"} or {"status": "diverged",
  "epoch": e, "step": s, "message": ..., "last": {...}}, plus timings;
- `model/`: the final weights and tokenizer (LoRA merged), unless save_model=False or the run diverged.

A NaN/inf loss, non-finite weights or a non-finite evaluation stop that run only: its evaluation is skipped,
the folder is complete (and cached) with status "diverged" and no TOFU_SUMMARY.json, and the caller goes on.

`unlearn_text(profile, method, corpus, EvalCall(evaluator, eval_args), model_path)` does the same for raw text (MUSE,
RWKU): a `paperlib.engine.corpus.TextCorpus` cut into token blocks (`paperlib.engine.rawtext`), each forget block paired
with a random retain block, the registered evaluator after every epoch (its logs, e.g. MUSE_EVAL.json, and
SUMMARY.json instead of the TOFU files). Both build one frozen `paperlib.engine.config.RunSpec` (`run_spec`,
`text_run_spec`): the build's argument and, by `RunSpec.key()`, the cache key; `_train_run` is the part they
share (tokenizer, samples, model, reference pass, training loop, evaluations, run files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from paperlib import methods
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import evaluate, pipeline
from paperlib.engine import checks, encoding, rawtext
from paperlib.engine.cache import cache_root, cached_run, read_manifest, run_dir
from paperlib.engine.config import Profile, RunSpec, TrainConfig
from paperlib.engine.corpus import EvalCall, TextCorpus
from paperlib.engine.errors import NonFiniteError, PaperlibError
from paperlib.engine.reference import ReferenceConfig, make_reference
from paperlib.engine.train import Diverged, Loop, check_launch, check_mask, check_optimizer, check_precision, train
from paperlib.methods import Method, Needs, hparam_names, make_method, parse_value, profile_hparams, train_config

if TYPE_CHECKING:  # accelerate is imported where a run trains (a warm notebook never does)
    from accelerate import PartialState

KIND = "unlearn"
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
REFERENCE_KEYS = {"ref_cache_gb": "cache_gb", "ref_batch_size": "batch_size", "ref_mode": "mode"}


# ----------------------------------------------------------------------------------------- settings
SPANS_KEY = "spans"  # overrides[SPANS_KEY]: a span-file folder replacing the benchmark's (TOFU runs)
Resolved = tuple[Method, TrainConfig, ReferenceConfig]  # a method with its settings (`resolve`)


@dataclass(frozen=True)
class RunOptions:
    """How one unlearning run is evaluated, kept and shown, beyond its method, data and starting model."""

    eval_every_epoch: bool = True  # evaluate after every epoch (False: after the last only); joins the key
    save_model: bool = True  # keep the unlearned weights in the run folder; joins the key
    force: bool = False  # recompute even if the run is cached
    progress: bool = True  # progress bars and one line per epoch
    out: str | Path | None = None  # a folder to copy the finished run into (checked first: `check_out`)


def span_file_digest(folder: str | Path) -> str:
    """sha256 of a span file's content (question -> answer, spans, common words), checked on loading."""
    path = Path(folder)
    if not path.is_dir():
        raise PaperlibError(f"span file {folder} is not a folder; allowed: a span-file folder (datasets "
                            "save_to_disk, e.g. written by `paperlib spans`)")
    spans = tofu.load_spans(path)
    blob = json.dumps({q: [v["answer"], v["spans"], v["common"]] for q, v in sorted(spans.items())})
    return hashlib.sha256(blob.encode()).hexdigest()


def split_overrides(method: str, overrides: dict[str, Any] | None) -> tuple[dict, dict, dict]:
    """(hyperparameters, TrainConfig fields, ReferenceConfig fields) from one dict of `key=value` settings.

    Keys: the method's hyperparameter names, TrainConfig fields (`lr`, `epochs`, ... or `train.lr`), and
    `ref_cache_gb`, `ref_batch_size`, `ref_mode`. String values are parsed to the field's type.
    """
    hp_names = hparam_names(method)
    hp, train_kw, ref_kw = {}, {}, {}
    for key, value in (overrides or {}).items():
        bare = key.removeprefix("train.")
        if key in hp_names:
            hp[key] = value
        elif bare in TRAIN_KEYS:
            kind = type(getattr(TrainConfig(), bare))
            train_kw[bare] = parse_value(kind, value, key)
        elif key in REFERENCE_KEYS:
            field = REFERENCE_KEYS[key]
            ref_kw[field] = parse_value(type(getattr(ReferenceConfig(), field)), value, key)
        else:
            allowed = [*hp_names, *TRAIN_KEYS, *REFERENCE_KEYS]
            raise ValueError(f"unknown setting {key!r} for {method}; allowed: {', '.join(allowed)}")
    return hp, train_kw, ref_kw


def resolve(profile: Profile, method: str, overrides: dict[str, Any] | None = None
            ) -> tuple[Method, TrainConfig, ReferenceConfig]:
    """The method object (profile's scale changes, then `overrides`), its TrainConfig and ReferenceConfig."""
    hp, train_kw, ref_kw = split_overrides(method, overrides)
    m = make_method(method, {**profile_hparams(profile, method), **hp})
    return m, dataclasses.replace(train_config(profile, method), **train_kw), ReferenceConfig(**ref_kw)


def mask_digest(mask: dict[str, torch.Tensor] | None) -> str | None:
    """A stable digest of a parameter update mask (names and contents), for the run's cache key."""
    if mask is None:
        return None
    h = hashlib.sha256()
    for name in sorted(mask):
        h.update(name.encode())
        h.update(str(tuple(mask[name].shape)).encode())
        h.update(mask[name].detach().cpu().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------- data
def forget_rows(profile: Profile, forget: str, needs: Needs, span_file: str | Path | None = None) -> list[dict]:
    """The forget split as rows (question, answer and, when the method needs them, spans / common words from
    the benchmark's span file, or from `span_file`, a span-file folder such as `paperlib spans` writes)."""
    source = pipeline.benchmark_source(profile)
    ds = tofu.load_split(source, forget)
    if needs.span_file:
        folder = Path(span_file) if span_file else pipeline.spans_dir(profile, forget)
        if not folder.is_dir():
            raise FileNotFoundError(f"no span annotation for {forget} at {folder}: this method needs the forget "
                                    "set's span file (target_words + common_words)")
        ds = tofu.attach_spans(ds, tofu.load_spans(folder))
    return ds.to_list()


def encode_samples(tokenizer, template: str, rows: list[dict], retain_rows: list[dict], idk: list[str] | None,
                   method: Method, max_length: int, seed: int = 0) -> list[dict]:
    """Training samples {index, forget, retain, idk}: each forget row (with its `sensitive` flags from the row's
    spans) with one uniformly random retain row (seeded) and, with `idk`, one random IdK answer, as
    `method.needs()` asks; then `method.prepare` adds the method's own flags and `method.check_data` checks."""
    needs = method.needs()
    rng = random.Random(seed)
    samples = []
    for i, row in enumerate(rows):
        encode = partial(encoding.encode, tokenizer, template, row["question"], row["answer"], max_length=max_length,
                         row=i)
        f = encode(row.get("spans") or ())
        f.pop("prompt_len")
        method.prepare(f, row, encode)
        sample = {"index": i, "forget": f}
        if needs.retain:
            r = retain_rows[rng.randrange(len(retain_rows))]
            sample["retain"] = _plain(encoding.encode(tokenizer, template, r["question"], r["answer"],
                                                      max_length=max_length))
        if needs.idk:
            sample["idk"] = _plain(encoding.encode(tokenizer, template, row["question"], rng.choice(idk),
                                                   max_length=max_length))
        samples.append(sample)
    method.check_data(samples)
    return samples


def _plain(sample: dict) -> dict:
    return {"input_ids": sample["input_ids"], "labels": sample["labels"]}


def _idk_answers(profile: Profile, method: Method) -> list[str]:
    path = getattr(method.hp, "idk", "") or pipeline.benchmark_source(profile)
    return checks.check_idk(path)


def profile_shape(profile: Profile) -> tuple[int, int] | None:
    """(V, decoder layers) of the model a tiny profile trains here, known before anything is built (V is the
    profile's tokenizer size, an upper bound of the trained tokenizer's); None for a checkpoint profile."""
    if profile.model.original:
        return None
    return profile.model.tiny.vocab_size, profile.model.tiny.num_hidden_layers


def check_settings(profile: Profile, method: str, overrides: dict[str, Any] | None = None,
                   model_path: str | None = None) -> tuple[Method, TrainConfig, ReferenceConfig]:
    """`resolve`, with every setting checked that the profile alone can check, before the benchmark or any model
    is built: names, types and ranges, the optimizer, and (profile's own model) K <= V and RMU's layer. The
    model's own V and depth are checked again once it exists. `overrides` may hold `spans` (not a setting)."""
    m, train_cfg, ref_cfg = resolve(profile, method, {k: v for k, v in (overrides or {}).items() if k != SPANS_KEY})
    _check_optimizer(train_cfg)
    if model_path is None and (shape := profile_shape(profile)) is not None:
        m.check(*shape)
    return m, train_cfg, ref_cfg


def _model_config(model_path: str) -> Any:
    """The transformers config of a checkpoint folder or hub id."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_path)


def _model_shape(model_path: str) -> tuple[int, int]:
    """(vocab size, layers) of a checkpoint: read from its config.json when both are top-level integers there
    (a warm run check need not import transformers), else from the transformers config."""
    local = Path(model_path) / "config.json"
    if local.is_file():
        raw = json.loads(local.read_text())
        if all(isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)
               for k in ("vocab_size", "num_hidden_layers")):
            return raw["vocab_size"], raw["num_hidden_layers"]
    cfg = _model_config(model_path)
    return cfg.vocab_size, cfg.num_hidden_layers


def _check_mask_early(model_path: str, mask: dict[str, torch.Tensor], lora: bool) -> None:
    """Check a mask's names and shapes on a weightless (meta-device) copy of the model, before any compute."""
    if lora:
        return  # names of the LoRA-wrapped model: checked after wrapping, still before training
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        meta = AutoModelForCausalLM.from_config(_model_config(model_path))
    check_mask(meta, mask)


# ----------------------------------------------------------------------------------------- the run
def _spec_common(profile: Profile, resolved: Resolved, model_path: str, update_mask: dict | None,
                 options: RunOptions) -> dict:
    method, train_cfg, ref_cfg = resolved
    eval_every_epoch, save_model = options.eval_every_epoch, options.save_model
    return {"method": method.name, "hparams": method.hp, "train": train_cfg, "reference": ref_cfg,
            "template": profile.model.template,
            "lora": (profile.model.lora_r, profile.model.lora_alpha, profile.model.lora_dropout),
            "eval": profile.eval, "model": pipeline.model_identity(model_path), "model_path": model_path,
            "eval_every_epoch": eval_every_epoch, "update_mask": mask_digest(update_mask), "save_model": save_model}


def run_spec(profile: Profile, resolved: Resolved, forget: str, model_path: str, retain_log: str,
             update_mask: dict | None, options: RunOptions, span_file: str | None = None) -> RunSpec:
    """The RunSpec of a TOFU unlearning run (`.key()`: everything that determines its result); `resolved`: the
    method and its settings (`resolve`); `span_file`: a span file replacing the benchmark's (its content digest
    joins the key)."""
    return RunSpec(**_spec_common(profile, resolved, model_path, update_mask, options),
                   forget=forget, benchmark=profile.benchmark, retain_log=pipeline.log_identity(retain_log),
                   retain_log_path=retain_log, spans=span_file_digest(span_file) if span_file else None,
                   spans_path=str(span_file or ""))


def spec_method(spec: RunSpec) -> Method:
    """A fresh method object for a run spec (its registered class with the spec's hyperparameters)."""
    return methods.method_class(spec.method)(spec.hparams)


def unlearn(profile: Profile, method: str, forget: str = "forget10", overrides: dict[str, Any] | None = None,
            model_path: str | None = None, update_mask: dict[str, torch.Tensor] | None = None,
            options: RunOptions = RunOptions()) -> Path:
    """Unlearn `forget` from `model_path` (default: the profile's original model) with `method`; return the
    complete run folder (cached by the full config). `overrides`: hyperparameters, TrainConfig fields and
    ref_* settings (see `split_overrides`), and `spans`: a span-file folder replacing the benchmark's;
    `update_mask`: parameter name -> bool tensor (True = may change); `options`: evaluation schedule, saving,
    recomputation, progress and `out`, a folder to copy the finished run into (checked first, see `check_out`:
    never inside the cache, never a file or a folder holding anything else).
    Every input is checked before any model runs."""
    out = options.out
    if out is not None:
        check_out(out)
    tofu.check_split(forget, tofu.FORGET_SPLITS)
    overrides = dict(overrides or {})
    span_file = overrides.pop(SPANS_KEY, None)
    span_file = str(span_file) if span_file else None
    if span_file:
        span_file_digest(span_file)  # checked before any compute
    m, train_cfg, ref_cfg = check_settings(profile, method, overrides, model_path)
    needs = m.needs()
    idk = _idk_answers(profile, m) if needs.idk else None
    checks.split_rows(pipeline.benchmark_source(profile), forget)
    rows = forget_rows(profile, forget, needs, span_file)
    if not rows:
        raise PaperlibError(f"forget set {forget} of {pipeline.benchmark_source(profile)} is empty; allowed: a "
                            "split with at least one question")
    if model_path is not None:
        checks.check_model_dir(model_path)
    model_path = str(model_path or pipeline.original_model(profile))
    m.check(*_model_shape(model_path))
    if update_mask is not None:
        _check_mask_early(model_path, update_mask, profile.model.lora_r > 0)
    source = pipeline.benchmark_source(profile)
    retain_rows = tofu.load_split(source, tofu.retain_of(forget)).to_list() if needs.retain else []
    retain_log = str(pipeline.retain_log_path(profile, forget))
    spec = run_spec(profile, (m, train_cfg, ref_cfg), forget, model_path, retain_log, update_mask, options,
                    span_file)
    if out is not None:
        check_out(out, run_dir(KIND, spec.key()).name)
    build = partial(_build, spec, profile, (rows, retain_rows, idk), update_mask, options.progress)
    run = _cached(spec.key(), build, options.force)
    if out is not None:
        _deliver(run, out)
    return run


# ----------------------------------------------------------------------------------------- raw text
TEXT_SUMMARY = "SUMMARY.json"  # a raw-text run's final summary (the evaluator's dict)


def text_methods() -> list[str]:
    """Registered methods that can unlearn raw text with their default settings: those that need no IdK answer
    and no QA structure (common words); PALU / NCE need the corpus's forget_spans."""
    return [name for name in methods.names(ablation=True) if _text_refusal(make_method(name)) is None]


def _text_refusal(m: Method) -> str | None:
    """Why method `m` (with its settings) cannot train on raw text, or None."""
    needs = m.needs()
    if needs.idk:
        return "needs an IdK answer to each forget question"
    if needs.common:
        return "needs the QA span file's common words"
    return None


def _text_samples(tok, corpus: TextCorpus, m: Method, seed: int) -> list[dict]:
    """Training samples {index, forget, retain}: the corpus's forget blocks (sensitive flags from forget_spans)
    each paired with one uniformly random retain block (seeded), when the method uses a retain term. Blocks
    of one token (a text's last block can be) carry no next-token target and are left out."""
    needs = m.needs()
    keep = ("input_ids", "labels", "sensitive")
    forget = [{k: b[k] for k in keep} for b in rawtext.encode_texts(tok, corpus.forget, corpus.block,
                                                                   corpus.forget_spans) if len(b["input_ids"]) > 1]
    retain = [{k: b[k] for k in keep[:2]} for b in rawtext.encode_texts(tok, corpus.retain, corpus.block)
              if len(b["input_ids"]) > 1] if needs.retain else []
    rng = random.Random(seed)
    samples = []
    for i, f in enumerate(forget):
        sample = {"index": i, "forget": f}
        if needs.retain:
            sample["retain"] = retain[rng.randrange(len(retain))]
        samples.append(sample)
    m.check_data(samples)
    return samples


def _check_summary(summary: Any, evaluator: str) -> dict:
    """An evaluator's summary: a dict whose numbers are finite (NonFiniteError otherwise: the run diverged)."""
    if not isinstance(summary, dict):
        raise TypeError(f"evaluator {evaluator!r} returned {type(summary).__name__}; allowed: a dict")
    bad = [k for k, v in summary.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise NonFiniteError(f"evaluator {evaluator!r}: non-finite {', '.join(map(str, bad))}")
    return summary


def text_run_spec(profile: Profile, resolved: Resolved, corpus: TextCorpus, evaluation: EvalCall, model_path: str,
                  update_mask: dict | None, options: RunOptions) -> RunSpec:
    """The RunSpec of a raw-text unlearning run (the corpus by its description and digest, the evaluator by
    name, arguments and source digest)."""
    from paperlib.engine.corpus import evaluator_code

    return RunSpec(**_spec_common(profile, resolved, model_path, update_mask, options),
                   corpus=corpus.describe(), evaluator=evaluation.name, eval_args=dict(evaluation.args),
                   evaluator_code=evaluator_code(evaluation.name))


def unlearn_text(profile: Profile, method: str, corpus: TextCorpus, evaluation: EvalCall, model_path: str | Path,
                 overrides: dict[str, Any] | None = None, update_mask: dict[str, torch.Tensor] | None = None,
                 options: RunOptions = RunOptions()) -> Path:
    """Unlearn the raw-text `corpus` (its forget documents in `corpus.block`-token blocks, every token a target)
    from `model_path` with `method`; return the complete run folder (cached by the full config, the corpus's
    digest and the evaluator's arguments included). `evaluation`: the registered evaluator
    (`paperlib.engine.corpus.register_evaluator`) and its arguments; it runs after every epoch
    (`options.eval_every_epoch`; always after the last, writing its logs into the run folder); its final summary
    is SUMMARY.json. Same training loop, reference pass, divergence handling, `overrides`, `update_mask` and
    `options` as `unlearn`. Refused before any compute: a method that needs IdK
    answers or QA structure (DPO, TPO; `text_methods()` lists the ones that apply), PALU / NCE without
    `corpus.forget_spans`, a retain term without retain documents, a block longer than the model's context."""
    from paperlib.engine.corpus import get_evaluator

    out, evaluator, eval_args = options.out, evaluation.name, evaluation.args
    if out is not None:
        check_out(out)
    if not isinstance(corpus, TextCorpus):
        raise PaperlibError(f"corpus is {type(corpus).__name__}; allowed: a paperlib.engine.corpus.TextCorpus")
    evaluate_text = get_evaluator(evaluator)
    try:
        eval_args = json.loads(json.dumps(eval_args, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise PaperlibError(f"eval_args {eval_args!r} is not plain JSON ({err}); allowed: a dict of JSON values "
                            "(it is part of the run's cache key)") from None
    if not isinstance(eval_args, dict):
        raise PaperlibError(f"eval_args is {type(eval_args).__name__}; allowed: a dict")
    m, train_cfg, ref_cfg = resolve(profile, method, overrides)
    _check_optimizer(train_cfg)
    why = _text_refusal(m)
    if why:
        raise PaperlibError(f"method {m.name} {why}, which raw text ({corpus.name}) does not have; allowed on raw "
                            f"text: {', '.join(text_methods())}")
    needs = m.needs()
    if needs.spans and corpus.forget_spans is None:
        raise PaperlibError(f"method {m.name} needs sensitive spans and corpus {corpus.name} has no forget_spans; "
                            "allowed: a TextCorpus with forget_spans (e.g. automatic spans from "
                            "paperlib.benchmarks.spans), "
                            f"or {m.name} with tokens=all")
    if needs.retain and not corpus.retain:
        raise PaperlibError(f"method {m.name} uses a retain term and corpus {corpus.name} has no retain document; "
                            "allowed: retain documents, or alpha=0")
    checks.check_model_dir(model_path)
    model_path = str(model_path)
    model_config = _model_config(model_path)
    vocab, layers = model_config.vocab_size, model_config.num_hidden_layers
    context = getattr(model_config, "max_position_embeddings", None)
    if context is not None and corpus.block > context:
        raise PaperlibError(f"corpus {corpus.name} block={corpus.block} is longer than the model's context "
                            f"({context} positions); allowed: block <= {context}")
    m.check(vocab, layers)
    if update_mask is not None:
        _check_mask_early(model_path, update_mask, profile.model.lora_r > 0)
    spec = text_run_spec(profile, (m, train_cfg, ref_cfg), corpus, EvalCall(evaluator, eval_args), model_path,
                         update_mask, options)
    if out is not None:
        check_out(out, run_dir(KIND, spec.key()).name)

    def describe(summary: dict) -> str:
        shown = [(k, v) for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return " ".join(f"{k}={v:.3g}" for k, v in shown[:4])

    def build(folder: Path) -> None:
        m_run = spec_method(spec)
        hooks = _Hooks(lambda tok: _text_samples(tok, corpus, m_run, spec.train.seed),
                       lambda model_now, tok, out_dir: _check_summary(
                           evaluate_text(model_now, tok, profile, dict(spec.eval_args), out_dir), evaluator),
                       describe, summary_file=TEXT_SUMMARY)
        _train_run(spec, profile, m_run, hooks, update_mask, options.progress, folder)

    run = _cached(spec.key(), build, options.force)
    if out is not None:
        _deliver(run, out)
    return run


def check_out(out: str | Path, key: str | None = None) -> Path:
    """Refuse an output folder whose use would lose data: a file, a folder inside the run cache (e.g. the
    cached run's own folder), or a non-empty folder that is not an earlier copy of this same run (`key`:
    the run's cache key; None checks only that it is a copy of some unlearning run)."""
    path = Path(out)
    allowed = "allowed: a new or empty folder outside the run cache, or an earlier copy of this same run"
    if path.exists() and not path.is_dir():
        raise PaperlibError(f"--out {out} is a file; {allowed}")
    root, resolved = cache_root().resolve(), path.resolve()
    if resolved == root or root in resolved.parents:
        raise PaperlibError(f"--out {out} is inside the run cache {root}; {allowed}")
    if path.is_dir() and any(path.iterdir()):
        manifest = read_manifest(path)
        if manifest is None or manifest.get("kind") != KIND:
            raise PaperlibError(f"--out {out} is a non-empty folder that is not a copy of an unlearning run; "
                                f"{allowed}")
        if key is not None and manifest.get("key") != key:
            raise PaperlibError(f"--out {out} holds a copy of another run (key {manifest.get('key')}, this run "
                                f"is {key}); {allowed}")
    return path


def copy_run(run: Path, out: str | Path) -> Path:
    """Copy a finished run folder to `out` (checked with `check_out`), replacing an earlier copy at the end."""
    import os
    import shutil

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(run, tmp, symlinks=True)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def _check_optimizer(cfg: TrainConfig) -> None:
    """bitsandbytes' optimizers (paged_adamw_32bit: the paper profile's) need bitsandbytes and a GPU, the
    launcher's mixed precision must be the run's, and the launch DDP, not FSDP: say so before any compute
    (`paperlib.engine.train`)."""
    check_optimizer(cfg)
    check_precision(cfg)
    check_launch()


def _deliver(run: Path, out: str | Path) -> None:
    """Copy the finished run to `out` on the main process; under `accelerate launch` every process returns only
    once the copy exists (the command line reads it next)."""
    state = _state()
    if state.is_main_process:
        copy_run(run, out)
    state.wait_for_everyone()


def _state() -> PartialState:
    """The process state (`accelerate launch` / torchrun; ACCELERATE_USE_CPU=1 runs several CPU processes)."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def _cached(config: dict, build: Callable[[Path], None], force: bool) -> Path:
    """`cached_run`, also under `accelerate launch`: every process trains, the main one owns the folder."""
    return cached_run(KIND, config, build, force=force)  # several processes: cache._cached_run_together


def _build(spec: RunSpec, profile: Profile, texts: tuple[list[dict], list[dict], list[str] | None],
           update_mask: dict | None, progress: bool, out: Path) -> None:
    """Build the TOFU run `spec`: QA samples (`texts`: forget rows, retain rows, IdK answers), then
    `evaluate.evaluate_tofu` after every epoch (TOFU_EVAL/SUMMARY.json)."""
    source = pipeline.benchmark_source(profile)
    rows, retain_rows, idk = texts
    m, forget = spec_method(spec), spec.forget

    def make_data(tok) -> list[dict]:
        encoding.check_template(profile.model.template, tok)
        return encode_samples(tok, spec.template, rows, retain_rows, idk, m, spec.eval.max_length,
                              spec.train.seed)

    retain_log = evaluate.load_log(spec.retain_log_path)

    def evaluate_fn(model_now: torch.nn.Module, tok, out_dir: Path | None) -> dict:
        _, summary = evaluate.evaluate_tofu(model_now, tok, spec.template, source, forget, spec.eval, retain_log,
                                            evaluate.EvalOutput(out_dir=out_dir, progress=False))
        return summary

    def describe(summary: dict) -> str:
        fq = summary.get("forget_quality", float("nan"))
        return f"forget_quality={fq:.3g} model_utility={summary['model_utility']:.3f}"

    _train_run(spec, profile, m, _Hooks(make_data, evaluate_fn, describe), update_mask, progress, out)


@dataclass(frozen=True)
class _Hooks:
    """What a kind of run (TOFU QA, raw text) plugs into the run both share."""

    make_data: Callable[[Any], list[dict]]  # tokenizer -> training samples
    evaluate: Callable[[torch.nn.Module, Any, Path | None], dict]  # (model, tokenizer, out_dir) -> summary
    describe: Callable[[dict], str]  # a summary as one short line
    summary_file: str | None = None  # where the final summary is written (None: the evaluation writes its own)


def _train_run(spec: RunSpec, profile: Profile, m: Method, hooks: _Hooks, update_mask: dict | None,
               progress: bool, out: Path) -> None:
    """The run both kinds share: tokenizer, training samples (`hooks.make_data(tokenizer)`), model (LoRA, mask
    check), reference pass, the one training loop with `hooks.evaluate(model, tokenizer, out_dir)` after every
    epoch (the last one writes its logs into `out`), then train_log.json, epochs.json, status.json (completed or
    diverged), the final summary as `hooks.summary_file` (when given) and the model."""
    from paperlib.engine.models import add_lora, load_model, load_tokenizer

    make_data, evaluate_fn, describe, summary_file = hooks.make_data, hooks.evaluate, hooks.describe, hooks.summary_file

    train_cfg, ref_cfg, model_path = spec.train, spec.reference, spec.model_path
    eval_every_epoch, save_model = spec.eval_every_epoch, spec.save_model
    state = _state()
    main = state.is_main_process
    timing: dict[str, Any] = {}
    tok = load_tokenizer(model_path)
    needs = m.needs()
    data = make_data(tok)
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)

    model = load_model(model_path, device=state.device)
    if profile.model.lora_r > 0:
        model = add_lora(model, profile.model)
    if update_mask is not None:
        check_mask(model, update_mask)

    t0 = time.perf_counter()
    ref = make_reference(model, data, needs, collate, ref_cfg,
                         load_frozen=lambda: load_model(model_path, device=state.device))
    timing["reference"] = {"mode": ref.mode, "seconds": time.perf_counter() - t0,
                           "bytes": ref.nbytes() if ref.mode == "cache" else None}

    eval_seconds: list[float] = []
    last_eval: dict = {}

    def run_eval(model_now: torch.nn.Module, write: bool) -> dict:
        t = time.perf_counter()
        was_training = model_now.training
        model_now.eval()
        summary = evaluate_fn(model_now, tok, out if write else None)
        model_now.train(was_training)
        eval_seconds.append(time.perf_counter() - t)
        last_eval.clear()
        last_eval.update(summary)
        return summary

    def on_epoch_end(model_now: torch.nn.Module, epoch: int) -> dict:
        final = epoch == train_cfg.last_epoch
        if not main or not (eval_every_epoch or final):
            return {}
        try:
            summary = run_eval(model_now, write=final)
        except NonFiniteError as err:  # e.g. weights so large that the scores overflow
            raise Diverged(f"evaluation after epoch {epoch} is non-finite ({err})") from None
        if progress:
            print(f"[{m.name}] epoch {epoch}/{train_cfg.epochs}: {describe(summary)}", flush=True)
        return summary

    m.setup(-(-len(data) // (train_cfg.batch_size * state.num_processes)))
    t0 = time.perf_counter()
    result = train(model, data, lambda model_, batch: m.loss(model_, batch, ref(batch)), train_cfg, collate,
                   update_mask=update_mask,
                   loop=Loop(on_epoch_end=on_epoch_end, desc=f"unlearn {m.name}", progress=progress))
    timing["train_seconds"] = time.perf_counter() - t0 - sum(eval_seconds)
    timing["eval_seconds"] = list(eval_seconds)
    if not main:
        return

    status: dict[str, Any] = {"status": "completed"}
    diverged = result.diverged_at is not None
    if diverged:  # a result, not an error: recorded and cached; no evaluation of a broken model, no weights
        status = {"status": "diverged", "epoch": result.diverged_epoch, "step": result.diverged_at + 1,
                  "message": f"diverged in epoch {result.diverged_epoch} (step {result.diverged_at + 1}): "
                             f"{result.reason}; evaluation skipped",
                  "last": {"step": result.steps[-1] if result.steps else {}, "eval": dict(last_eval)}}
    (out / "train_log.json").write_text(_strict_json(result.steps))
    (out / "epochs.json").write_text(_strict_json([e for e in result.epochs if len(e) > 1], indent=1))
    timing["eval_seconds"] = list(eval_seconds)
    timing["steps"] = len(result.steps)
    (out / "status.json").write_text(_strict_json({**status, "timing": timing}, indent=1))
    if summary_file and not diverged:
        (out / summary_file).write_text(_strict_json(last_eval, indent=1))
    if save_model and not diverged:
        final_model = model.merge_and_unload() if profile.model.lora_r > 0 else model
        final_model.save_pretrained(out / "model")
        tok.save_pretrained(out / "model")


# ----------------------------------------------------------------------------------------- reading a run
def _strict_json(value: Any, **kw) -> str:
    """JSON without NaN / Infinity (not JSON): non-finite numbers become null."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(value), allow_nan=False, **kw)


def read_run(path: str | Path) -> dict[str, Any]:
    """A run folder's status, final summary (None if absent or if the run diverged), per-epoch summaries
    and per-step log. `status["status"]` is "completed" or "diverged" (then `epoch`, `step`, `message`)."""
    p = Path(path)
    if not (p / "status.json").is_file():
        raise PaperlibError(f"{p} is not an unlearning run folder (no status.json); allowed: a folder returned "
                            "by unlearn() or copied by `paperlib unlearn --out`")
    status = json.loads((p / "status.json").read_text())
    summary = p / "TOFU_SUMMARY.json"
    if not summary.is_file():
        summary = p / TEXT_SUMMARY
    done = status.get("status") == "completed" and summary.is_file()
    return {"status": status,
            "summary": json.loads(summary.read_text()) if done else None,
            "epochs": json.loads((p / "epochs.json").read_text()),
            "steps": json.loads((p / "train_log.json").read_text()),
            "config": json.loads((p / "run_config.json").read_text())}


def unlearned_model(run: str | Path) -> Path:
    """Folder of a run's final weights (`save_model=True`)."""
    path = Path(run) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{run} holds no saved model (run with save_model=True)")
    return path
