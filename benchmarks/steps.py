"""1a: the training step of every method as a multiple of a plain fine-tuning step on the same model, batch and
sequences, with the reference cache and with a live reference model; peak memory as a ratio too.

The plain step is NLL fine-tuning (AdamW) over the same parts of the batch the method's forward passes read
(forget; plus retain / IdK when the method uses them), so a ratio of 1.0 is the floor: the cost of the method's
loss and of its reference quantities only. `plain (forget only)` is also given, for methods that read two parts.
Steps of the plain and the method's variants are interleaved in each repeat (noise hits all of them alike).
"""

from __future__ import annotations

import copy
import dataclasses
from functools import partial

import torch
from common import median, timed

from paperlib import methods
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import encoding
from paperlib.engine import unlearn as U
from paperlib.engine.config import Profile
from paperlib.engine.models import load_model, load_tokenizer
from paperlib.engine.reference import LiveReference, ReferenceConfig, make_reference
from paperlib.methods import losses as L
from paperlib.methods import shifted

REFERENCE_METHODS = ("NPO", "DPO", "UnDIAL", "TPO", "PALU", "KL-retain")  # the 1.10x target (issue 15)


def variants() -> dict[str, tuple[str, dict]]:
    """Benchmark row -> (method, overrides): every registered method (ablations included) and KL-retain
    (GD with the KL-to-reference retain term)."""
    out = {n: (n, {}) for n in methods.names(ablation=True)}
    out["KL-retain"] = ("GD", {"retain_loss": "kl"})
    out["PALU (from hidden)"] = ("PALU", {"forget_from_hidden": True})
    out["PALU (logits)"] = ("PALU", {"forget_from_hidden": False})
    return out


def _parts(needs) -> tuple[str, ...]:
    return ("forget",) + (("retain",) if needs.retain else ()) + (("idk",) if needs.idk else ())


def _plain_loss(parts, model, batch):
    return sum(L.nll(*shifted(model, batch[p])) for p in parts), {}


