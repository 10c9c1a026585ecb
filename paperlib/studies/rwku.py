"""Notebook 12's study on RWKU: per target and method the project's tuning protocol (`paperlib.studies.protocol`)
on the RWKU benchmark (`rwku.evaluate`: base model, forget corpora, evaluator, the tuning rule's two numbers),
the seeds, the second draw, the per-target and RWKU-layout tables, the forget-corpus comparison, the figure and
the dry-run plan. Its own module so that the RWKU runs' cache keys (the evaluator's code) do not move when a
table or a figure changes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from paperlib import benchmarks
from paperlib.benchmarks.rwku import evaluate as rwku
from paperlib.benchmarks.rwku.evaluate import FORGET_CORPORA, METHODS, NO_RETAIN, SPAN_METHODS, TABLE_COLUMNS
from paperlib.engine.config import Profile
from paperlib.methods import tuning
from paperlib.report import SPREAD
from paperlib.studies import protocol


def describe(profile: Profile) -> str:
    """Notebook 12's protocol in one paragraph (printed before any result)."""
    g, s = tuning.grid(profile), rwku.settings(profile)
    lrs = ", ".join(f"{lr:g}" for lr in g.lrs)
    return (f"{profile.name}: {s.n_targets} target(s), each unlearned on its own from its passages ({s.block}-token "
            f"blocks, no retain term); every method sweeps lr in {{{lrs}}} for {g.epochs} epochs, evaluated after "
            f"{'each' if g.every_epoch else 'the last'}; reported point per target = highest FQ = 100 - forget All "
            f"with MU = neighbour All >= {tuning.MU_FRACTION:.0%} of the original model's (else the highest MU, "
            f"flagged); that point re-run with seeds {list(g.seeds)} (the seed changes the data order); tables: "
            "mean over seeds per target, then mean ± sd over targets.")


def tune(profile: Profile, methods: tuple[str, ...] = METHODS) -> dict[str, pd.DataFrame]:
    """The tuning protocol on the RWKU plug-in (`protocol.tune`: per target and method "sweep", "selected", "seeds")
    and the original model's rows per target ("original")."""
    return {**protocol.tune(profile, benchmarks.get("rwku"), methods),
            "original": rwku.original_rows(profile).set_index("target").reset_index()}


def redraw(profile: Profile, tuned: dict[str, pd.DataFrame]) -> tuple[Profile, dict[str, pd.DataFrame]] | None:
    """Every (target, method)'s selected point (`tune`'s lr and epoch: no new sweep) re-run with every seed of
    the grid on the base model of the second draw (`experiments.second_draw`: trained from another seed), as
    (that profile, a `tune`-shaped dict: no sweep, that draw's original rows, MU95 against them); None where the
    model is given (the paper profile's checkpoint)."""
    from paperlib.studies.palu import second_draw

    other = second_draw(profile)
    if other is None or rwku.settings(profile).mini is None:
        return None
    original = rwku.original_rows(other).set_index("target")
    selected = tuned["selected"].to_dict("records")
    arms = [protocol.Arm(sel["target"], sel["method"]) for sel in selected]
    points = {a: (float(sel["lr"]), int(sel["epoch"])) for a, sel in zip(arms, selected)}
    seeds = pd.DataFrame(protocol.seed_points(other, benchmarks.get("rwku"), points, None))
    chosen = [{**{k: sel[k] for k in ("target", "method", "lr", "epoch")},
               "qualified": protocol.keeps(seeds, a, original.loc[a.target, "MU"])} for a, sel in zip(arms, selected)]
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
        arm, base = protocol.Arm(sel["target"], sel["method"]), {"method": sel["method"], "target": sel["target"]}
        mine = seeds[(seeds["method"] == sel["method"]) & (seeds["target"] == sel["target"]) & (seeds["seed"] == 0)]
        for kind in FORGET_CORPORA:
            run = None
            if kind == rwku.settings(profile).forget_corpus and len(mine):
                rec = mine.iloc[0].to_dict()
            elif arm.method in SPAN_METHODS and not any(rwku.corpus(profile, arm.target, spans=True,
                                                               forget_corpus=kind).forget_spans):
                rec = {"status": "no sensitive spans"}  # PALU cannot train: the annotator found no span
            else:
                rec, run = None, (arm, protocol.Point(float(sel["lr"]), 0, int(sel["epoch"]), False), kind)
            todo.append((kind, base, rec, run))
    planned = [run for *_, run in todo if run is not None]
    bench = benchmarks.get("rwku")
    infos = iter(protocol.execute([bench.request(profile, a.target, a.method, p, forget_corpus=k)
                                   for a, p, k in planned]))
    rows = []
    for kind, base, rec, run in todo:
        if run is not None:
            got = [r for r in protocol.epoch_rows(next(infos), base, bench.scores)
                   if r["epoch"] == run[1].stop_epoch or r["status"] != "completed"]
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

    from paperlib.report import method_palette, plots

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
    from paperlib.engine import unlearn
    from paperlib.studies.palu import DRAW_SEED

    s = rwku.settings(profile)
    model = rwku.base_model(profile) if s.mini is None else "rwku-base (tiny, trained here)"
    n = s.blocks_estimate
    out = []
    for method in METHODS:
        m, _, _ = unlearn.resolve(profile, method, NO_RETAIN.get(method))
        own = tuning.grid(profile, method)
        common = {"model": model, "method": method, "n_examples": n, "epochs": own.epochs, "passes": 1,
                  "reference": bool(m.needs().ref)}
        draw = (f"rwku-base (draw {DRAW_SEED})", DRAW_SEED) if s.mini is not None else None  # `redraw`
        for i in range(s.n_targets):
            out += protocol.plan_rows(profile, method, common, {**NO_RETAIN.get(method, {}), "target": i}, draw=draw)
    return out


