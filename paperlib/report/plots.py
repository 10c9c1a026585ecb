"""Figures of the notebooks, in the paper style of `paperlib.report` (each returns a matplotlib figure)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from paperlib import report
from paperlib.methods.tuning import MU_FRACTION
from paperlib.studies.claims import FORGOTTEN_P

WIDTH = 3.4  # inches: one column of a two-column paper
JITTER_SEED = 0


@contextlib.contextmanager
def fixed_jitter() -> Iterator[None]:
    """numpy's global RNG seeded inside the block and restored after it: seaborn's stripplot jitters its dots
    with it, and a figure must be the same bytes on every run."""
    state = np.random.get_state()
    np.random.seed(JITTER_SEED)
    try:
        yield
    finally:
        np.random.set_state(state)


def _major_labels_only(ax: plt.Axes) -> None:
    """No labels on minor ticks of log axes (they overlap: 2x10^-1, 3x10^-1, ...)."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(NullFormatter())


def training_curves(steps: pd.DataFrame) -> plt.Figure:
    """Fine-tuning loss per step, one line per stage (base, original, retain)."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.3))
    sns.lineplot(steps, x="step", y="loss", hue="stage", ax=ax, linewidth=1)
    ax.set(yscale="log", xlabel="optimizer step", ylabel="answer NLL",
           title="Pretraining (base) and fine-tuning the tiny models")
    return fig


def truth_ratio_hist(tr: pd.DataFrame) -> plt.Figure:
    """Forget-set truth ratios of the original vs the retain model (what forget quality compares)."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.3))
    palette = report.method_palette(tr["model"].unique())
    sns.histplot(tr, x="truth ratio", hue="model", palette=palette, bins=30, log_scale=True, element="step",
                 ax=ax)
    ax.set(title="Forget-set truth ratio", xlabel="truth ratio P(perturbed) / P(paraphrased)")
    _major_labels_only(ax)
    return fig


FQ_FLOOR = 1e-20  # forget qualities below this are drawn on the floor line (GA reaches 1e-59)


def _floor(values: pd.Series) -> pd.Series:
    return values.clip(lower=FQ_FLOOR)


NAN = float("nan")
PUBLISHED = "published (PALU paper Table 1, TOFU forget05, Llama-2-7B-chat)"  # drawn as a black x
Guides = dict[str, Line2D]  # legend label -> the line it names


def _original(references: pd.DataFrame | None) -> tuple[float, float]:
    """(FQ, MU) of the "Original" row of `references` (NaN where there is none)."""
    if references is None or "Original" not in set(references["method"]):
        return NAN, NAN
    row = references[references["method"] == "Original"].iloc[0]
    return float(row.get("FQ", NAN)), float(row.get("MU", NAN))


def _fq_guides(ax: plt.Axes, fq_original: float = NAN, floor: float = 0.0) -> Guides:
    """Horizontal lines on an FQ axis: FQ = `FORGOTTEN_P` ("forgotten") and the original model's FQ (drawn at
    `floor` when below it, as the figure's points are)."""
    out = {f"forgotten (FQ = {FORGOTTEN_P:g})": ax.axhline(FORGOTTEN_P, color="0.2", linewidth=0.7,
                                                             linestyle="-.", zorder=1)}
    if np.isfinite(fq_original):
        note = "; at the floor" if fq_original < floor else ""
        out[f"the original's FQ ({fq_original:.1g}{note})"] = ax.axhline(
            max(fq_original, floor), color=report.METHOD_COLORS["Original"], linewidth=0.7, linestyle=":", zorder=1)
    return out


def _mu_floor(ax: plt.Axes, floor: float, vertical: bool) -> Guides:
    """The MU95 floor (`MU_FRACTION` of the original's MU) on an MU axis, dashed."""
    if not np.isfinite(floor):
        return {}
    line = (ax.axvline if vertical else ax.axhline)(floor, color="0.4", linewidth=0.6, linestyle="--", zorder=1)
    return {f"{MU_FRACTION:.0%} of the original's MU": line}


