"""Notebook 11's study on MUSE: every method tuned by the project's protocol (`paperlib.studies.protocol`) on the
MUSE benchmark (`muse.evaluate`: its models, corpus, evaluator and the tuning rule's two numbers), the seeds at
the selected points, the second draw, the tables and the figure, the span study, and the dry-run plan. The runs
are planned by the MUSE plug-in (`paperlib.benchmarks.muse.plugin`); this module holds no protocol of its own."""

from __future__ import annotations

import numpy as np
import pandas as pd

from paperlib import benchmarks
from paperlib.benchmarks.muse import evaluate as muse
from paperlib.benchmarks.muse.evaluate import COLUMNS, METHODS, PAPER_MODELS, SETTINGS
from paperlib.engine.config import Profile
from paperlib.methods import make_method, tuning
from paperlib.studies import protocol


def describe(profile: Profile) -> str:
    """The tuning protocol on MUSE in one paragraph (`tuning.describe` with MUSE's FQ and MU)."""
    g = tuning.grid(profile)
    return (f"{profile.name}: every method sweeps lr in {{{', '.join(f'{lr:g}' for lr in g.lrs)}}} for {g.epochs} "
            f"epochs, evaluated after each; MU = KnowMem-retain, FQ = 1 - mean(VerbMem, KnowMem-forget); reported "
            f"point = highest FQ with MU >= {tuning.MU_FRACTION:.0%} of the target model's MU (else the highest MU, "
            f"flagged MU95 = no); that lr and epoch re-run with seeds {list(g.seeds)}; tables show mean ± sd.")


def tune(profile: Profile, methods: tuple[str, ...] | None = None, seeds: bool = True) -> dict[str, pd.DataFrame]:
    """The tuning protocol on the MUSE plug-in (`protocol.tune`, every epoch evaluated): "sweep" (one row per
    method, lr and epoch: MUSE columns, FQ, MU; a diverged run gives a row with status "diverged"), "selected",
    and "seeds" (each method at its point with every seed of the grid: the final evaluation's MUSE columns and
    bootstrap CIs; seed 0 is the sweep's run when the selected epoch is its last). `seeds` False: the sweep."""
    return protocol.tune(profile, benchmarks.get("muse"), methods or muse.settings(profile).methods,
                         every_epoch=True, seeds=seeds)


def redraw(profile: Profile, chosen: pd.DataFrame) -> tuple[Profile, pd.DataFrame] | None:
    """Each method's selected point (`tune`'s lr and epoch: no new sweep) re-run with every seed of the grid on
    the target and retrained models of the second draw (`palu.second_draw`: trained from another seed; their
    own automatic spans and PrivLeak reference), as (that profile, its `main_table`, MU95 against that draw's
    target); None where the models are given (the paper profile's published checkpoints)."""
    from paperlib.studies.palu import second_draw

    other = second_draw(profile)
    if other is None or muse.settings(profile).mini is None:
        return None
    points = {protocol.Arm(c["target"], c["method"]): (float(c["lr"]), int(c["epoch"]))
              for c in chosen.to_dict("records")}
    return other, main_table(other, pd.DataFrame(protocol.seed_points(other, benchmarks.get("muse"), points, None)))


