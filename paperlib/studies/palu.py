"""What the notebooks compute, as functions that return DataFrames (the notebooks only call these,
plot the frames with `paperlib.report.plots` and save them with `paperlib.report`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from paperlib import benchmarks, methods
from paperlib.benchmarks.tofu import data as tofu
from paperlib.benchmarks.tofu import metrics, pipeline
from paperlib.benchmarks.tofu import mini as mini_tofu
from paperlib.benchmarks.tofu.plugin import original_mu, profile_settings  # noqa: F401 (the notebooks' names)
from paperlib.engine import executors, unlearn
from paperlib.engine.config import Profile
from paperlib.engine.models import load_tokenizer
from paperlib.methods import losses as L
from paperlib.methods import tuning
from paperlib.report import SPREAD
from paperlib.studies import protocol

STATS_SPLITS = ("full", "forget01", "forget05", "forget10", "retain90", "holdout10", "retain_perturbed",
                "real_authors_perturbed", "world_facts_perturbed")


def dataset_stats(profile: Profile) -> pd.DataFrame:
    """Rows, answer length (words and tokens) and sensitive spans per answer of each split."""
    source = pipeline.benchmark_source(profile)
    tok = load_tokenizer(pipeline.tokenizer_path(profile))
    rows = []
    for split in STATS_SPLITS:
        ds = tofu.load_split(source, split)
        answers = list(ds["answer"])
        row = {"split": split, "rows": len(ds),
               "answer words": np.mean([len(a.split()) for a in answers]),
               "answer tokens": np.mean([len(tok(a, add_special_tokens=False)["input_ids"]) for a in answers])}
        if split.startswith("forget") and not split.endswith("perturbed"):
            spans = tofu.load_spans(pipeline.spans_dir(profile, split))
            row["spans / answer"] = np.mean([len(spans[q]["spans"]) for q in ds["question"]])
            row["sensitive chars"] = np.mean([sum(e - s for s, e in spans[q]["spans"]) / len(spans[q]["answer"])
                                              for q in ds["question"]])
        rows.append(row)
    return pd.DataFrame(rows)


def training_curves(profile: Profile, forget: str) -> pd.DataFrame:
    """Per-step fine-tuning loss of the base, original and retain models (tiny profiles)."""
    stages = {"base": pipeline.base_model(profile), "original": pipeline.original_model(profile),
              tofu.retain_of(forget): pipeline.retain_model(profile, forget)}
    frames = []
    for stage, path in stages.items():
        steps = pd.DataFrame(json.loads((Path(path) / "train_log.json").read_text()))
        frames.append(steps.assign(stage=stage))
    return pd.concat(frames, ignore_index=True)


def evaluation(profile: Profile, path: str, forget: str) -> tuple[dict, dict]:
    """`pipeline.evaluation` of a model against the retain model (whose own evaluation, built on the way, has
    no reference log by design and says nothing about it: `evaluate.reference_model_evaluation`)."""
    return pipeline.evaluation(profile, path, forget)


def reference_models(profile: Profile, forget: str) -> dict[str, str]:
    """{"Original": path, "Retain": path}: the two models every table compares against."""
    return {"Original": pipeline.original_model(profile), "Retain": pipeline.retain_model(profile, forget)}


def truth_ratios(profile: Profile, forget: str) -> pd.DataFrame:
    """Per-sample forget-set truth ratios of the original and the retain model (long format)."""
    frames = []
    for model, path in reference_models(profile, forget).items():
        log, _ = evaluation(profile, path, forget)
        tr = [v["score"] for v in log["forget_truth_ratio"]["value_by_index"].values()]
        frames.append(pd.DataFrame({"model": model, "truth ratio": tr}))
    return pd.concat(frames, ignore_index=True)


def reference_rows(profile: Profile, forget: str) -> pd.DataFrame:
    """PALU table columns (FQ, MU, Fluency, EM, F-TR, Ra-TR, R-TR, Rw-TR) of the original and retain models."""
    rows = []
    for method, path in reference_models(profile, forget).items():
        _, summary = evaluation(profile, path, forget)
        rows.append({"method": method, **metrics.palu_columns(summary)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- unlearning runs
MAIN_METHODS = tuple(methods.names())  # the paper table's rows, from the registry
PAPER_K = (1, 1000, 5000, 10000)  # the paper's top-K sizes, of Llama-2's 32,000-token vocabulary
PAPER_V = 32000
TARGETS = L.TARGETS
PREFIX_BUDGETS = (1, 2, 3, 4, 5, 10, 0)  # 0 = every sensitive token ("all")
STATUS_OK = protocol.COMPLETED
LOG_FQ = "log10 FQ"


@dataclass(frozen=True)
class Run:
    """One unlearning configuration of a notebook: a label, the method and its settings beside the
    profile's; its learning rate and number of epochs come from the tuning protocol (`tune`)."""

    label: str
    method: str
    overrides: dict = field(default_factory=dict)


