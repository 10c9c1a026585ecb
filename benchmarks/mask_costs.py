"""Localized unlearning (issue 12): how long each attribution takes to make its mask, and a masked training step
as a multiple of an unmasked one.

Mask generation: `paperlib.methods.masks.mask_for` on the profile's original model with forget10 (and its retain split
for wagle / memflex), ratio 0.1, global top: data encoding, gradient / activation passes and the top-k cut,
one run per attribution (it is seconds to minutes, not a micro-benchmark). Masked step: `paperlib.engine.train.train`
(the one training loop) over the same 8 batches of forget samples with NLL, unmasked vs with a mask (the
oracle's random 10% of down_proj, and a 10% WAGLE mask over every parameter); the two variants alternate in
each repeat and the ratio divides their median seconds per step. A masked step zeroes the gradient outside the
mask and applies weight decay to the True entries only, but it also skips the weight gradients of the tensors
no mask entry names (they are frozen), so it can be cheaper than an unmasked one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

from common import median

from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import encoding
from paperlib.engine.config import Profile
from paperlib.engine.models import load_model, load_tokenizer
from paperlib.engine.train import Loop, train
from paperlib.methods import masks, tuning

STEP_MASKS = ("random_down", "wagle")


def bench_masks(profile: Profile, forget: str = "forget10", repeats: int = 5, steps: int = 8) -> dict:
    """{"generation": [{attribution, s, selected, candidates}], "steps": {mask: {...}}, "batch": B}."""
    made, generation = {}, []
    for attribution in masks.ATTRIBUTIONS:
        t0 = time.perf_counter()
        mask, _ = masks.mask_for(profile, masks.MaskConfig(attribution=attribution, ratio=0.1), forget)
        dt = time.perf_counter() - t0
        made[attribution] = mask
        s = masks.summary(mask)
        generation.append({"attribution": attribution, "s": dt, "selected": s["selected"],
                           "candidates": s["candidates"], "mask_bytes": s["candidates"]})
        print(f"  mask {attribution:12s} {dt:7.2f} s  {s['selected']} of {s['candidates']}", flush=True)
    path = pipeline.original_model(profile)
    tok = load_tokenizer(path)
    cfg = replace(tuning.train_config(profile, "NPO"), epochs=1, lr=1e-7, warmup_epochs=0.0)
    data = masks.encoded_split(profile, forget, tok)
    data = (data * (1 + steps * cfg.batch_size // max(1, len(data))))[:steps * cfg.batch_size]
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)

    def per_step(mask) -> float:
        model = load_model(path)
        t0 = time.perf_counter()
        train(model, data, pipeline.nll_loss, cfg, collate, update_mask=mask, loop=Loop(progress=False))
        return (time.perf_counter() - t0) / steps

    variants = {"unmasked": None, **{m: made[m] for m in STEP_MASKS}}
    times = {k: [] for k in variants}
    for _ in range(repeats):
        for k, mask in variants.items():
            times[k].append(per_step(mask))
    t = {k: median(v) for k, v in times.items()}
    rows = {k: {"s_per_step": t[k], "ratio": t[k] / t["unmasked"],
                "masked_params": sum(int(m.numel()) for m in (variants[k] or {}).values())} for k in variants}
    for k, row in rows.items():
        print(f"  step {k:12s} {row['s_per_step'] * 1e3:7.1f} ms  x{row['ratio']:.2f}", flush=True)
    total = sum(p.numel() for p in load_model(path).parameters())
    return {"forget": forget, "batch": cfg.batch_size, "steps": steps, "repeats": repeats, "params": total,
            "generation": generation, "step": rows}


def mask_markdown(r: dict) -> list[str]:
    """The results.md section of `bench_masks`."""
    out = ["", "## Localized unlearning: masks (issue 12)", "",
           f"Mask generation (`masks.mask_for`, {r['forget']}, ratio 0.1, global top; data encoding and every pass "
           f"included; one run each) on the original model ({r['params']} parameters). A mask costs one byte per "
           "entry of each tensor it names (bool), no float copy.", "",
           "| attribution | s | selected | candidates |", "|---|---:|---:|---:|"]
    out += [f"| {g['attribution']} | {g['s']:.2f} | {g['selected']} | {g['candidates']} |" for g in r["generation"]]
    out += ["", f"Masked training step (`train.train`, NLL, batch {r['batch']}, {r['steps']} steps, median of "
            f"{r['repeats']} alternating repeats) / an unmasked step:", "",
            "| mask | ms / step | x unmasked | masked tensors' entries |", "|---|---:|---:|---:|"]
    out += [f"| {k} | {v['s_per_step'] * 1e3:.1f} | {v['ratio']:.2f} | {v['masked_params']} |"
            for k, v in r["step"].items()]
    return out
