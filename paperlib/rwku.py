"""RWKU in paperlib: the benchmark's source and scale per profile, the mini base stage (tokenizer and tiny
model that learn the mini RWKU people), the "rwku" evaluator (registered in `paperlib.rwku_metrics`), and
notebook 12's runs and tables.

Setting (RWKU's main one): single-target unlearning from the forget corpus alone (the target's passages, raw
text cut into `block`-token blocks); no retain corpus, so every method runs with its retain weight alpha = 0
(GA has none; UnDIAL's default is 0). The original model is the model that knows the targets: the mini base
model here, Llama-3-8B-Instruct in the paper profile (zero-shot: RWKU's targets are real people it knows).

Methods on raw text (notebook 12): GA, NPO, UnDIAL, Unilogit, and PALU on automatic spans (the model-free
`paperlib.spans.capitalised_spans` of each passage: names, places, titles, numbers; the log-prob annotator
needs a retain model, which RWKU's zero-shot setting does not have). Not applicable (`unlearn.text_methods`):
DPO / TPO need an IdK answer per forget question (RWKU has none for raw passages), TPO also QA span files'
common words; NCE (PALU's RQ2 ablation) would apply like PALU but is not a row of the RWKU table.

Tuning (`paperlib.tuning`, the project's one rule): per target and method, the lr grid x epochs; the score
to maximise is FQ = 100 - forget All (ROUGE-L recall x 100 pooled over the three forget levels), the utility
is MU = neighbour All (the knowledge next to the target that must survive); the selected point is the highest
FQ with MU >= 95% of the original model's neighbour All, then re-run with the grid's seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from paperlib import executors, rwku_metrics, tuning
from paperlib.cache import cached_run, code_fingerprint
from paperlib.config import Profile, TrainConfig
from paperlib.corpus import TextCorpus
from paperlib.data import mini_rwku
from paperlib.data import rwku as rwku_data
from paperlib.errors import PaperlibError
from paperlib.models import load_model, load_tokenizer
from paperlib.report import SPREAD
from paperlib.studies import protocol

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


# ----------------------------------------------------------------------------------------- benchmark and models
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


def base_model(profile: Profile, force: bool = False) -> str:
    """The original model of RWKU unlearning: the paper profile's checkpoint, or the mini base model
    (`paperlib.rwku_base`)."""
    if settings(profile).mini is None:
        return profile.model.original
    from paperlib import rwku_base

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
    from paperlib.pipeline import model_identity

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

    from paperlib.data.rwku import chat_prompt

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
    from paperlib.pipeline import model_identity

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
    `paperlib.spans.capitalised_spans` (names, places, titles, numbers: raw passages have no span files and
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
        from paperlib.spans import capitalised_spans

        found = tuple(tuple(capitalised_spans(t)) for t in texts)
    return TextCorpus(name=name, forget=texts, retain=(), block=settings(profile).block,
                      forget_spans=found)


# ----------------------------------------------------------------------------------------- notebook 12
def describe(profile: Profile) -> str:
    """Notebook 12's protocol in one paragraph (printed before any result)."""
    g, s = tuning.grid(profile), settings(profile)
    lrs = ", ".join(f"{lr:g}" for lr in g.lrs)
    return (f"{profile.name}: {s.n_targets} target(s), each unlearned on its own from its passages ({s.block}-token "
            f"blocks, no retain term); every method sweeps lr in {{{lrs}}} for {g.epochs} epochs, evaluated after "
            f"{'each' if g.every_epoch else 'the last'}; reported point per target = highest FQ = 100 - forget All "
            f"with MU = neighbour All >= {tuning.MU_FRACTION:.0%} of the original model's (else the highest MU, "
            f"flagged); that point re-run with seeds {list(g.seeds)} (the seed changes the data order); tables: "
            "mean over seeds per target, then mean ± sd over targets.")


def scores(row: dict) -> dict[str, float]:
    """The tuning rule's two numbers from an RWKU row: FQ = 100 - forget All, MU = neighbour All."""
    return {"FQ": 100.0 - row["forget All"], "MU": row["neighbor All"]}


def _overrides(profile: Profile, method: str, lr: float, seed: int, stop_epoch: int) -> dict:
    s = settings(profile)
    out = {**NO_RETAIN.get(method, {}), **tuning.run_overrides(profile, method, lr, seed, stop_epoch)}
    if s.batch_size:
        out["batch_size"] = s.batch_size
    return out