def main_runs(profile: Profile) -> list[Run]:
    return [Run(m, m) for m in MAIN_METHODS]


def localization_runs(profile: Profile) -> list[Run]:
    """RQ1: PALU's loss on every answer token, on every sensitive token, on the sensitive prefix."""
    return [Run("all answer tokens", "PALU", {"tokens": "all", "n": 0}),
            Run("all sensitive tokens", "PALU", {"n": 0}),
            Run("sensitive prefix (N=3)", "PALU")]


def nce_runs(profile: Profile) -> list[Run]:
    """RQ2: the same tokens, local entropy (PALU) vs negated cross-entropy (NCE)."""
    return [Run("PALU", "PALU"), Run("NCE", "NCE")]


def prefix_runs(profile: Profile) -> list[Run]:
    return [Run("all" if n == 0 else str(n), "PALU", {"n": n} if n != 3 else {}) for n in PREFIX_BUDGETS]


def k_grid(profile: Profile) -> list[int]:
    """The paper's K values, as the same fractions of this profile's vocabulary."""
    if profile.name == "paper":
        return list(PAPER_K)
    vocab = len(load_tokenizer(pipeline.tokenizer_path(profile)))
    return sorted({max(1, round(k * vocab / PAPER_V)) for k in PAPER_K})


def topk_runs(profile: Profile) -> list[Run]:
    default_k = methods.profile_hparams(profile, "PALU").get("k", methods.PALUHparams().k)
    return [Run(str(k), "PALU", {"k": k} if k != default_k else {}) for k in k_grid(profile)]


def target_runs(profile: Profile) -> list[Run]:
    return [Run(t, "PALU", {"target": t} if t != "global_mean" else {}) for t in TARGETS]


def _request(profile: Profile, forget: str, run: Run, point: protocol.Point) -> executors.Request:
    """The planned run of `run` at `point` on forget split `forget` (the TOFU plug-in's request, with the run's
    own settings above the profile's)."""
    return benchmarks.get("tofu").request(profile, forget, run.method, point, settings=run.overrides)


def _per_step(info: dict) -> float:
    timing = info["status"]["timing"]
    return timing["train_seconds"] / max(1, timing["steps"])


def _rows(run: Run, point: protocol.Point, info: dict, seeded: bool = False, curves: bool = True) -> list[dict]:
    """A run's rows (with its seed for a seed run): one per evaluated epoch (`curves`) or one for its final
    evaluation at the point's epoch (the TOFU plug-in's `scores` of each summary)."""
    base = {"label": run.label, "method": run.method, **({"seed": point.seed} if seeded else {}), "lr": point.lr,
            "train s / step": _per_step(info)}
    scores = benchmarks.get("tofu").scores
    if curves:
        return protocol.epoch_rows(info, base, scores)
    return [protocol.final_row(info, {**base, "epoch": point.stop_epoch}, scores)]


def _selected(profile: Profile, sweep_table: pd.DataFrame, forget: str) -> pd.DataFrame:
    """The reported point of every label (`protocol.select`: highest FQ at MU >= 95% of the original's, else
    the highest MU): label, method, lr, epoch, qualified (seed 0, the sweep), FQ, MU, and "MU original" (the
    reference of the MU95 flag that `spread_table` computes from the seed mean)."""
    mu = original_mu(profile, forget)
    return pd.DataFrame([{"label": label, "method": best["method"], "lr": best["lr"], "epoch": int(best["epoch"]),
                          "qualified": bool(best["qualified"]), "FQ": best["FQ"], "MU": best["MU"], "MU original": mu}
                         for label, best in protocol.select(profile, sweep_table, "label", mu)])


