"""1a: the training step of every method as a multiple of a plain fine-tuning step on the same model, batch and
sequences, with the reference cache and with a live reference model; peak memory as a ratio too.

The plain step is NLL fine-tuning (AdamW) over the same parts of the batch the method's forward passes read
(forget; plus retain / IdK when the method uses them), so a ratio of 1.0 is the floor: the cost of the method's
loss and of its reference quantities only. `plain (forget only)` is also given, for methods that read two parts.
Steps of the plain and the method's variants are interleaved in each repeat (noise hits all of them alike).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch
from common import median, timed

from paperlib import losses as L
from paperlib import methods, pipeline
from paperlib import unlearn as U
from paperlib.config import Profile
from paperlib.data import encoding, tofu
from paperlib.methods import shifted
from paperlib.models import load_model, load_tokenizer
from paperlib.reference import ReferenceConfig, make_reference

REFERENCE_METHODS = ("NPO", "DPO", "UnDIAL", "TPO", "PALU", "KL-retain")  # the 1.10x target (issue 15)


def variants() -> dict[str, tuple[str, dict]]:
    """Benchmark row -> (method, overrides): every registered method (ablations included) and KL-retain
    (GD with the KL-to-reference retain term)."""
    out = {n: (n, {}) for n in methods.names(ablation=True)}
    out["KL-retain"] = ("GD", {"retain_loss": "kl"})
    out["PALU (from hidden)"] = ("PALU", {"forget_from_hidden": True})
    return out


def _parts(needs) -> tuple[str, ...]:
    return ("forget",) + (("retain",) if needs.retain else ()) + (("idk",) if needs.idk else ())


def _plain_loss(parts, model, batch):
    return sum(L.nll(*shifted(model, batch[p])) for p in parts), {}


def _stepper(model, loss_fn):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7)

    def step(batch):
        loss, _ = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_steps(profile: Profile, forget: str = "forget10", repeats: int = 9) -> dict:
    path = pipeline.original_model(profile)
    tok = load_tokenizer(path)
    source = pipeline.benchmark_source(profile)
    retain_rows = tofu.load_split(source, tofu.retain_of(forget)).to_list()
    idk = tofu.load_idk(source)
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)
    rows_out = {}
    for row, (name, overrides) in variants().items():
        m = methods.make_method(name, methods.profile_hparams(profile, name) | overrides)
        needs = m.needs()
        bs = methods.train_config(profile, name).batch_size
        data = U.encode_samples(tok, profile.model.template, U.forget_rows(profile, forget, needs), retain_rows,
                                idk if needs.idk else None, m, profile.eval.max_length)
        batch = collate(data[:bs])
        steps, refs = {}, {}
        parts = _parts(needs)
        steps["plain"] = _stepper(load_model(path), partial(_plain_loss, parts))
        steps["plain (forget only)"] = _stepper(load_model(path), partial(_plain_loss, ("forget",)))
        for mode in ("cache", "live"):
            if mode == "live" and not needs.ref:
                continue
            model = load_model(path)
            ref = make_reference(model, data, needs, collate, ReferenceConfig(mode=mode))
            refs[mode] = ref
            m.setup(len(data) // bs)
            steps[mode] = _stepper(model, lambda mod, b, ref=ref, m=m: m.loss(mod, b, ref(b)))
        times = {k: [] for k in steps}
        mem = {k: [] for k in steps}
        for fn in steps.values():  # warm-up: optimizer state, allocator
            fn(batch)
        for r in range(repeats):
            for k, fn in steps.items():
                dt, peak = timed(lambda fn=fn, batch=batch: fn(batch), memory=r >= repeats - 2)
                times[k].append(dt)
                if r >= repeats - 2:
                    mem[k].append(peak)
        t = {k: median(v) for k, v in times.items()}
        pk = {k: median(v) for k, v in mem.items()}
        res = {"method": name, "overrides": overrides, "batch": bs, "parts": list(parts),
               "seq_len": int(batch["forget"]["input_ids"].shape[1]), "reference": sorted(needs.ref),
               "plain_s": t["plain"], "plain_forget_only_s": t["plain (forget only)"],
               "plain_peak_bytes": pk["plain"]}
        for mode in ("cache", "live"):
            if mode in t:
                res[f"{mode}_s"] = t[mode]
                res[f"{mode}_ratio"] = t[mode] / t["plain"]
                res[f"{mode}_peak_bytes"] = pk[mode]
                res[f"{mode}_mem_ratio"] = pk[mode] / pk["plain"] if pk["plain"] else float("nan")
        rows_out[row] = res
        nan = float("nan")
        print(f"  step {row:20s} plain {t['plain'] * 1e3:7.1f} ms  cache x{res.get('cache_ratio', nan):.2f}"
              f"  live x{res.get('live_ratio', nan):.2f}  mem cache x{res.get('cache_mem_ratio', nan):.2f}", flush=True)
    return {"profile": profile.name, "repeats": repeats, "rows": rows_out,
            "reference_config": dataclasses.asdict(ReferenceConfig())}