class _Arm(NamedTuple):
    target: str
    method: str


def _request(profile: Profile, arm: _Arm, point: protocol.Point, forget_corpus: str | None = None
             ) -> executors.Request:
    """The planned RWKU run of `arm` at `point`: `unlearn.unlearn_text` on the target's forget corpus from the
    base model, the "rwku" evaluator."""
    text = corpus(profile, arm.target, spans=arm.method in SPAN_METHODS, forget_corpus=forget_corpus)
    return executors.Request(profile, arm.method, overrides=_overrides(profile, arm.method, point.lr, point.seed,
                                                                       point.stop_epoch),
                             eval_every_epoch=point.every_epoch, model=base_model(profile), corpus=text,
                             evaluator=EVALUATOR, eval_args=eval_args(profile, arm.target))


def _rows(info: dict, base: dict) -> list[dict]:
    return protocol.epoch_rows(info, base, lambda e: {**e, **scores(e)})


def _base(arm: _Arm, point: protocol.Point) -> dict:
    return {"target": arm.target, "method": arm.method, "lr": point.lr}


def original_rows(profile: Profile) -> pd.DataFrame:
    """The original model's RWKU row per target."""
    path = base_model(profile)
    return pd.DataFrame([{"target": t, "method": "Original", **(r := evaluate_model(profile, t, path)), **scores(r)}
                         for t in target_names(profile)])


def tune(profile: Profile, methods: tuple[str, ...] = METHODS) -> dict[str, pd.DataFrame]:
    """The tuning protocol (`protocol`) per target and method: "sweep" (every lr x epoch), "selected" (the rule's
    point, picked on the sweep's seed 0; `qualified`: the MU95 flag of the seed mean, `tuning.keeps_utility`,
    beside the sweep's own "qualified (seed 0)"), "seeds" (the selected point with every seed of the grid)."""
    original = original_rows(profile).set_index("target")
    arms = [_Arm(t, m) for t in target_names(profile) for m in methods]
    sweep = pd.DataFrame(protocol.sweep(profile, arms, partial(_request, profile),
                                        lambda a, p, info: _rows(info, _base(a, p))))
    best = {_Arm(*key): b for key, b in protocol.select(profile, sweep, ["target", "method"],
                                                         lambda key: float(original.loc[key[0], "MU"]))}
    points = {a: (float(best[a]["lr"]), int(best[a]["epoch"])) for a in arms}
    seeds = pd.DataFrame(_seed_runs(profile, arms, points, sweep))
    chosen = [{"target": a.target, "method": a.method, "lr": points[a][0], "epoch": points[a][1],
               "qualified": _keeps(seeds, a, original.loc[a.target, "MU"]),
               "qualified (seed 0)": bool(best[a]["qualified"])} for a in arms]
    return {"sweep": sweep, "selected": pd.DataFrame(chosen), "seeds": seeds, "original": original.reset_index()}


def _seed_runs(profile: Profile, arms: list[_Arm], points: dict[_Arm, tuple[float, int]],
               sweep: pd.DataFrame | None) -> list[dict]:
    """Each arm's selected point (lr, epoch) with every seed of the grid: seed 0 is the sweep's row or, with no
    sweep (`redraw`), trained up to that epoch like the others."""

    def point(arm: _Arm, seed: int) -> protocol.Point:
        return protocol.Point(points[arm][0], seed, points[arm][1], every_epoch=False)

    def reuse(arm: _Arm, seed: int) -> list[dict] | None:
        if seed != 0 or sweep is None:
            return None
        lr, epoch = points[arm]
        same = sweep[(sweep["target"] == arm.target) & (sweep["method"] == arm.method) & (sweep["lr"] == lr)
                     & (sweep["epoch"] == epoch) & (sweep["status"] == "completed")]
        return [{**r, "seed": 0} for r in same.to_dict("records")]

    def rows(arm: _Arm, p: protocol.Point, info: dict) -> list[dict]:
        return [{**r, "seed": p.seed} for r in _rows(info, _base(arm, p))
                if r["epoch"] == p.stop_epoch or r["status"] != "completed"]

    return protocol.seed_runs(profile, arms, point, partial(_request, profile), rows, reuse)


def _keeps(seeds: pd.DataFrame, arm: _Arm, original_mu: float) -> bool:
    """The MU95 flag of a selected point: the seed mean of MU keeps 95% of the original model's."""
    mine = seeds[(seeds["target"] == arm.target) & (seeds["method"] == arm.method) & (seeds["status"] == "completed")]
    return tuning.keeps_utility(list(mine["MU"]), float(original_mu))