def _seeds(profile: Profile, runs: list[Run], forget: str, selected: pd.DataFrame,
           sweep_table: pd.DataFrame | None, curves: bool = False) -> pd.DataFrame:
    """Every run at its selected point with each seed of the grid (`protocol.seed_runs`): one row per (label,
    seed) with the TOFU summary (or status "diverged"). Seed 0 is the sweep's own checkpoint (trained like the
    others when `sweep_table` is None); other seeds train the same schedule up to the selected epoch. With
    `curves`, every seed trains all epochs and is evaluated after each (rows per (label, seed, epoch))."""
    chosen = selected.set_index("label")

    def point(run: Run, seed: int) -> protocol.Point:
        lr, epoch = float(chosen.loc[run.label, "lr"]), int(chosen.loc[run.label, "epoch"])
        return protocol.Point(lr, seed, 0 if curves else epoch, curves)

    def reuse(run: Run, seed: int) -> list[dict] | None:
        if seed != 0 or sweep_table is None:
            return None
        p = point(run, seed)  # the sweep's own run at this lr: the same computation, already done
        same = sweep_table[(sweep_table["label"] == run.label) & (sweep_table["lr"] == p.lr)]
        points = same if curves else same[(same["epoch"] == p.stop_epoch) & (same["status"] == STATUS_OK)]
        return [{**r, "seed": seed} for r in points.to_dict("records")]

    return pd.DataFrame(protocol.seed_runs(profile, runs, point, partial(_request, profile, forget),
                                           partial(_rows, seeded=True, curves=curves), reuse))


@dataclass
class Tuned:
    """What the tuning protocol produced for a list of runs: the sweep, the selected points, the seeds."""

    sweep: pd.DataFrame
    selected: pd.DataFrame
    seeds: pd.DataFrame

    def table(self, columns: tuple[str, ...] = tuple(metrics.PALU_COLUMNS), by: str = "label") -> pd.DataFrame:
        """Mean and standard deviation over seeds ("X", "X sd") of `columns` per label, with the selected
        lr / epoch, whether the point kept 95% of the original's utility (MU95), and how many seeds
        completed."""
        return spread_table(self.seeds, self.selected, columns, by)


def tune(profile: Profile, runs: list[Run], forget: str, curves: bool = False, seeds: bool = True) -> Tuned:
    """The tuning protocol (`paperlib.studies.protocol`, the rule of `paperlib.methods.tuning`) for the labelled
    `runs` on TOFU's `forget` split: the sweep (every lr of the grid, evaluated after every epoch; one row per
    label, lr and epoch, and a row with status "diverged" where a run diverged), the selected point per label,
    and every seed there (`curves`: each seed evaluated after every epoch). `seeds` False: the sweep alone."""
    table = pd.DataFrame(protocol.sweep(profile, runs, partial(_request, profile, forget), _rows))
    if not seeds:
        return Tuned(table, pd.DataFrame(), pd.DataFrame())
    chosen = _selected(profile, table, forget)
    return Tuned(table, chosen, _seeds(profile, runs, forget, chosen, table, curves))


DRAW_SEED = 1  # the second draw of the tiny models: base, original and retain trained from this seed (issue 24)


def second_draw(profile: Profile) -> Profile | None:
    """`profile` with its tiny base, original and retain models trained from seed `DRAW_SEED` (the same benchmark,
    tokenizer and tuning grid): the models are one random draw, and a verdict should not hang on it. None where
    the models are given (the paper profiles: one published original)."""
    if profile.model.original:
        return None
    return replace(profile, base=replace(profile.base, seed=DRAW_SEED), finetune=replace(profile.finetune,
                                                                                        seed=DRAW_SEED))


def redraw(profile: Profile, tuned: Tuned, runs: list[Run], forget: str,
           curves: bool = False) -> tuple[Profile, Tuned] | None:
    """Every run's selected point (its lr and epoch: no new sweep) re-run with every seed of the grid on the
    models of `second_draw` (its MU95 flag against that draw's original), as (that profile, its Tuned); None
    where there is no second draw."""
    other = second_draw(profile)
    if other is None:
        return None
    selected = tuned.selected.assign(**{"MU original": original_mu(other, forget)})
    return other, Tuned(pd.DataFrame(), selected, _seeds(other, runs, forget, selected, None, curves))


