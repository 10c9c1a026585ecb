"""The oracle experiment's first stage (loc-unlearn, methods.md): put the forget set into a known place.

`injected_model`: the retain model (it never saw the forget authors) fine-tuned on the forget answers (NLL)
with only a random `ratio` (10%) share of the MLP down_proj weights trainable (`oracle_mask`), plus
`retain_weight` x NLL on a paired, seeded random retain sample as the retain regulariser, so the rest of the
model's behaviour is held while the forget facts go into the masked weights. Cached as kind "inject"
(`paperlib.engine.cache.CODE["inject"]` fingerprints this module, so an edit here rebuilds it);
`paperlib.studies.localization` unlearns the result with the same mask vs its random complement.

Injection budget (rule fixed before any unlearning result; it looks only at the injected model): the
candidates of `BUDGETS` (per profile, ordered from the smallest training budget to the largest: learning
rate and epochs of the injection schedule) are tried in order, and the first whose injected model knows the
forget set at least as well as the original model (forget-set extraction strength ES >= the original's, i.e.
FS_injected <= FS_original, FS = 1 - mean ES) while keeping MU >= `tuning.MU_FRACTION` (95%) of the retain
model's MU is used (`select_budget`). When none does, the largest is used and the choice is flagged. The
selection (`inject_selection`, a kind "inject-selection" cache entry holding `selection.json`) records every
tried candidate (schedule, FS, MU, seconds), the chosen one, and FS of the original and retain models;
`describe_selection` is the line notebook 09 prints. The mask stays the paper's: 10% of down_proj.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from paperlib.engine.cache import cached_run
from paperlib.engine.config import Profile, TrainConfig
from paperlib.engine.errors import PaperlibError
from paperlib.methods import masks


def oracle_mask_config(ratio: float = 0.1, seed: int = 0, complement: bool = False) -> masks.MaskConfig:
    """The oracle's random down_proj mask (global top ratio of uniform scores), or its random complement."""
    return masks.MaskConfig(attribution="random_down", ratio=ratio, scope="global", seed=seed,
                            kind="random_complement" if complement else "normal")


def oracle_mask(profile: Profile, forget: str = "forget10", ratio: float = 0.1, seed: int = 0,
                complement: bool = False) -> dict[str, torch.Tensor]:
    """The injection mask (or its complement) for the profile's retain model of `forget` (shapes only)."""
    from paperlib.benchmarks.tofu import pipeline

    model = pipeline.retain_model(profile, forget)
    return masks.mask_for(profile, oracle_mask_config(ratio, seed, complement), forget, model)[0]


def inject_train_config(profile: Profile, **changes: Any) -> TrainConfig:
    """Injection schedule: the profile's fine-tuning schedule (`profile.finetune`) with `changes`."""
    return replace(profile.finetune, **changes)


# Candidate injection budgets per profile (changes to `profile.finetune`), smallest first; fixed up front.
# mini (lr 3e-3, 30 epochs, cosine): the fine-tuning schedule, then a larger lr, then more epochs as well.
# smoke: two candidates so the tests walk the selection. paper: the fine-tuning schedule, then twice the epochs.
BUDGETS: dict[str, tuple[dict[str, Any], ...]] = {
    "mini": ({}, {"lr": 1e-2}, {"lr": 1e-2, "epochs": 60}, {"lr": 3e-2, "epochs": 60}),
    "smoke": ({}, {"lr": 1e-2}),
    "paper": ({}, {"epochs": 10}),
}


def budgets(profile: Profile) -> tuple[dict[str, Any], ...]:
    """The injection budgets tried for `profile` (`BUDGETS`; profiles not listed: the fine-tuning schedule)."""
    return BUDGETS.get(profile.name, ({},))


def qualifies(fs: float, mu: float, fs_original: float, mu_retain: float, mu_fraction: float = 0.95) -> bool:
    """The injection rule for one candidate: FS <= the original model's FS and MU >= mu_fraction x the retain
    model's MU."""
    return fs <= fs_original and mu >= mu_fraction * mu_retain


def select_budget(candidates: Sequence[dict[str, float]], fs_original: float, mu_retain: float,
                  mu_fraction: float = 0.95) -> tuple[int, bool]:
    """(index, flagged): the first of `candidates` (dicts with FS and MU, ordered from the smallest budget to
    the largest) that `qualifies`, with flagged False; when none does, the last one, flagged True."""
    if not candidates:
        raise PaperlibError("no injection candidate; allowed: at least one")
    for i, c in enumerate(candidates):
        if qualifies(c["FS"], c["MU"], fs_original, mu_retain, mu_fraction):
            return i, False
    return len(candidates) - 1, True