def _guide_legend(fig: plt.Figure, guides: Guides, extra: Sequence[Line2D] = (), ncol: int = 0) -> None:
    """A legend below the figure naming its reference lines (and `extra` handles); `ncol` 0: one row."""
    handles = [Line2D([], [], color=line.get_color(), linewidth=line.get_linewidth(),
                      linestyle=line.get_linestyle(), label=label) for label, line in guides.items()] + list(extra)
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0), ncol=ncol or len(handles), fontsize=6,
                   frameon=False)


def _guides(ax: plt.Axes, metric: str, references: pd.DataFrame | None) -> Guides:
    """On a panel of `metric`: FQ's "forgotten" and original lines, MU's MU95 floor (a horizontal axis)."""
    fq_original, mu_original = _original(references)
    if metric == "FQ":
        return _fq_guides(ax, fq_original)
    if metric == "MU":
        return _mu_floor(ax, MU_FRACTION * mu_original, vertical=False)
    return {}


def fq_mu_scatter(seeds: pd.DataFrame, references: pd.DataFrame | None = None) -> plt.Figure:
    """Forget quality (log scale, floored at FQ_FLOOR) against model utility: one marker per method at its
    mean over seeds, bars spanning mean +- sd on both axes, the seeds as small dots; `references`
    (Original, Retain rows) as plain markers, with the original's FQ and the MU95 floor as lines; FQ =
    `FORGOTTEN_P` marked "forgotten". `seeds`: one row per (label, seed) with FQ and MU."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH * 1.4, 2.6))
    names = list(dict.fromkeys(seeds["label"]))
    all_names = names + (list(references["method"]) if references is not None else [])
    palette, markers = report.method_palette(all_names), report.method_markers(all_names)
    for name in names:
        part = seeds[seeds["label"] == name].dropna(subset=["FQ", "MU"])
        if part.empty:
            continue
        color = palette[name]
        ax.scatter(part["MU"], _floor(part["FQ"]), color=color, s=6, alpha=0.5, zorder=2, linewidths=0)
        mu, fq = part["MU"].mean(), part["FQ"].mean()
        mu_sd, fq_sd = part["MU"].std(ddof=1), part["FQ"].std(ddof=1)
        low = max(fq, FQ_FLOOR) - max(fq - fq_sd, FQ_FLOOR) if fq_sd == fq_sd else 0
        ax.errorbar(mu, max(fq, FQ_FLOOR), xerr=mu_sd if mu_sd == mu_sd else 0,
                    yerr=[[low], [fq_sd if fq_sd == fq_sd else 0]], color=color, linewidth=0.8, capsize=1.5,
                    zorder=3)
        ax.scatter(mu, max(fq, FQ_FLOOR), color=color, label=name, marker=markers[name],
                   s=60 if name == report.HIGHLIGHT else 25, zorder=4)
    if references is not None:
        for _, row in references.iterrows():
            ax.scatter(row["MU"], max(row["FQ"], FQ_FLOOR), color=palette[row["method"]], label=row["method"],
                       marker=markers[row["method"]], s=25, zorder=4)
    ax.axhline(FQ_FLOOR, color="0.6", linewidth=0.6, linestyle=":")
    fq_original, mu_original = _original(references)
    guides = _fq_guides(ax, fq_original, FQ_FLOOR) | _mu_floor(ax, MU_FRACTION * mu_original, vertical=True)
    for label, line in guides.items():
        line.set_label(label)
    ax.set(yscale="log", xlabel="model utility (MU)", ylabel=f"forget quality (FQ, floor {FQ_FLOOR:g})",
           title="Forgetting vs utility (mean ± sd over seeds)")
    _major_labels_only(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False, fontsize=6)
    return fig


def _published_in(published: pd.DataFrame | None, label: str) -> pd.DataFrame:
    """The rows of `published` for the method `label` names (none for a label that is no known method)."""
    if published is None:
        return pd.DataFrame(columns=["FQ", "MU fraction"])
    try:
        name = report.canonical_method(label)
    except ValueError:
        name = None
    return published[published["method"].map(report.canonical_method) == name]


def frontier(sweep: pd.DataFrame, selected: pd.DataFrame, mu_original: float, mu_fraction: float = MU_FRACTION,
             references: pd.DataFrame | None = None, published: pd.DataFrame | None = None) -> plt.Figure:
    """Every sweep point of every method (FQ vs MU / MU(original), one panel per method so that no trade-off
    hides another), the selected point circled, the MU95 floor dashed, FQ = `FORGOTTEN_P` ("forgotten") and the
    original's FQ (from `references`) as lines; `published` (method, FQ, "MU fraction":
    `calibration.published_frontier`) as a black x in the panel of its method."""
    report.set_paper_style()
    names = list(dict.fromkeys(sweep["label"]))
    cols = 5 if len(names) > 8 else min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(report.TEXT_WIDTH, 1.45 * rows + 0.4), sharex=True, sharey=True,
                             squeeze=False)
    palette = report.method_palette(names)
    chosen = selected.set_index("label")
    ok = sweep[sweep["status"] == "completed"]
    fq_original, guides = _original(references)[0], {}
    for ax, name in zip(axes.flat, names):
        part = ok[ok["label"] == name]
        for _, run in part.groupby("lr"):
            ax.plot(run["MU"] / mu_original, _floor(run["FQ"]), color=palette[name], linewidth=0.5, alpha=0.6)
        ax.scatter(part["MU"] / mu_original, _floor(part["FQ"]), color=palette[name], s=7, zorder=3, linewidths=0)
        pick = chosen.loc[name]
        ax.scatter(pick["MU"] / mu_original, max(pick["FQ"], FQ_FLOOR), s=55, facecolors="none",
                   edgecolors="black", linewidths=1.0, zorder=4)
        paper = _published_in(published, name)
        if len(paper):
            ax.scatter(paper["MU fraction"], _floor(paper["FQ"]), marker="x", color="black", s=22, linewidths=1.0,
                       zorder=5, label="published")
        floor = ax.axvline(mu_fraction, color="0.4", linewidth=0.6, linestyle="--", zorder=1)
        guides = _fq_guides(ax, fq_original, FQ_FLOOR) | {f"{mu_fraction:.0%} of the original's MU": floor}
        ax.set_title(name, fontsize=7, pad=2)
        ax.set(yscale="log")
        ax.tick_params(labelsize=6)
        _major_labels_only(ax)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.supxlabel("model utility relative to the original's (MU / MU(original))", fontsize=7)
    fig.supylabel(f"forget quality (FQ, floor {FQ_FLOOR:g})", fontsize=7)
    fig.suptitle("Every sweep point (lr x epoch, lines join epochs of one lr); circled: the reported point",
                 fontsize=8)
    fig.tight_layout()
    extra = [] if published is None else [Line2D([], [], color="black", marker="x", linestyle="none", markersize=4,
                                                 label=PUBLISHED)]
    _guide_legend(fig, guides, extra, ncol=2)
    return fig


def metric_lines(df: pd.DataFrame, x: str, metrics: list[str], hue: str | None = None,
                 title: str = "", logx: bool = False, log_metrics: tuple[str, ...] = ("FQ",),
                 references: pd.DataFrame | None = None) -> plt.Figure:
    """One panel per metric, `x` on the horizontal axis (sweeps and per-epoch curves); several rows per x
    (seeds) are drawn as their mean with bars of +- one standard deviation. The FQ panel marks FQ =
    `FORGOTTEN_P` ("forgotten"); with `references` (Original row) the original's FQ and the MU95 floor too."""
    report.set_paper_style()
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH * len(metrics) / 1.6, 2.3), squeeze=False)
    palette = report.method_palette(df[hue].unique()) if hue else None
    categories = None if pd.api.types.is_numeric_dtype(df[x]) else list(dict.fromkeys(df[x]))
    if categories:  # labels such as N = 1, 2, ..., "all": evenly spaced, in table order
        df = df.assign(**{x: df[x].map({c: i for i, c in enumerate(categories)})})
    guides: Guides = {}
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(df, x=x, y=metric, hue=hue, palette=palette, marker="o", ax=ax, legend=ax is axes[0][-1],
                     errorbar="sd", err_style="bars", err_kws={"capsize": 2, "linewidth": 0.8})
        ax.set(title=metric, ylabel="", yscale="log" if metric in log_metrics else "linear",
               xscale="log" if logx else "linear")
        if categories:
            ax.set_xticks(range(len(categories)), categories)
        guides |= _guides(ax, metric, references)
        _major_labels_only(ax)
    if title:
        fig.suptitle(title, y=1.04)
    if hue and axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1), frameon=False)
    fig.tight_layout()
    _guide_legend(fig, guides)
    return fig