def spread_table(seeds: pd.DataFrame, selected: pd.DataFrame, columns: tuple[str, ...],
                 by: str = "label") -> pd.DataFrame:
    """Per label: lr, epoch, MU95 (the seed mean of MU keeps 95% of "MU original", `tuning.keeps_utility`; the
    sweep's seed-0 `qualified` when the selection has no "MU original"), seeds completed / run, and mean and sd
    over seeds of each column."""
    rows = []
    chosen = selected.set_index("label")
    for label, part in seeds.groupby(by, sort=False):
        ok = part[part["status"] == STATUS_OK]
        keeps = (tuning.keeps_utility(ok["MU"], float(chosen.loc[label, "MU original"]))
                 if "MU original" in chosen and "MU" in ok else bool(chosen.loc[label, "qualified"]))
        row = {by: label, "lr": chosen.loc[label, "lr"], "epoch": int(chosen.loc[label, "epoch"]),
               "MU95": "yes" if keeps else "no",
               "seeds": f"{len(ok)}/{len(part)}"}
        for col in columns:
            mean, sd = tuning.mean_std(ok[col]) if col in ok else (float("nan"), float("nan"))
            row[col], row[f"{col}{SPREAD}"] = mean, sd
            if col == "FQ" and col in ok:  # p-values span orders of magnitude: their spread on the log scale too
                row[LOG_FQ], row[f"{LOG_FQ}{SPREAD}"] = tuning.mean_std(np.log10(ok[col].clip(lower=1e-300)))
        rows.append(row)
    return pd.DataFrame(rows)


def results_table(profile: Profile, tuned: Tuned, forget: str, with_references: bool = False,
                  columns: tuple[str, ...] = tuple(metrics.PALU_COLUMNS)) -> pd.DataFrame:
    """The PALU table of tuned runs (mean and sd over seeds), optionally below the original and retain rows."""
    table = tuned.table(columns).rename(columns={"label": "method"})
    if not with_references:
        return table
    refs = reference_rows(profile, forget)
    if LOG_FQ in table:
        refs[LOG_FQ] = np.log10(refs["FQ"].clip(lower=1e-300))
    return _below(refs, table)