def inject_selection(profile: Profile, forget: str = "forget10", ratio: float = 0.1, seed: int = 0,
                     retain_weight: float = 1.0, force: bool = False) -> dict[str, Any]:
    """The injection budget chosen by the module's rule (cached, kind "inject-selection", `selection.json`): chosen
    (its `train_changes`), index, flagged, FS_original, FS_retain, MU_retain, and per tried candidate its
    changes, FS, MU, seconds (injection training, as measured when it was built) and whether it qualifies.
    Candidates are tried smallest first and the search stops at the first that qualifies."""
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.methods import tuning

    original, retain = pipeline.original_model(profile), pipeline.retain_model(profile, forget)
    grid = budgets(profile)
    config = {"stage": "inject-select", "benchmark": profile.benchmark, "template": profile.model.template,
              "forget": forget, "original": pipeline.model_identity(original),
              "retain": pipeline.model_identity(retain), "mask": asdict(oracle_mask_config(ratio, seed)),
              "budgets": [inject_train_config(profile, **c) for c in grid], "retain_weight": retain_weight,
              "mu_fraction": tuning.MU_FRACTION, "max_length": profile.eval.max_length}

    def build(out: Path) -> None:
        fs_original = 1.0 - float(pipeline.evaluation(profile, original, forget)[1]["extraction_strength"])
        _, r = pipeline.evaluation(profile, retain, forget)
        fs_retain, mu_retain = 1.0 - float(r["extraction_strength"]), float(r["model_utility"])
        tried = []
        for changes in grid:
            path = injected_model(profile, forget, ratio, seed, retain_weight, changes)
            _, s = pipeline.evaluation(profile, path, forget)
            info = json.loads((Path(path) / "inject_info.json").read_text())
            c = {"changes": changes, "FS": 1.0 - float(s["extraction_strength"]), "MU": float(s["model_utility"]),
                 "seconds": info["seconds"], "path": path}
            c["qualifies"] = qualifies(c["FS"], c["MU"], fs_original, mu_retain, tuning.MU_FRACTION)
            tried.append(c)
            if c["qualifies"]:
                break
        index, flagged = select_budget(tried, fs_original, mu_retain, tuning.MU_FRACTION)
        (out / "selection.json").write_text(json.dumps(
            {"chosen": grid[index], "index": index, "flagged": flagged, "FS_injected": tried[index]["FS"],
             "MU_injected": tried[index]["MU"], "FS_original": fs_original, "FS_retain": fs_retain,
             "MU_retain": mu_retain, "candidates": [{k: v for k, v in c.items() if k != "path"} for c in tried]},
            indent=1))

    folder = cached_run("inject-selection", config, build, force=force)
    return json.loads((folder / "selection.json").read_text())


def describe_selection(selection: dict[str, Any]) -> str:
    """One line for notebook 09: the chosen budget and the FS of the injected, original and retain models."""
    chosen = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in selection["chosen"].items())
    tried = len(selection["candidates"])
    flag = (" FLAGGED: no candidate reached the original model's FS at MU >= 95% of the retain model's; the "
            "largest budget is used") if selection["flagged"] else ""
    return (f"injected model: FS {selection['FS_injected']:.3f} vs original {selection['FS_original']:.3f}; "
            f"retain model {selection['FS_retain']:.3f} (MU {selection['MU_injected']:.3f} vs retain "
            f"{selection['MU_retain']:.3f}); budget: {chosen or 'the fine-tuning schedule'} (candidate "
            f"{selection['index'] + 1}, {tried} tried).{flag}")


def injected_model(profile: Profile, forget: str = "forget10", ratio: float = 0.1, seed: int = 0,
                   retain_weight: float = 1.0, train_changes: dict[str, Any] | None = None,
                   force: bool = False) -> str:
    """Folder of the retain model with the forget set injected through the oracle mask (cached, kind
    "inject", keyed by the mask's digest, the schedule and the data; see the module docstring).
    `train_changes`: None, the budget `inject_selection` chooses; a dict (even empty), that schedule."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.benchmarks.tofu import pipeline
    from paperlib.engine import encoding
    from paperlib.engine.models import load_model, load_tokenizer
    from paperlib.engine.train import Loop, train
    from paperlib.engine.unlearn import mask_digest

    if retain_weight < 0:
        raise PaperlibError(f"retain_weight={retain_weight}; allowed: >= 0")
    if train_changes is None:
        train_changes = inject_selection(profile, forget, ratio, seed, retain_weight)["chosen"]
    train_cfg = inject_train_config(profile, **train_changes)
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
        start = time.perf_counter()
        result = train(model, data, partial(_inject_loss, retain_weight=retain_weight), train_cfg,
                       partial(encoding.collate, pad_id=tok.pad_token_id), update_mask=mask, loop=Loop(desc="inject"))
        if result.diverged_at is not None:
            raise PaperlibError(f"injection diverged ({result.reason}); allowed: a smaller lr (train_changes)")
        model.save_pretrained(out)
        tok.save_pretrained(out)
        (out / "train_log.json").write_text(json.dumps(result.steps))
        (out / "inject_info.json").write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))

    return str(cached_run("inject", config, build, force=force))


def _plain(sample: dict) -> dict:
    return {"input_ids": sample["input_ids"], "labels": sample["labels"]}


def _inject_loss(model: torch.nn.Module, batch: dict, retain_weight: float):
    from paperlib.benchmarks.tofu.pipeline import nll_loss

    forget = nll_loss(model, batch["forget"])[0]
    retain = nll_loss(model, batch["retain"])[0]
    return forget + retain_weight * retain, {"forget_nll": forget.detach(), "retain_nll": retain.detach()}
