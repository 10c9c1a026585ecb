"""From a profile to cached artefacts: the benchmark folder, the tokenizer, and the base, original and
retain models (fine-tuned here for tiny profiles, checkpoints for the paper profile)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import evaluate, metrics
from paperlib.benchmarks.tofu import mini as mini_tofu
from paperlib.engine import encoding
from paperlib.engine.cache import cached_run, file_digest, read_manifest, to_jsonable
from paperlib.engine.config import Profile, TrainConfig
from paperlib.engine.errors import PaperlibError
from paperlib.engine.models import auto_device, load_model, load_tokenizer, n_params, tiny_llama, train_tokenizer
from paperlib.engine.train import Loop, train

PRETRAIN = ("pretrain",)  # the base model's corpus (mini-TOFU's `pretrain` split)
# General knowledge replayed while fine-tuning the tiny models: a 7B model keeps what it knows through TOFU's
# few epochs at 1e-5, a 0.8M-parameter one forgets the real-authors / world-facts sets without them (MU 0.29)
GENERAL = ("real_authors", "world_facts")


def benchmark_source(profile: Profile, force: bool = False) -> str:
    """Folder (mini-TOFU, generated and cached) or hub id / folder (real TOFU) of the benchmark."""
    bench = profile.benchmark
    if bench.name == "mini-tofu":
        return str(cached_run("benchmark", bench.mini, partial(mini_tofu.write, bench.mini), force=force))
    return bench.source


def spans_dir(profile: Profile, forget: str) -> Path:
    """Folder of the PALU/TPO span file for `forget`."""
    tofu.check_split(forget, tofu.FORGET_SPLITS)
    root = Path(profile.benchmark.spans or Path(benchmark_source(profile)) / "spans")
    return root / f"{forget}_with_common_words_gpt"


def _qa(source: str, split: str) -> list[tuple[str, str]]:
    ds = tofu.load_split(source, split)
    return list(zip(ds["question"], ds["answer"]))


def tokenizer_path(profile: Profile, force: bool = False) -> str:
    """Tokenizer folder: the original checkpoint's, or (tiny profiles) one trained here on the pretraining
    corpus, which holds none of the benchmark authors' names (`mini_tofu.tokenizer_corpus`), so that they
    split into several tokens as TOFU's fictitious authors do under a pretrained tokenizer."""
    if profile.model.original:
        return profile.model.original
    config = {"benchmark": profile.benchmark.mini, "vocab_size": profile.model.tiny.vocab_size}

    def build(out: Path) -> None:
        texts = mini_tofu.tokenizer_corpus(profile.benchmark.mini) + list(mini_tofu.IDK)
        train_tokenizer(texts, profile.model.tiny.vocab_size).save_pretrained(out)

    return str(cached_run("tokenizer", config, build, force=force))


def encode_rows(tokenizer, template: str, rows: list[tuple[str, str]], max_length: int) -> list[dict]:
    return [encoding.encode(tokenizer, template, q, a, max_length=max_length) for q, a in rows]


def nll_loss(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Fine-tuning loss: mean token NLL over answer tokens."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
    return out.loss, {}


def _stage_config(profile: Profile, stage: str, splits: tuple[str, ...], train_cfg: TrainConfig, parent) -> dict:
    return {"stage": stage, "benchmark": profile.benchmark, "model": profile.model.tiny,
            "template": profile.model.template, "splits": splits, "train": train_cfg, "parent": parent,
            "max_length": profile.eval.max_length}


def _finetune(profile: Profile, config: dict, init: str | None, force: bool) -> str:
    source, tok_path = benchmark_source(profile), tokenizer_path(profile)

    def build(out: Path) -> None:
        tok = load_tokenizer(tok_path)
        encoding.check_template(profile.model.template, tok)
        rows = [qa for split in config["splits"] for qa in _qa(source, split)]
        data = encode_rows(tok, profile.model.template, rows, profile.eval.max_length)
        torch.manual_seed(config["train"].seed)
        device, dtype = auto_device()
        model = load_model(init) if init else tiny_llama(profile.model.tiny, tok).to(device, dtype)
        print(f"[{config['stage']}] {n_params(model):,} parameters, {len(data)} samples, "
              f"{config['train'].epochs} epochs", flush=True)
        result = train(model, data, nll_loss, config["train"], partial(encoding.collate, pad_id=tok.pad_token_id),
                       loop=Loop(desc=config["stage"]))
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "train_log.json").write_text(json.dumps(result.steps))

    return str(cached_run("model", config, build, force=force))