def redraw(profile: Profile, tuned: dict[str, pd.DataFrame]) -> tuple[Profile, dict[str, pd.DataFrame]] | None:
    """Every (target, method)'s selected point (`tune`'s lr and epoch: no new sweep) re-run with every seed of
    the grid on the base model of the second draw (`experiments.second_draw`: trained from another seed), as
    (that profile, a `tune`-shaped dict: no sweep, that draw's original rows, MU95 against them); None where the
    model is given (the paper profile's checkpoint)."""
    from paperlib.experiments import second_draw

    other = second_draw(profile)
    if other is None or settings(profile).mini is None:
        return None
    original = original_rows(other).set_index("target")
    selected = tuned["selected"].to_dict("records")
    arms = [_Arm(sel["target"], sel["method"]) for sel in selected]
    points = {a: (float(sel["lr"]), int(sel["epoch"])) for a, sel in zip(arms, selected)}
    seeds = pd.DataFrame(_seed_runs(other, arms, points, None))
    chosen = [{**{k: sel[k] for k in ("target", "method", "lr", "epoch")},
               "qualified": _keeps(seeds, a, original.loc[a.target, "MU"])} for a, sel in zip(arms, selected)]
    return other, {"sweep": pd.DataFrame(), "selected": pd.DataFrame(chosen), "seeds": seeds,
                   "original": original.reset_index()}