def _below(references: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The original / retain rows above a tuned table, in the table's columns (their settings left blank)."""
    return pd.concat([references, table], ignore_index=True)[list(table.columns)].astype({"epoch": "Int64"})


def epoch_curves(profile: Profile, tuned: Tuned, forget: str) -> pd.DataFrame:
    """FQ, MU and F-TR after every epoch at each label's selected learning rate, per seed (epoch 0 = the
    original model), with cumulative training time."""
    _, original = evaluation(profile, pipeline.original_model(profile), forget)
    start, steps_per_epoch = metrics.palu_columns(original), _steps_per_epoch(profile, forget)
    rows = []
    for (label, seed), part in tuned.seeds.groupby(["label", "seed"], sort=False):
        per_step = part["train s / step"].iloc[0] if "train s / step" in part else float("nan")
        rows.append({"method": label, "seed": seed, "epoch": 0, "train s": 0.0, **start})
        for _, r in part[part["status"] == STATUS_OK].iterrows():
            rows.append({"method": label, "seed": seed, "epoch": int(r["epoch"]),
                         "train s": per_step * steps_per_epoch * r["epoch"],
                         **{c: r.get(c, float("nan")) for c in metrics.PALU_COLUMNS}})
    return pd.DataFrame(rows)


def curve_table(curves: pd.DataFrame, columns: tuple[str, ...] = ("FQ", "MU", "F-TR")) -> pd.DataFrame:
    """Per method and epoch: mean and sd over seeds of `columns` (the table of `epoch_curves`)."""
    rows = []
    for (method, epoch), part in curves.groupby(["method", "epoch"], sort=False):
        row = {"method": method, "epoch": int(epoch), "seeds": len(part)}
        for col in columns:
            row[col], row[f"{col}{SPREAD}"] = tuning.mean_std(part[col])
        rows.append(row)
    return pd.DataFrame(rows)


def seeds_long(tuned: Tuned, columns: list[str], label: str = "method") -> pd.DataFrame:
    """The seed rows in long form (label, seed, metric, value) for bar charts with their spread."""
    ok = tuned.seeds[tuned.seeds["status"] == STATUS_OK].drop(columns="method").rename(columns={"label": label})
    return ok.melt(id_vars=[label, "seed"], value_vars=columns, var_name="metric")


def _steps_per_epoch(profile: Profile, forget: str) -> int:
    cfg = tuning.train_config(profile, "PALU")
    return -(-_forget_size(profile, forget) // cfg.batch_size)


def privacy_table(profile: Profile, tuned: Tuned, forget: str) -> pd.DataFrame:
    """MIA AUCs (LOSS, ZLib, MinK, MinK++) and privleak of the original, retain and every tuned run (mean and
    sd over seeds)."""
    names = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "privleak", "forget_quality")
    rows = []
    for model, path in reference_models(profile, forget).items():
        _, summary = evaluation(profile, path, forget)
        rows.append({"method": model, **{n: summary.get(n, float("nan")) for n in names}})
    return _below(pd.DataFrame(rows), tuned.table(names).rename(columns={"label": "method"}))


def sweep_table(tuned: Tuned) -> pd.DataFrame:
    """The committed record of a sweep: every grid point's lr, epoch, status and PALU columns, the selected
    point marked."""
    cols = ["label", "lr", "epoch", "status", *metrics.PALU_COLUMNS]
    table = tuned.sweep[[c for c in cols if c in tuned.sweep]].copy()
    key = set(zip(tuned.selected["label"], tuned.selected["lr"], tuned.selected["epoch"]))
    table["selected"] = ["yes" if (lb, lr, e) in key else "" for lb, lr, e in
                         zip(table["label"], table["lr"], table["epoch"])]
    return table


def frontier_sentence(sweep_rows: pd.DataFrame, mu_original: float) -> str:
    """What a sweep shows about forgetting and utility, computed from it (notebook 01 prints it; no result is
    typed into prose): the highest FQ among the points keeping `tuning.MU_FRACTION` of the original's MU and
    whether it forgot (`claims.forgot_fq`), then per label the point that forgot with the highest MU, and the
    labels with no point that forgot. `sweep_rows`: columns label, lr, epoch, status, FQ, MU."""
    from paperlib.studies import claims

    ok = sweep_rows[sweep_rows["status"] == STATUS_OK]
    floor = tuning.MU_FRACTION * mu_original
    kept = ok[ok["MU"] >= floor]
    rule = f"FQ >= {claims.FORGOTTEN_P}"
    if kept.empty:
        out = [f"No sweep point keeps MU >= {floor:.3f} ({tuning.MU_FRACTION:.0%} of the original's)."]
    else:
        top = kept.loc[kept["FQ"].idxmax()]
        out = [f"Among the sweep points with MU >= {floor:.3f} ({tuning.MU_FRACTION:.0%} of the original's), the "
               f"highest FQ is {top['FQ']:.2g} ({top['label']}, lr {top['lr']:g}, epoch {int(top['epoch'])}): "
               + ("it forgot" if claims.forgot_fq(top["FQ"]) else "nothing forgotten") + f" ({rule})."]
    forgot = ok[ok["FQ"].map(claims.forgot_fq)]
    if forgot.empty:
        return " ".join(out + [f"No sweep point of any method forgot ({rule})."])
    best = forgot.sort_values("MU", ascending=False).groupby("label", sort=False).head(1)
    out.append(f"Points that forgot ({rule}), each method's with the highest MU: " + ", ".join(
        f"{r['label']} FQ {r['FQ']:.2g} at MU {r['MU']:.3f}" for _, r in best.iterrows()) + ".")
    never = [lb for lb in dict.fromkeys(ok["label"]) if lb not in set(best["label"])]
    if never:
        out.append(f"No point forgot for: {', '.join(map(str, never))}.")
    return " ".join(out)


def timing_table(tuned: Tuned) -> pd.DataFrame:
    """Training seconds per optimizer step of each label (mean and sd over the non-zero seeds' runs)."""
    if "train s / step" not in tuned.seeds:
        return pd.DataFrame(columns=["method"])
    rows = []
    for label, part in tuned.seeds.groupby("label", sort=False):
        mean, sd = tuning.mean_std(part["train s / step"])
        rows.append({"method": label, "s / step": mean, f"s / step{SPREAD}": sd})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- dry-run plans
TOFU_FORGET_SIZES = {"forget01": 40, "forget05": 200, "forget10": 400}
NOTEBOOK_RUNS = {"01": (main_runs, False), "02": (localization_runs, False), "03": (nce_runs, True),
                 "04": (prefix_runs, False), "05": (topk_runs, False), "06": (target_runs, False),
                 "07": (None, False), "08": (None, False)}


def _forget_size(profile: Profile, forget: str = "") -> int:
    forget = forget or profile.benchmark.forget
    if profile.benchmark.name == "tofu":
        return TOFU_FORGET_SIZES[forget]
    cfg = profile.benchmark.mini
    return mini_tofu.n_forget_authors(cfg.n_authors, int(forget[-2:])) * cfg.qa_per_author


def _planned(profile: Profile, run: Run, curves: bool) -> list[dict]:
    """The runs the tuning protocol launches for `run`: one per learning rate of the grid (evaluated after
    every epoch), then one per further seed at the selected point (at most every epoch; evaluated once,
    or after every epoch with `curves`), and every seed at that point on the second draw's models (`redraw`)."""
    m, train_cfg, _ = unlearn.resolve(profile, run.method, run.overrides)
    g = tuning.grid(profile, run.method)
    common = {"model": pipeline.original_model(profile), "method": run.method, "n_examples": _forget_size(profile),
              "epochs": g.epochs, "passes": 2 if m.needs().retain else 1, "reference": bool(m.needs().ref)}
    other = second_draw(profile)  # `redraw`: every seed at the selected point on the second draw's models
    draw = (pipeline.original_model(other), DRAW_SEED) if other is not None else None
    return protocol.plan_rows(profile, run.method, common, run.overrides,
                              seed_evals=(g.epochs if g.every_epoch else 1) if curves else 1, draw=draw)


def plan(notebook: str, profile: Profile) -> list[dict]:
    """Runs notebook `notebook` launches in `profile` that no earlier notebook launched (the dry run);
    resolved from settings alone, without the hub or any data."""
    if notebook == "00":
        forget = profile.benchmark.forget
        return [{"model": path, "method": "evaluate", "hyperparameters": {}, "n_examples": 0, "epochs": 0}
                for path in (pipeline.original_model(profile), pipeline.retain_model(profile, forget))]
    seen = set()
    for prefix, (runs_fn, every) in NOTEBOOK_RUNS.items():
        runs = [(r.method, tuple(sorted(r.overrides.items())), every) for r in (runs_fn(profile) if runs_fn else [])]
        if prefix == notebook:
            return [p for method, over, ev in runs if (method, over, ev) not in seen
                    for p in _planned(profile, Run("", method, dict(over)), ev)]
        seen.update(runs)
    raise ValueError(f"notebook {notebook!r} has no plan; allowed: 00, {', '.join(NOTEBOOK_RUNS)}")


def sensitive_flags(profile: Profile, forget: str) -> torch.Tensor:
    """Per-token sensitive flags [n, T] of the forget set's answers under the profile's tokenizer."""
    from paperlib.engine import encoding

    tok = load_tokenizer(pipeline.tokenizer_path(profile))
    spans = tofu.load_spans(pipeline.spans_dir(profile, forget))
    flags = [encoding.encode(tok, profile.model.template, q, row["answer"], row["spans"])["sensitive"]
             for q, row in spans.items()]
    return encoding.pad(flags, False, dtype=torch.bool)


def prefix_coverage(profile: Profile, forget: str, budgets: tuple[int, ...] = PREFIX_BUDGETS) -> pd.DataFrame:
    """How many sensitive tokens each prefix budget N selects (`losses.prefix_mask`), absolute and as a share
    of every sensitive token (N = all: 1)."""
    flags = sensitive_flags(profile, forget)
    total = int(flags.sum())
    rows = []
    for n in budgets:
        chosen = int(L.prefix_mask(flags, n).sum())
        rows.append({"N": "all" if n <= 0 else str(n), "tokens": chosen, "share of sensitive tokens": chosen / total})
    return pd.DataFrame(rows)


def sensitive_run_lengths(profile: Profile, forget: str) -> pd.Series:
    """How many sensitive spans of the forget set are k tokens long (k = maximal run of sensitive tokens);
    prefix budgets N at or above the longest run all unlearn the same tokens."""
    lengths = []
    for flags in sensitive_flags(profile, forget).tolist():
        run = 0
        for flag in [*flags, False]:
            if flag:
                run += 1
            elif run:
                lengths.append(run)
                run = 0
    return pd.Series(lengths, name="tokens").value_counts().sort_index()