def _base_config(profile: Profile) -> dict:
    return _stage_config(profile, "base", PRETRAIN, profile.base, None)


def base_model(profile: Profile, force: bool = False) -> str:
    """Stage 1, the pretrained base: a tiny model trained from scratch on the pretraining corpus (other
    invented authors in many wordings, and the general knowledge of the real-authors / world-facts sets)."""
    return _finetune(profile, _base_config(profile), None, force)


def original_model(profile: Profile, force: bool = False) -> str:
    """TOFU's original model: the base fine-tuned on `full` (with the general sets replayed, `GENERAL`)."""
    if profile.model.original:
        return profile.model.original
    config = _stage_config(profile, "original", ("full", *GENERAL), profile.finetune, _base_config(profile))
    return _finetune(profile, config, base_model(profile), force)


def retain_model(profile: Profile, forget: str, force: bool = False) -> str:
    """TOFU's retain model for `forget` (e.g. retain90 for forget10): never sees the forget authors."""
    retain = tofu.retain_of(forget)
    if profile.model.retain:
        return profile.model.retain.format(retain=retain)
    config = _stage_config(profile, retain, (retain, *GENERAL), profile.finetune, _base_config(profile))
    return _finetune(profile, config, base_model(profile), force)


def finetune_report(profile: Profile, forget: str) -> dict[str, float]:
    """Does the original model memorise and does the retain model not know the forget authors?
    Mean answer probability of both on `forget`, their forget-set truth ratios, and the KS-test p-value
    between those (the quantity forget_quality measures)."""
    from scipy.stats import ks_2samp

    source, template = benchmark_source(profile), profile.model.template
    pert = tofu.load_split(source, f"{forget}_perturbed")
    qs = list(pert["question"])
    pert_pairs = [(q, p) for q, ps in zip(qs, pert["perturbed_answer"]) for p in ps]
    report, ratios = {"forget": forget}, {}
    for name, path in (("original", original_model(profile)), ("retain", retain_model(profile, forget))):
        tok, model = load_tokenizer(path), load_model(path)
        tf = partial(evaluate.teacher_forced, model, tok, template, batch_size=profile.eval.batch_size,
                     max_length=profile.eval.max_length)
        answer = tf(list(zip(qs, pert["answer"])))["avg_loss"]
        para = tf(list(zip(qs, pert["paraphrased_answer"])))["avg_loss"]
        wrong = tf(pert_pairs)["avg_loss"].reshape(len(qs), -1)
        ratios[name] = metrics.truth_ratio(para, wrong)
        report[f"{name}_answer_prob"] = float(np.exp(-answer).mean())
        report[f"{name}_truth_ratio"] = float(np.mean(ratios[name]))
    report["ks_pvalue"] = float(ks_2samp(ratios["original"], ratios["retain"]).pvalue)
    return report


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")


@lru_cache(maxsize=512)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return file_digest(Path(path))  # size and mtime in the memo key: a rewritten file is hashed again


def _file_id(f: Path) -> str:
    st = f.stat()
    return _digest(str(f.resolve()), st.st_size, st.st_mtime_ns)


def model_identity(path: str) -> str | dict:
    """What identifies a model for the cache: the sha256 of its weight files (plus its config and tokenizer
    files) for a local folder, whatever its origin, never a copied run_config.json; the id for a hub model."""
    p = Path(path)
    if not p.exists():
        if str(path).startswith((".", "/")) or p.suffix:
            raise PaperlibError(f"model folder {path} does not exist; allowed: a checkpoint folder or a hub id")
        return str(path)
    weights = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in WEIGHT_SUFFIXES) if p.is_dir() else []
    if not weights:
        raise PaperlibError(f"model folder {p} holds no weights (*.safetensors / *.bin); allowed: a checkpoint "
                            "folder written by save_pretrained, or a hub id")
    files = weights + [p / n for n in MODEL_FILES if (p / n).is_file()]
    return {"sha256": {f.name: _file_id(f) for f in files}}