def per_target(tuned: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean ("X") and sd ("X sd") over seeds of every column per (method, target), the original model's rows
    first (one deterministic model: no sd); `runs` = the completed seed runs averaged; a target whose seeds all
    diverged has status "diverged (every seed)" and no numbers (shown as a dash, left out of `results_table`'s
    means, which count the targets they average)."""
    seeds = tuned["seeds"]
    ok = seeds[seeds["status"] == "completed"]
    cols = [c for c in TABLE_COLUMNS if c in ok]
    rows = [tuned["original"][["method", "target", *cols]].assign(runs=1, status="completed")]
    for (method, target), part in seeds.groupby(["method", "target"], sort=False):
        good = part[part["status"] == "completed"]
        row: dict[str, Any] = {"method": method, "target": target, "runs": len(good),
                               "status": "completed" if len(good) else "diverged (every seed)"}
        for c in cols if len(good) else ():
            row[c], row[f"{c}{SPREAD}"] = tuning.mean_std(good[c])
        rows.append(pd.DataFrame([row]))
    out = pd.concat(rows, ignore_index=True)
    return out[[c for c in out.columns if not c.endswith(SPREAD)] + [c for c in out.columns if c.endswith(SPREAD)]]


TARGET_SPREAD = " sd over targets"  # results_table: "X sd over targets" beside "X" ± sd over seeds
TARGET_SPREAD_COLUMNS = ("forget All", "neighbor All")  # the two numbers the tuning rule and the claim read


def seed_spread(seed_rows: pd.DataFrame, column: str) -> float:
    """The spread over seeds of a method's mean over targets: per seed, the mean of `column` over the targets
    whose run with that seed completed; then the sd over seeds (ddof=1; 0 for one seed; NaN for no seed row)."""
    ok = seed_rows[seed_rows["status"] == "completed"] if "status" in seed_rows else seed_rows
    if ok.empty or column not in ok:
        return float("nan")
    return tuning.mean_std(ok.groupby("seed")[column].mean())[1]


def results_table(tuned: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """RWKU's table layout, per method: "X" the mean over targets of each target's seed mean, "X sd" its spread
    over seeds (`seed_spread`; none for the deterministic original model), "X sd over targets" (forget All and
    neighbour All) the sd over targets of the targets' seed means; MU95 = the targets whose selected point keeps
    95% of the original's neighbour All in the seed mean (`tuning.keeps_utility`), "k/n"; `targets` averaged."""
    rows = per_target(tuned)
    cols = [c for c in TABLE_COLUMNS if c in rows]
    seeds, sel = tuned["seeds"], tuned["selected"]
    out = []
    for method, part in rows.groupby("method", sort=False):
        rec: dict[str, Any] = {"method": method}
        for c in cols:
            v = part[c].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            rec[c] = float(v.mean()) if len(v) else float("nan")
            rec[f"{c}{SPREAD}"] = seed_spread(seeds[seeds["method"] == method], c)
            if c in TARGET_SPREAD_COLUMNS:
                rec[f"{c}{TARGET_SPREAD}"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        mine = sel[sel["method"] == method]
        rec["MU95"] = f"{int(mine['qualified'].sum())}/{len(mine)}" if len(mine) else ""
        rec["targets"] = int(np.isfinite(part[cols[0]].to_numpy(dtype=float)).sum())
        out.append(rec)
    return pd.DataFrame(out)


def keeps_neighbours_sentence(tuned: dict[str, pd.DataFrame]) -> str:
    """One sentence from the selected points: per method, how many targets keep 95% of the original model's
    neighbour All in the seed mean (the MU95 flag the tables print), naming the targets that do not."""
    sel = tuned["selected"]
    parts = []
    for method, part in sel.groupby("method", sort=False):
        missed = list(part.loc[~part["qualified"].astype(bool), "target"])
        parts.append(f"{method} {len(part) - len(missed)}/{len(part)}" + (f" (not: {', '.join(missed)})" if missed
                                                                           else ""))
    return (f"Targets whose selected point keeps {tuning.MU_FRACTION:.0%} of the original model's neighbour All "
            f"(mean over seeds): {'; '.join(parts)}.")


CORPUS_COLUMNS = ("forget All", "neighbor All", "MIA FM")


def compare_corpora(profile: Profile, tuned: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each method at its already selected (lr, epoch) per target (no new sweep), seed 0, trained on either
    forget corpus ("passages": the tuning run's row; "generated": one run on the base model's own texts);
    rows per (corpus, method, target) with `CORPUS_COLUMNS` (NaN where the run did not complete, or for PALU
    when the annotator finds no sensitive span in the corpus: status "no sensitive spans")."""
    seeds = tuned["seeds"]
    todo = []  # (corpus, base, the seed-0 row or a status, the planned run or None)
    for sel in tuned["selected"].to_dict("records"):
        arm, base = _Arm(sel["target"], sel["method"]), {"method": sel["method"], "target": sel["target"]}
        mine = seeds[(seeds["method"] == sel["method"]) & (seeds["target"] == sel["target"]) & (seeds["seed"] == 0)]
        for kind in FORGET_CORPORA:
            run = None
            if kind == settings(profile).forget_corpus and len(mine):
                rec = mine.iloc[0].to_dict()
            elif arm.method in SPAN_METHODS and not any(corpus(profile, arm.target, spans=True,
                                                               forget_corpus=kind).forget_spans):
                rec = {"status": "no sensitive spans"}  # PALU cannot train: the annotator found no span
            else:
                rec, run = None, (arm, protocol.Point(float(sel["lr"]), 0, int(sel["epoch"]), False), kind)
            todo.append((kind, base, rec, run))
    planned = [run for *_, run in todo if run is not None]
    infos = iter(protocol.execute([_request(profile, a, p, forget_corpus=k) for a, p, k in planned]))
    rows = []
    for kind, base, rec, run in todo:
        if run is not None:
            got = [r for r in _rows(next(infos), base) if r["epoch"] == run[1].stop_epoch or r["status"] != "completed"]
            rec = got[0] if got else {"status": "missing"}
        ok = rec.get("status") == "completed"
        rows.append({"corpus": kind, **base, "status": rec.get("status"),
                     **{c: float(rec[c]) if ok else float("nan") for c in CORPUS_COLUMNS}})
    return pd.DataFrame(rows)


def corpus_table(compared: pd.DataFrame) -> pd.DataFrame:
    """`compare_corpora`'s rows as mean ± sd over targets per (corpus, method); `targets` = completed runs."""
    out = []
    for (kind, method), part in compared.groupby(["corpus", "method"], sort=False):
        rec: dict[str, Any] = {"corpus": kind, "method": method}
        for c in CORPUS_COLUMNS:
            v = part[c].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            rec[c] = float(v.mean()) if len(v) else float("nan")
            rec[f"{c} sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        rec["targets"] = int(np.isfinite(part[CORPUS_COLUMNS[0]].to_numpy(dtype=float)).sum())
        out.append(rec)
    return pd.DataFrame(out)


def corpus_sentence(table: pd.DataFrame) -> str:
    """One sentence from the numbers: per method, forget All on generated minus on passages (negative: the
    generated corpus forgets more), and the mean change of neighbour All."""
    wide = table.pivot(index="method", columns="corpus", values=["forget All", "neighbor All"])
    d_forget = (wide["forget All"]["generated"] - wide["forget All"]["passages"]).dropna()
    d_neigh = (wide["neighbor All"]["generated"] - wide["neighbor All"]["passages"]).dropna()
    if d_forget.empty:
        return "No method has both corpora's runs completed; nothing to compare."
    lower = int((d_forget < 0).sum())
    per = ", ".join(f"{m} {v:+.1f}" for m, v in d_forget.items())
    return (f"Trained on the base model's own texts instead of the passages, forget All changes by {per} "
            f"(lower, i.e. more forgetting, for {lower}/{len(d_forget)} methods) and neighbour All by "
            f"{d_neigh.mean():+.1f} on average over methods.")


def spread_figure(rows: pd.DataFrame):
    """Forget All and neighbour All per method, one dot per target, bars at the mean over targets."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from paperlib import plots
    from paperlib.report import method_palette

    long = rows.melt(id_vars=["method", "target"], value_vars=["forget All", "neighbor All"], var_name="metric",
                     value_name="ROUGE-L recall x 100").dropna()
    order = list(dict.fromkeys(rows["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    palette = method_palette(order)
    for ax, metric in zip(axes, ["forget All", "neighbor All"]):
        part = long[long["metric"] == metric]
        sns.barplot(part, x="method", y="ROUGE-L recall x 100", order=order, hue="method", palette=palette,
                    errorbar=None, alpha=0.45, ax=ax, legend=False)
        with plots.fixed_jitter():
            sns.stripplot(part, x="method", y="ROUGE-L recall x 100", order=order, color="black", size=4, ax=ax,
                          jitter=0.15)
        ax.set_title(f"{metric} ({'lower' if metric.startswith('forget') else 'higher'} is better)")
        ax.set_ylim(-3, 103)
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle("Mini RWKU: one dot per target (mean over seeds)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------- dry run
def plan(profile: Profile) -> list[dict[str, Any]]:
    """Notebook 12's runs in `profile` from settings alone (no hub, no data, no model): per target and method,
    one run per learning rate of the grid, then one per further seed at the selected point (tiny profiles: and
    every seed there on the second draw's base model, `redraw`)."""
    from paperlib import unlearn
    from paperlib.experiments import DRAW_SEED

    s, g = settings(profile), tuning.grid(profile)
    model = base_model(profile) if s.mini is None else "rwku-base (tiny, trained here)"
    n = s.blocks_estimate
    out = []
    for method in METHODS:
        m, _, _ = unlearn.resolve(profile, method, NO_RETAIN.get(method))
        own = tuning.grid(profile, method)
        common = {"model": model, "method": method, "n_examples": n, "epochs": own.epochs, "passes": 1,
                  "reference": bool(m.needs().ref)}
        for i in range(s.n_targets):
            out += [{**common, "hyperparameters": {**NO_RETAIN.get(method, {}), "lr": lr, "target": i},
                     "evaluations": own.epochs if own.every_epoch else 1} for lr in own.lrs]
            out += [{**common, "hyperparameters": {**NO_RETAIN.get(method, {}), "lr": "selected", "seed": sd,
                                                    "target": i}, "evaluations": 1} for sd in g.seeds if sd != 0]
            if s.mini is not None:  # `redraw`: every seed at the selected point on the second draw's base model
                out += [{**common, "model": f"rwku-base (draw {DRAW_SEED})", "evaluations": 1,
                         "hyperparameters": {**NO_RETAIN.get(method, {}), "lr": "selected", "seed": sd, "target": i,
                                             "draw": DRAW_SEED}} for sd in g.seeds]
    return out


# ----------------------------------------------------------------------------------------- command line
def evaluate_cli(model: str, source: str | None, profile_name: str | None, targets: list[str] | None,
                 template: str | None, out: str) -> None:
    """`paperlib evaluate --benchmark rwku`: RWKU's files (forget.json, neighbor.json, forget_mia.json,
    retain_mia.json, mmlu.json, fluency.json) of `model` per target in `out/<Target_name>/`, and the table rows
    in `out/RWKU_SUMMARY.json`. `source`: the hub id or a local RWKU-layout folder (default: the profile's, mini
    RWKU for smoke / mini); `targets`: names or folder names (default: the profile's). Inputs checked first."""
    from paperlib import checks
    from paperlib.config import get_profile
    from paperlib.models import load_model, load_tokenizer

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
