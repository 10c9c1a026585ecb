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
from typing import Any

import numpy as np
import pandas as pd

from paperlib import rwku_metrics, tuning
from paperlib.cache import cached_run, code_fingerprint
from paperlib.config import Profile, TrainConfig
from paperlib.corpus import TextCorpus
from paperlib.data import mini_rwku
from paperlib.data import rwku as rwku_data
from paperlib.errors import PaperlibError
from paperlib.models import load_model, load_tokenizer
from paperlib.progress import bar as progress_bar

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


SETTINGS: dict[str, RwkuSettings] = {
    "mini": RwkuSettings(mini=mini_rwku.MiniRwkuConfig(), n_targets=3, max_new_tokens=16, fluency_tokens=40,
                         shots=2, block=32, batch_size=4, blocks_estimate=8),
    "smoke": RwkuSettings(mini=mini_rwku.MiniRwkuConfig(n_targets=2, n_background=4, n_general=12, n_fluency=2,
                                                        n_retain_mia=2),
                          n_targets=1, max_new_tokens=8, fluency_tokens=12, shots=1, block=32, batch_size=4,
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


def corpus(profile: Profile, target: str, spans: bool = False) -> TextCorpus:
    """The unlearning corpus of `target`: its passages (RWKU's passage.json), no retain documents; with
    `spans`, each passage's sensitive spans from the model-free annotator `paperlib.spans.capitalised_spans`
    (names, places, titles, numbers: raw passages have no span files and RWKU's zero-shot setting no retain
    model, so the log-prob annotator does not apply)."""
    data = json.loads(_target_data(benchmark_source(profile), target))
    texts = tuple(r["text"] for r in data["passage"])
    if not texts:
        raise PaperlibError(f"RWKU target {target!r} has no passages (passage.json); allowed: a target with its "
                            "forget corpus")
    found = None
    if spans:
        from paperlib.spans import capitalised_spans

        found = tuple(tuple(capitalised_spans(t)) for t in texts)
    return TextCorpus(name=f"rwku:{target}", forget=texts, retain=(), block=settings(profile).block,
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
    g, s = tuning.grid(profile), settings(profile)
    out = {**NO_RETAIN.get(method, {}), "lr": lr, "epochs": g.epochs, "seed": seed, "stop_epoch": stop_epoch}
    if s.batch_size:
        out["batch_size"] = s.batch_size
    return out


def _run(profile: Profile, target: str, method: str, lr: float, seed: int = 0, stop_epoch: int = 0,
         every_epoch: bool = True) -> dict:
    from paperlib import unlearn

    text = corpus(profile, target, spans=method in SPAN_METHODS)
    path = unlearn.unlearn_text(profile, method, text, EVALUATOR, eval_args(profile, target), base_model(profile),
                                _overrides(profile, method, lr, seed, stop_epoch), eval_every_epoch=every_epoch,
                                save_model=False, progress=False)
    return unlearn.read_run(path)


def _rows(info: dict, base: dict) -> list[dict]:
    rows = [{**base, "epoch": e["epoch"], "status": "completed", **{k: v for k, v in e.items() if k != "epoch"}}
            for e in info["epochs"]]
    rows = [{**r, **scores(r)} for r in rows]
    if info["status"]["status"] != "completed":
        rows.append({**base, "epoch": info["status"].get("epoch"), "status": "diverged"})
    return rows


def original_rows(profile: Profile) -> pd.DataFrame:
    """The original model's RWKU row per target."""
    path = base_model(profile)
    return pd.DataFrame([{"target": t, "method": "Original", **(r := evaluate_model(profile, t, path)), **scores(r)}
                         for t in target_names(profile)])


def tune(profile: Profile, methods: tuple[str, ...] = METHODS) -> dict[str, pd.DataFrame]:
    """The tuning protocol per target and method: "sweep" (every lr x epoch), "selected" (the rule's point),
    "seeds" (the selected point with every seed of the grid)."""
    g = tuning.grid(profile)
    original = original_rows(profile).set_index("target")
    sweep, chosen, seeds = [], [], []
    todo = [(t, m) for t in target_names(profile) for m in methods]
    for target, method in progress_bar(todo, "rwku targets x methods"):
        part = []
        for lr in g.lrs:
            info = _run(profile, target, method, lr, every_epoch=g.every_epoch)
            part += _rows(info, {"target": target, "method": method, "lr": lr})
        part_df = pd.DataFrame(part)
        sweep.append(part_df)
        best = tuning.select(part_df, float(original.loc[target, "MU"]), g.every_epoch)
        lr, epoch = float(best["lr"]), int(best["epoch"])
        chosen.append({"target": target, "method": method, "lr": lr, "epoch": epoch,
                       "qualified": bool(best["qualified"])})
        for seed in g.seeds:
            if seed == 0:
                same = part_df[(part_df["lr"] == lr) & (part_df["epoch"] == epoch) & (part_df["status"] == "completed")]
                seeds += [{**r, "seed": 0} for r in same.to_dict("records")]
                continue
            info = _run(profile, target, method, lr, seed, stop_epoch=epoch, every_epoch=False)
            seeds += [{**r, "seed": seed} for r in _rows(info, {"target": target, "method": method, "lr": lr})
                      if r["epoch"] == epoch or r["status"] != "completed"]
    return {"sweep": pd.concat(sweep, ignore_index=True), "selected": pd.DataFrame(chosen),
            "seeds": pd.DataFrame(seeds), "original": original.reset_index()}


def per_target(tuned: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean over seeds of every column per (method, target), the original model's rows first; `runs` = the
    completed seed runs averaged; a target whose seeds all diverged has status "diverged (every seed)" and no
    numbers (shown as a dash, left out of `results_table`'s means, which count the targets they average)."""
    seeds = tuned["seeds"]
    ok = seeds[seeds["status"] == "completed"]
    cols = [c for c in TABLE_COLUMNS if c in ok]
    rows = [tuned["original"][["method", "target", *cols]].assign(runs=1, status="completed")]
    for (method, target), part in seeds.groupby(["method", "target"], sort=False):
        good = part[part["status"] == "completed"]
        row = {"method": method, "target": target, "runs": len(good),
               "status": "completed" if len(good) else "diverged (every seed)"}
        if len(good):
            row.update({c: float(good[c].mean()) for c in cols})
        rows.append(pd.DataFrame([row]))
    return pd.concat(rows, ignore_index=True)


def results_table(tuned: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """RWKU's table layout, mean ± sd over targets (each target: the mean over its seeds), with the number of
    targets whose selected point kept the utility rule (MU95) per method."""
    rows = per_target(tuned)
    cols = [c for c in TABLE_COLUMNS if c in rows]
    out = []
    for method, part in rows.groupby("method", sort=False):
        rec: dict[str, Any] = {"method": method}
        for c in cols:
            v = part[c].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            rec[c] = float(v.mean()) if len(v) else float("nan")
            rec[f"{c} sd"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        sel = tuned["selected"]
        mine = sel[sel["method"] == method]
        rec["MU95"] = f"{int(mine['qualified'].sum())}/{len(mine)}" if len(mine) else ""
        rec["targets"] = int(np.isfinite(part[cols[0]].to_numpy(dtype=float)).sum())
        out.append(rec)
    return pd.DataFrame(out)


def spread_figure(rows: pd.DataFrame):
    """Forget All and neighbour All per method, one dot per target, bars at the mean over targets."""
    import matplotlib.pyplot as plt
    import seaborn as sns

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
    one run per learning rate of the grid, then one per further seed at the selected point."""
    from paperlib import unlearn

    s, g = settings(profile), tuning.grid(profile)
    model = base_model(profile) if s.mini is None else "rwku-base (tiny, trained here)"
    n = s.blocks_estimate
    evals = g.epochs if g.every_epoch else 1
    out = []
    for method in METHODS:
        m, _, _ = unlearn.resolve(profile, method, NO_RETAIN.get(method))
        common = {"model": model, "method": method, "n_examples": n, "epochs": g.epochs, "passes": 1,
                  "reference": bool(m.needs().ref)}
        for i in range(s.n_targets):
            out += [{**common, "hyperparameters": {**NO_RETAIN.get(method, {}), "lr": lr, "target": i},
                     "evaluations": evals} for lr in g.lrs]
            out += [{**common, "hyperparameters": {**NO_RETAIN.get(method, {}), "lr": "selected", "seed": sd,
                                                    "target": i}, "evaluations": 1} for sd in g.seeds if sd != 0]
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
