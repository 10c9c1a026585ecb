"""Figures of the notebooks, in the paper style of `paperlib.report` (each returns a matplotlib figure)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from paperlib import report

WIDTH = 3.4  # inches: one column of a two-column paper


def training_curves(steps: pd.DataFrame) -> plt.Figure:
    """Fine-tuning loss per step, one line per stage (base, original, retain)."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.3))
    sns.lineplot(steps, x="step", y="loss", hue="stage", ax=ax, linewidth=1)
    ax.set(yscale="log", xlabel="optimizer step", ylabel="answer NLL", title="Fine-tuning the tiny models")
    return fig


def truth_ratio_hist(tr: pd.DataFrame) -> plt.Figure:
    """Forget-set truth ratios of the original vs the retain model (what forget quality compares)."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH, 2.3))
    palette = report.method_palette(tr["model"].unique())
    sns.histplot(tr, x="truth ratio", hue="model", palette=palette, bins=30, log_scale=True, element="step",
                 ax=ax)
    ax.set(title="Forget-set truth ratio", xlabel="truth ratio P(perturbed) / P(paraphrased)")
    return fig


FQ_FLOOR = 1e-20  # forget qualities below this are drawn on the floor line (GA reaches 1e-59)


def fq_mu_scatter(table: pd.DataFrame) -> plt.Figure:
    """Forget quality (log scale, floored at FQ_FLOOR) against model utility, one marker per method."""
    report.set_paper_style()
    fig, ax = plt.subplots(figsize=(WIDTH * 1.4, 2.6))
    names = list(table["method"])
    palette, markers = report.method_palette(names), report.method_markers(names)
    for _, row in table.iterrows():
        ax.scatter(row["MU"], max(row["FQ"], FQ_FLOOR), color=palette[row["method"]], label=row["method"],
                   marker=markers[row["method"]], s=60 if row["method"] == "PALU" else 25, zorder=3)
    ax.axhline(FQ_FLOOR, color="0.6", linewidth=0.6, linestyle=":")
    ax.set(yscale="log", xlabel="model utility (MU)", ylabel=f"forget quality (FQ, floor {FQ_FLOOR:g})",
           title="Forgetting vs utility")
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1), frameon=False, fontsize=6)
    return fig


def metric_lines(df: pd.DataFrame, x: str, metrics: list[str], hue: str | None = None,
                 title: str = "", logx: bool = False, log_metrics: tuple[str, ...] = ("FQ",)) -> plt.Figure:
    """One panel per metric, `x` on the horizontal axis (sweeps and per-epoch curves)."""
    report.set_paper_style()
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH * len(metrics) / 1.6, 2.3), squeeze=False)
    palette = report.method_palette(df[hue].unique()) if hue else None
    categories = None if pd.api.types.is_numeric_dtype(df[x]) else list(dict.fromkeys(df[x]))
    if categories:  # labels such as N = 1, 2, ..., "all": evenly spaced, in table order
        df = df.assign(**{x: df[x].map({c: i for i, c in enumerate(categories)})})
    for ax, metric in zip(axes[0], metrics):
        sns.lineplot(df, x=x, y=metric, hue=hue, palette=palette, marker="o", ax=ax, legend=ax is axes[0][-1])
        ax.set(title=metric, ylabel="", yscale="log" if metric in log_metrics else "linear",
               xscale="log" if logx else "linear")
        if categories:
            ax.set_xticks(range(len(categories)), categories)
    if title:
        fig.suptitle(title, y=1.04)
    if hue and axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1), frameon=False)
    return fig


def bars(long: pd.DataFrame, title: str = "") -> plt.Figure:
    """One panel per metric, one bar per method (long frame: method, metric, value)."""
    report.set_paper_style()
    metrics = list(dict.fromkeys(long["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH * len(metrics) / 1.7, 2.4), squeeze=False)
    palette = report.method_palette(long["method"].unique())
    for ax, metric in zip(axes[0], metrics):
        part = long[long["metric"] == metric]
        sns.barplot(part, x="method", y="value", hue="method", palette=palette, ax=ax, legend=False)
        ax.set(title=metric, xlabel="", ylabel="", yscale="log" if metric == "FQ" else "linear")
        ax.tick_params(axis="x", rotation=60, labelsize=6)
    if title:
        fig.suptitle(title, y=1.04)
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
