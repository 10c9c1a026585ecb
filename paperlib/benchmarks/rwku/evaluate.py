"""RWKU's evaluation side: the benchmark's source and scale per profile (`settings`), the mini base stage
(`base`: tokenizer and tiny model that learn the mini RWKU people), the "rwku" evaluator (registered in
`paperlib.benchmarks.rwku.metrics`), the forget corpora and the evaluations of the models (notebook 12's study and
tables: `paperlib.studies.rwku`; its runs are planned by `paperlib.benchmarks.rwku.plugin`).

Setting (RWKU's main one): single-target unlearning from the forget corpus alone (the target's passages, raw
text cut into `block`-token blocks); no retain corpus, so every method runs with its retain weight alpha = 0
(GA has none; UnDIAL's default is 0). The original model is the model that knows the targets: the mini base
model here, Llama-3-8B-Instruct in the paper profile (zero-shot: RWKU's targets are real people it knows).

Methods on raw text (notebook 12): GA, NPO, UnDIAL, Unilogit, and PALU on automatic spans (the model-free
`paperlib.benchmarks.spans.capitalised_spans` of each passage: names, places, titles, numbers; the log-prob annotator
needs a retain model, which RWKU's zero-shot setting does not have). Not applicable (`unlearn.text_methods`):
DPO / TPO need an IdK answer per forget question (RWKU has none for raw passages), TPO also QA span files'
common words; NCE (PALU's RQ2 ablation) would apply like PALU but is not a row of the RWKU table.

Tuning (`paperlib.methods.tuning`, the project's one rule): per target and method, the lr grid x epochs; the score
to maximise is FQ = 100 - forget All (ROUGE-L recall x 100 pooled over the three forget levels), the utility
is MU = neighbour All (the knowledge next to the target that must survive); the selected point is the highest
FQ with MU >= 95% of the original model's neighbour All, then re-run with the grid's seeds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from paperlib.benchmarks.rwku import base as rwku_base
from paperlib.benchmarks.rwku import data as rwku_data
from paperlib.benchmarks.rwku import metrics as rwku_metrics
from paperlib.benchmarks.rwku.settings import (  # noqa: F401 (the benchmark's settings, read here as rwku.X)
    EVALUATOR,
    FORGET_CORPORA,
    GENERATION_PROMPT,
    METHODS,
    NO_RETAIN,
    SETTINGS,
    SPAN_METHODS,
    TABLE_COLUMNS,
    RwkuSettings,
    benchmark_source,
    check_forget_corpus,
    settings,
    target_names,
)
from paperlib.engine.cache import cached_run, code_fingerprint
from paperlib.engine.config import Profile
from paperlib.engine.corpus import TextCorpus
from paperlib.engine.errors import PaperlibError
from paperlib.engine.models import load_model, load_tokenizer


def base_model(profile: Profile, force: bool = False) -> str:
    """The original model of RWKU unlearning: the paper profile's checkpoint, or the mini base model
    (`paperlib.benchmarks.rwku.base`)."""
    if settings(profile).mini is None:
        return profile.model.original
    return rwku_base.base_model(profile, force)


# ----------------------------------------------------------------------------------------- evaluator
def eval_args(profile: Profile, target: str) -> dict[str, Any]:
    """The evaluator's arguments for `target` (part of each run's cache key, with the evaluation code's
    fingerprint so that a changed metric recomputes)."""
    s = settings(profile)
    return {"source": benchmark_source(profile), "target": target, "max_new_tokens": s.max_new_tokens,
            "fluency_tokens": s.fluency_tokens, "shots": s.shots, "max_length": s.context if s.mini else 512,
            "code": code_fingerprint("rwku-eval")}


evaluate_rwku = rwku_metrics.evaluate_rwku  # the registered "rwku" evaluator
_target_data = rwku_metrics.target_data


def evaluate_model(profile: Profile, target: str, model_path: str, out_dir: str | Path | None = None
                   ) -> dict[str, float]:
    """The RWKU row of any checkpoint on `target` (cached per model identity and target)."""
    from paperlib.benchmarks.tofu.pipeline import model_identity

    args = eval_args(profile, target)
    config = {"benchmark": "rwku", "model": model_identity(model_path), "args": args,
              "template": profile.model.template, "batch_size": profile.eval.batch_size}

    def build(out: Path) -> None:
        tok, model = load_tokenizer(model_path), load_model(model_path)
        row = evaluate_rwku(model.eval(), tok, profile, args, out)
        (out / "SUMMARY.json").write_text(json.dumps(row, indent=1))

    run = cached_run("rwku-eval", config, build)
    if out_dir is not None:
        rwku_metrics.write_logs({p.stem: json.loads(p.read_text()) for p in Path(run).glob("*.json")
                                 if p.stem in ("forget", "neighbor", "forget_mia", "retain_mia", "mmlu", "fluency")},
                                out_dir)
    return json.loads((Path(run) / "SUMMARY.json").read_text())


def generate_texts(model, tokenizer, template: str, target: str, n_texts: int, max_new_tokens: int, seed: int,
                   temperature: float = 1.0) -> list[dict]:
    """RWKU's generated forget corpus of `target`: `n_texts` samples (seeded with `seed`, so deterministic on
    one machine) from `model` prompted with GENERATION_PROMPT as a chat user turn; rows {"text": ...} (RWKU's
    training-text schema), each only what the model produced (prompt left out, special tokens dropped,
    stripped); empty samples are left out. No text at all: a PaperlibError."""
    import torch

    from paperlib.benchmarks.rwku.data import chat_prompt

    prompt = chat_prompt(template, tokenizer, GENERATION_PROMPT.format(target=target))
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    device = next(model.parameters()).device
    ids = ids.to(device).repeat(n_texts, 1)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=True, temperature=temperature, top_k=0, top_p=1.0, use_cache=True,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    texts = [t.strip() for t in tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)]
    rows = [{"text": t} for t in texts if t]
    if not rows:
        raise PaperlibError(f"the model generated only empty texts about RWKU target {target!r} "
                            f"({n_texts} samples, seed {seed}); allowed: a model that writes about the target")
    return rows


def generated_corpus(profile: Profile, target: str, force: bool = False) -> list[dict]:
    """The base model's own texts about `target` (`generate_texts` with the profile's settings), cached per
    model identity, template, target, prompt and generation settings (code: `cache.CODE["rwku-generated"]`)."""
    from paperlib.benchmarks.tofu.pipeline import model_identity

    s, path = settings(profile), base_model(profile)
    config = {"model": model_identity(path), "template": profile.model.template, "target": target,
              "prompt": GENERATION_PROMPT, "n_texts": s.gen_texts, "tokens": s.gen_tokens, "seed": s.gen_seed,
              "temperature": s.gen_temperature}

    def build(out: Path) -> None:
        tok, model = load_tokenizer(path), load_model(path)
        rows = generate_texts(model.eval(), tok, profile.model.template, target, s.gen_texts, s.gen_tokens,
                              s.gen_seed, s.gen_temperature)
        (out / "generated.json").write_text(json.dumps(rows, indent=1))

    run = cached_run("rwku-generated", config, build, force=force)
    return json.loads((Path(run) / "generated.json").read_text())


def corpus(profile: Profile, target: str, spans: bool = False, forget_corpus: str | None = None) -> TextCorpus:
    """The unlearning corpus of `target`: its passages (RWKU's passage.json) or, with `forget_corpus`
    "generated" (default: the profile's setting), the base model's own texts about it (`generated_corpus`,
    RWKU's zero-shot corpus); no retain documents; the choice is in the corpus name and texts, so in every
    run's cache key. With `spans`, each text's sensitive spans from the model-free annotator
    `paperlib.benchmarks.spans.capitalised_spans` (names, places, titles, numbers: raw passages have no span files and
    RWKU's zero-shot setting no retain model, so the log-prob annotator does not apply)."""
    kind = check_forget_corpus(settings(profile).forget_corpus if forget_corpus is None else forget_corpus)
    if kind == "generated":
        texts = tuple(r["text"] for r in generated_corpus(profile, target))
        name = f"rwku:{target}:generated"
    else:
        data = json.loads(_target_data(benchmark_source(profile), target))
        texts = tuple(r["text"] for r in data["passage"])
        name = f"rwku:{target}"
    if not texts:
        raise PaperlibError(f"RWKU target {target!r} has no passages (passage.json); allowed: a target with its "
                            "forget corpus")
    found = None
    if spans:
        from paperlib.benchmarks.spans import capitalised_spans

        found = tuple(tuple(capitalised_spans(t)) for t in texts)
    return TextCorpus(name=name, forget=texts, retain=(), block=settings(profile).block,
                      forget_spans=found)


def scores(row: dict) -> dict[str, float]:
    """The tuning rule's two numbers from an RWKU row: FQ = 100 - forget All, MU = neighbour All."""
    return {"FQ": 100.0 - row["forget All"], "MU": row["neighbor All"]}


def original_rows(profile: Profile) -> pd.DataFrame:
    """The original model's RWKU row per target."""
    path = base_model(profile)
    return pd.DataFrame([{"target": t, "method": "Original", **(r := evaluate_model(profile, t, path)), **scores(r)}
                         for t in target_names(profile)])


# ----------------------------------------------------------------------------------------- command line
def evaluate_cli(model: str, source: str | None, profile_name: str | None, targets: list[str] | None,
                 template: str | None, out: str) -> None:
    """`paperlib evaluate --benchmark rwku`: RWKU's files (forget.json, neighbor.json, forget_mia.json,
    retain_mia.json, mmlu.json, fluency.json) of `model` per target in `out/<Target_name>/`, and the table rows
    in `out/RWKU_SUMMARY.json`. `source`: the hub id or a local RWKU-layout folder (default: the profile's, mini
    RWKU for smoke / mini); `targets`: names or folder names (default: the profile's). Inputs checked first."""
    from paperlib.engine import checks
    from paperlib.engine.config import get_profile
    from paperlib.engine.models import load_model, load_tokenizer

    profile = get_profile(profile_name or "mini")
    if template:
        profile = replace(profile, model=replace(profile.model, template=template))
    checks.check_out_file(out)
    src = source or benchmark_source(profile)
    names = [rwku_data.load_target(src, t)["target"] for t in targets] if targets else target_names(profile)
    checks.check_model_dir(model)
    tok, lm = load_tokenizer(model), load_model(model)
    s = settings(profile)
    rows = {}
    for name in names:
        args = {**eval_args(profile, name), "source": src}
        if source:
            args["max_length"] = 512
        rows[name] = evaluate_rwku(lm.eval(), tok, profile, args, Path(out) / name.replace(" ", "_"))
    (Path(out) / "RWKU_SUMMARY.json").write_text(json.dumps(rows, indent=1))
    print(json.dumps(rows, indent=1))
    print(f"wrote RWKU's files per target under {out} and RWKU_SUMMARY.json ({s.max_new_tokens} new tokens per probe)")