def _stepper(model, loss_fn, opt: torch.optim.Optimizer | None = None):
    """One training step of `loss_fn` (AdamW at lr 1e-7, or the shared `opt`)."""
    opt = opt or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-7)

    def step(batch):
        loss, _ = loss_fn(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _interleaved(steps: dict[str, tuple], repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds and median peak bytes (of the last two repeats) of each (step, batch), after one warm-up
    call each (optimizer state, allocator), the steps interleaved in every repeat."""
    for fn, batch in steps.values():
        fn(batch)
    times: dict[str, list] = {k: [] for k in steps}
    mem: dict[str, list] = {k: [] for k in steps}
    for r in range(repeats):
        for k, (fn, batch) in steps.items():
            dt, peak = timed(lambda fn=fn, batch=batch: fn(batch), memory=r >= repeats - 2)
            times[k].append(dt)
            if r >= repeats - 2:
                mem[k].append(peak)
    return {k: median(v) for k, v in times.items()}, {k: median(v) for k, v in mem.items()}


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
        t, pk = _interleaved({k: (fn, batch) for k, fn in steps.items()}, repeats)
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


# ----------------------------------------------------------------------------------------- 1a at large V
LARGE_VOCABS = (32000, 128256)
LARGE_ROWS = ("NPO", "TPO", "DPO", "UnDIAL", "KL-retain", "PALU", "PALU (logits)", "PALU (from hidden)")
LARGE_MODEL = {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 4, "num_attention_heads": 4}


def large_model(vocab: int, tok, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised tiny Llama (`LARGE_MODEL`) with a vocabulary of `vocab` (the mini tokenizer's ids
    are a subset of it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, num_key_value_heads=LARGE_MODEL["num_attention_heads"],
                         max_position_embeddings=256, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True, **LARGE_MODEL)
    return LlamaForCausalLM(config).eval()


def _large_variants() -> dict[str, tuple[str, dict]]:
    out = variants()
    return {r: out[r] for r in LARGE_ROWS}


def bench_steps_large(profile: Profile, vocabs=LARGE_VOCABS, forget: str = "forget10", repeats: int = 3,
                      rows: tuple[str, ...] = LARGE_ROWS, batch_size: int = 16,
                      modes: tuple[str, ...] = ("cache", "live")) -> dict:
    """1a on a random tiny Llama (`LARGE_MODEL`) at vocabulary sizes `vocabs`: every row's step with the cache
    and live / a plain step over the same parts, peak memory too. One model and one AdamW serve every variant
    (lr 1e-7); the plain step is shared by the rows reading the same parts; all steps of one V interleaved per
    repeat. PALU's K is the paper's 5000 / 32000 share of V."""
    tok = load_tokenizer(pipeline.tokenizer_path(profile))  # the profile's data and tokenizer, not its model
    source = pipeline.benchmark_source(profile)
    retain_rows = tofu.load_split(source, tofu.retain_of(forget)).to_list()
    idk = tofu.load_idk(source)
    collate = partial(encoding.collate, pad_id=tok.pad_token_id)
    table = {r: v for r, v in _large_variants().items() if r in rows}
    out = {}
    for vocab in vocabs:
        model = large_model(vocab, tok)
        frozen = None
        stepper = partial(_stepper, model, opt=torch.optim.AdamW(model.parameters(), lr=1e-7))

        steps, info = {}, {}
        for row, (name, overrides) in table.items():
            hp = methods.profile_hparams(profile, name) | overrides
            if name == "PALU":
                hp["k"] = max(1, round(5000 * vocab / 32000))
            m = methods.make_method(name, hp)
            needs = m.needs()
            data = U.encode_samples(tok, profile.model.template, U.forget_rows(profile, forget, needs), retain_rows,
                                    idk if needs.idk else None, m, profile.eval.max_length)[:batch_size]
            batch = collate(data)
            parts = _parts(needs)
            key = "plain " + "+".join(parts)
            if key not in steps:
                steps[key] = (stepper(partial(_plain_loss, parts)), batch)
            info[row] = {"method": name, "overrides": overrides, "k": hp.get("k"), "plain": key, "parts": parts,
                         "seq_len": int(batch["forget"]["input_ids"].shape[1]), "batch": len(data)}
            for mode in modes:
                if mode == "live":
                    frozen = frozen if frozen is not None else copy.deepcopy(model)
                    ref = LiveReference(frozen, needs)
                else:
                    ref = make_reference(model, data, needs, collate, ReferenceConfig(mode="cache"))
                m.setup(1)
                steps[f"{row} | {mode}"] = (stepper(lambda mod, b, ref=ref, m=m: m.loss(mod, b, ref(b))), batch)
        print(f"  V={vocab}: {len(steps)} steps, warm-up", flush=True)
        t, pk = _interleaved(steps, repeats)
        for row, res in info.items():
            p = res["plain"]
            res.update(plain_s=t[p], plain_peak_bytes=pk[p], vocab=vocab)
            for mode in modes:
                k = f"{row} | {mode}"
                res[f"{mode}_s"], res[f"{mode}_peak_bytes"] = t[k], pk[k]
                res[f"{mode}_ratio"] = t[k] / t[p]
                res[f"{mode}_mem_ratio"] = pk[k] / pk[p] if pk[p] else float("nan")
            res["parts"] = list(res["parts"])
            out[f"{row} V={vocab}"] = res
            nan = float("nan")
            print(f"  step V={vocab} {row:20s} plain {t[p] * 1e3:7.1f} ms  cache x{res['cache_ratio']:.2f}  live "
                  f"x{res.get('live_ratio', nan):.2f}  mem cache x{res['cache_mem_ratio']:.2f} live "
                  f"x{res.get('live_mem_ratio', nan):.2f}"
                  f"  plain peak {pk[p] / 2**20:.0f} MiB", flush=True)
        del model, frozen, stepper, steps
    return {"profile": profile.name, "repeats": repeats, "model": LARGE_MODEL, "rows": out}


if __name__ == "__main__":  # python benchmarks/steps.py [--vocab V ...] [--rows ROW ...] [--live]: large-V rows
    import argparse
    import json

    from paperlib.engine import threads
    from paperlib.engine.config import get_profile

    threads.configure()
    ap = argparse.ArgumentParser(description="1a at large V only (bench_steps_large), printed as JSON")
    ap.add_argument("--vocab", type=int, nargs="+", default=list(LARGE_VOCABS))
    ap.add_argument("--rows", nargs="+", default=list(LARGE_ROWS), choices=LARGE_ROWS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-live", action="store_true", help="cache only (live steps cost a second forward)")
    ap.add_argument("--out", help="also write the JSON here")
    a = ap.parse_args()
    res = bench_steps_large(get_profile("mini"), tuple(a.vocab), repeats=a.repeats, rows=tuple(a.rows),
                            modes=("cache",) if a.no_live else ("cache", "live"))
    text = json.dumps(res, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    print(text)