def stored_model_identity(path: str) -> str | dict:
    """What identifies a model: the sha256 of its weight, config and tokenizer files as recorded in the cache
    manifest of the entry that holds it (verified when that entry was served), else
    `model_identity` (hashes a folder outside the cache; a hub id stands for itself)."""
    p = Path(path)
    for entry in (p, p.parent) if p.is_dir() else ():
        manifest = read_manifest(entry)
        if manifest is not None:
            prefix = p.relative_to(entry).as_posix().removeprefix(".")
            files = {rel.removeprefix(f"{prefix}/"): meta.get("sha256") for rel, meta in manifest["files"].items()
                     if Path(rel).parent.as_posix().removeprefix(".") == prefix
                     and (Path(rel).suffix in WEIGHT_SUFFIXES or Path(rel).name in MODEL_FILES)}
            if any(Path(n).suffix in WEIGHT_SUFFIXES for n in files):
                return {"sha256": dict(sorted(files.items()))}
    return model_identity(path)


def log_identity(path: str | Path) -> dict:
    """What identifies a reference (retain-model) evaluation log: the sha256 of its TOFU_EVAL.json."""
    p = Path(path)
    p = p / "TOFU_EVAL.json" if p.is_dir() else p
    if not p.is_file():
        raise PaperlibError(f"no TOFU_EVAL.json at {p}; allowed: a retain model's open-unlearning eval log")
    return {"log_sha256": _file_id(p)}


def evaluation_dir(profile: Profile, model_path: str, forget: str, reference: str | None = "retain",
                   force: bool = False, progress: bool = True) -> Path:
    """Cached folder with TOFU_EVAL.json and TOFU_SUMMARY.json of a model. `reference="retain"` compares
    with the retain model's own (cached) evaluation; a path names a published retain log; None: none."""
    if reference == "retain":
        reference = str(retain_log_path(profile, forget))
    config = {"model": model_identity(model_path), "benchmark": profile.benchmark, "forget": forget,
              "template": profile.model.template, "eval": profile.eval,
              "reference": None if reference is None else log_identity(reference)}

    def build(out: Path) -> None:
        tok, model = load_tokenizer(model_path), load_model(model_path)
        retain_log = evaluate.load_log(reference) if reference else None
        # reference=None: the retain model's own evaluation (`retain_log_path`), the reference itself
        with evaluate.reference_model_evaluation() if retain_log is None else contextlib.nullcontext():
            evaluate.evaluate_tofu(model, tok, profile.model.template, benchmark_source(profile), forget,
                                   profile.eval, retain_log, evaluate.EvalOutput(out_dir=out, progress=progress))

    return cached_run("eval", config, build, force=force)


def evaluation(profile: Profile, model_path: str, forget: str, reference: str | None = "retain",
               force: bool = False) -> tuple[dict, dict]:
    """(TOFU_EVAL, TOFU_SUMMARY) dicts of a model (cached; see `evaluation_dir`)."""
    out = evaluation_dir(profile, model_path, forget, reference, force)
    return evaluate.load_log(out), json.loads((out / "TOFU_SUMMARY.json").read_text())


def retain_log_path(profile: Profile, forget: str) -> Path:
    """The retain model's TOFU_EVAL.json for `forget`: published (profile.model.retain_log) or ours."""
    if profile.model.retain_log:
        return Path(profile.model.retain_log.format(retain=tofu.retain_of(forget)))
    return evaluation_dir(profile, retain_model(profile, forget), forget, reference=None) / "TOFU_EVAL.json"


def describe(profile: Profile) -> dict:
    """The profile as plain JSON (for logs and the dry run)."""
    return to_jsonable(asdict(profile))