def bars(long: pd.DataFrame, title: str = "", references: pd.DataFrame | None = None) -> plt.Figure:
    """One panel per metric, one bar per method (long frame: method, metric, value; several rows per
    method, e.g. seeds: the mean with a +- sd bar and the rows as dots). The FQ panel marks FQ = `FORGOTTEN_P`
    ("forgotten"); with `references` (Original row) the original's FQ and the MU95 floor too."""
    report.set_paper_style()
    metrics = list(dict.fromkeys(long["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH * len(metrics) / 1.7, 2.4), squeeze=False)
    palette = report.method_palette(long["method"].unique())
    guides: Guides = {}
    for ax, metric in zip(axes[0], metrics):
        part = long[long["metric"] == metric]
        sns.barplot(part, x="method", y="value", hue="method", palette=palette, ax=ax, legend=False,
                    errorbar="sd", capsize=0.2, err_kws={"linewidth": 0.8})
        with fixed_jitter():
            sns.stripplot(part, x="method", y="value", color="black", size=2, ax=ax, legend=False)
        ax.set(title=metric, xlabel="", ylabel="", yscale="log" if metric == "FQ" else "linear")
        guides |= _guides(ax, metric, references)
        _major_labels_only(ax)
        ax.tick_params(axis="x", rotation=60, labelsize=6)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    if title:
        fig.suptitle(title, y=1.04)
    fig.tight_layout()
    _guide_legend(fig, guides)
    return fig


def timing(df: pd.DataFrame) -> plt.Figure:
    """Loss time against K, one colour per vocabulary size V; the full-vocabulary loss as a dashed level."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.4))
    sizes = sorted(df["V"].unique())
    colors = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    for v in sizes:
        part = df[df["V"] == v]
        topk = part[part["loss"] != "full-vocabulary"]
        ax.plot(topk["K"], topk["ms"], marker="o", color=colors[v], label=f"top-K, V={v}")
        full = part[part["loss"] == "full-vocabulary"]["ms"]
        ax.axhline(float(full.iloc[0]), linestyle="--", linewidth=0.8, color=colors[v], label=f"full, V={v}")
    ax.set(xscale="log", yscale="log", xlabel="top-K size K", ylabel="forward+backward (ms)",
           title="Local entropy: O(TK) vs O(TV)")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1), frameon=False)
    return fig


def strength_curves(curves: pd.DataFrame, title: str = "") -> plt.Figure:
    """Forget Strength vs Retain Strength per epoch (epoch 0 = the initial model), one panel per loss, one
    line per mask: the mean over seeds with +- sd bars in both directions (curves: loss, mask, seed, epoch,
    FS, RS; completed and initial rows)."""
    report.set_paper_style()
    losses = list(dict.fromkeys(curves["loss"]))
    fig, axes = plt.subplots(1, len(losses), figsize=(2.3 * len(losses) + 1.5, 2.6), squeeze=False, sharey=True)
    palette = report.method_palette(curves["mask"].unique())
    for ax, loss in zip(axes[0], losses):
        part = curves[(curves["loss"] == loss) & curves["status"].isin(["completed", "initial"])]
        for mask, m in part.groupby("mask", sort=False):
            agg = m.groupby("epoch")[["FS", "RS"]].agg(["mean", "std"]).fillna(0.0)
            ax.errorbar(agg[("FS", "mean")], agg[("RS", "mean")], xerr=agg[("FS", "std")], yerr=agg[("RS", "std")],
                        marker="o", markersize=3, linewidth=1, capsize=2, elinewidth=0.7, color=palette[mask],
                        label=f"{mask} ({m['seed'].nunique()} seed{'s' if m['seed'].nunique() > 1 else ''})")
        ax.set(title=loss, xlabel="Forget Strength (1 - forget ES)", xlim=(-0.03, 1.03), ylim=(-0.03, 1.03),
               xticks=[0, 0.25, 0.5, 0.75, 1], yticks=[0, 0.25, 0.5, 0.75, 1])
    axes[0][0].set_ylabel("Retain Strength (retain ES)")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False, fontsize=6)
    if title:
        fig.suptitle(title, y=1.04)
    fig.tight_layout()
    return fig