def main_table(profile: Profile, seeds: pd.DataFrame) -> pd.DataFrame:
    """Target and retrained rows, then each method's mean ± sd over seeds (columns "X" and "X sd"), the
    bootstrap 95% CIs (over items) of its seed-0 run, and MU95: whether the seed mean of MU (KnowMem-retain)
    keeps 95% of the target's (`tuning.keeps_utility`; seed 0 alone decided the selection)."""
    ref, mu = muse.sanity(profile), muse.target_mu(profile)
    rows = [{"method": r["model"], **{c: r[c] for c in ref.columns if c != "model"}} for _, r in ref.iterrows()]
    for method, part in seeds.groupby("method", sort=False):
        ok = part[part["status"] == "completed"]
        row = {"method": method, "lr": part["lr"].iloc[0], "epoch": part["epoch"].iloc[0],
               "MU95": "yes" if tuning.keeps_utility(ok["MU"] if "MU" in ok else [], mu) else "no",
               "seeds": f"{len(ok)}/{len(part)}"}
        for col in COLUMNS:
            mean, sd = tuning.mean_std(ok[col]) if len(ok) else (float("nan"), float("nan"))
            row[col], row[f"{col} sd"] = mean, sd
        first = part[part["seed"] == part["seed"].min()].iloc[0]
        row.update({k: first[k] for k in part.columns if k.endswith(" CI")})
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_record(table: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """The committed record of the sweep: every grid point's MUSE columns, FQ, MU, the selected point marked."""
    cols = ["method", "lr", "epoch", "status", *COLUMNS, "FQ", "MU"]
    out = table[[c for c in cols if c in table]].copy()
    key = set(zip(chosen["method"], chosen["lr"], chosen["epoch"]))
    out["selected"] = ["yes" if (m, lr, e) in key else "" for m, lr, e in zip(out["method"], out["lr"], out["epoch"])]
    return out


def tradeoff_figure(table: pd.DataFrame):
    """Left: KnowMem-forget against KnowMem-retain (mean ± sd over seeds; target and retrained as references);
    right: VerbMem per method (± sd)."""
    import matplotlib.pyplot as plt

    from paperlib import report

    report.set_paper_style()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(report.TEXT_WIDTH, 2.6), gridspec_kw={"width_ratios": [1.2, 1]})
    names = list(table["method"])
    palette, markers = report.method_palette(names), report.method_markers(names)
    for _, r in table.iterrows():
        sd_f, sd_r = r.get("KnowMem-f sd", 0.0), r.get("KnowMem-r sd", 0.0)
        ax.errorbar(r["KnowMem-r"], r["KnowMem-f"], xerr=np.nan_to_num(sd_r), yerr=np.nan_to_num(sd_f),
                    fmt=markers[r["method"]], color=palette[r["method"]], label=r["method"], markersize=5, capsize=2)
    ax.set(xlabel="KnowMem on retain (utility, x100)", ylabel="KnowMem on forget (x100)", title="MUSE trade-off",
           xlim=(-3, 103), ylim=(-3, 103))  # ROUGE x 100: the whole 0..100 range, so runs compare across profiles
    ax.legend(fontsize=6, ncol=2, loc="best", frameon=False)
    sd = np.nan_to_num(table.get("VerbMem sd", pd.Series(0.0, index=table.index)).to_numpy(dtype=float))
    bx.barh(names, table["VerbMem"], xerr=sd, color=[palette[n] for n in names], capsize=2)
    bx.invert_yaxis()
    bx.set(xlabel="VerbMem (ROUGE-L F1 x100)", title="Verbatim memorisation")
    fig.tight_layout()
    return fig


def span_study(profile: Profile) -> pd.DataFrame:
    """The span annotator study of notebook 11 (`paperlib.studies.spans.span_study`, on mini-TOFU)."""
    from paperlib.studies import spans

    return spans.span_study(profile)


# ----------------------------------------------------------------------------------------- dry run
# forget-set training blocks of 2048 tokens: MUSE's forget sets hold about 0.8M (News) and 1.1M (Books) tokens
# (MUSE paper's data table; inferred, the dry run's cost estimate only)
PAPER_FORGET_BLOCKS = {"news": int(0.8e6 // 2048), "books": int(1.1e6 // 2048)}


def plan(profile: Profile) -> list[dict]:
    """Notebook 11's runs in the paper profile: the PALU paper's MUSE rows (News and Books, MUSE's 7B target
    models, every method at the papers' setting); tiny profiles: the mini-MUSE sweep, the further seeds at the
    selected points and every seed there on the second draw's models (`redraw`)."""
    name = getattr(profile, "name", profile)
    g = tuning.grid(name)
    rows = []
    if name == "paper":
        for corpus_name, (target, _, model_name, params) in PAPER_MODELS.items():
            for method in METHODS:
                cfg, needs = tuning.train_config(name, method), make_method(method).needs()
                rows.append({"model": target, "model_name": f"{model_name} (MUSE-{corpus_name.capitalize()})",
                             "method": method, "hyperparameters": {"lr": cfg.lr, "block": SETTINGS["paper"].block},
                             "n_examples": PAPER_FORGET_BLOCKS[corpus_name], "epochs": cfg.epochs,
                             "params_b": params, "reference": bool(needs.ref),
                             # a 2048-token block costs 8 of the dry run's 256-token examples; x2 with a retain term
                             "passes": SETTINGS["paper"].block / 256 * (2.0 if needs.retain else 1.0)})
        return rows
    from paperlib.studies.palu import DRAW_SEED

    s = muse.settings(name)
    for method in s.methods:
        common = {"model": "muse-target", "method": method, "n_examples": s.mini.n_events if s.mini else 0,
                  "epochs": g.epochs}
        # the sweep evaluated after every epoch; `redraw`: every seed at the selected point on the second draw's
        # target model
        rows += protocol.plan_rows(name, method, common, {}, draw=(f"muse-target (draw {DRAW_SEED})", DRAW_SEED),
                                   every_epoch=True)
    return rows


