"""Self-distillation targets against the retain model (the Unilogit paper's Figure 5 analysis).

Unilogit and UnDIAL both distil the model towards a soft target on the forget answer tokens:

- Unilogit: the CURRENT model's logits with the gold logit set so that the gold token gets probability 1/V
  (`losses.unilogit_target`); the target moves as the model unlearns.
- UnDIAL: the frozen ORIGINAL model's logits with the gold logit lowered by beta (`losses.undial_target`);
  the target is fixed for the whole run.

Figure 5 asks which target is closer to what the retain model (never trained on the forget set) predicts:
(a) the average KL between a method's soft targets and the retain model's output distribution on the forget
set's answer tokens, (b) that KL over the epochs, (c) the KL of each final model's own outputs to the retain
model's, with the starting (original) model's as the baseline. Every KL here is KL(p_retain || q), q the
target (or the model's output distribution), per answer position over the full vocabulary, averaged over
every answer token of the forget set (the token mean the losses use).

The first section holds the pure tensor functions (unit-tested by hand on a 3-token vocabulary); the second
the passes over the forget set; the third the notebook's runs (`Run`s of `paperlib.studies.palu`, one
selection rule for all, `paperlib.methods.tuning`), its tables and figures, and the dry-run `plan`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from paperlib import report
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import executors, unlearn
from paperlib.engine.config import Profile
from paperlib.engine.constants import IGNORE
from paperlib.engine.progress import bar as progress_bar
from paperlib.methods import losses, tuning
from paperlib.report import SPREAD
from paperlib.studies import palu as experiments

if TYPE_CHECKING:  # matplotlib loads with the first figure
    import matplotlib.pyplot as plt

TARGET_METHODS = ("Unilogit", "UnDIAL")  # the methods whose forget term distils towards a soft target
OTHER_METHODS = ("GA", "NPO")  # no soft target: only their final models' KL (c) and the sweep
UNDIAL_BETAS = (3.0, 10.0, 30.0)  # the Unilogit paper's UnDIAL betas (10 = UnDIAL's default)
FORGET_SCORE, RETAIN_SCORE = "forget_Q_A_ROUGE", "retain_Q_A_ROUGE"  # the scatter's axes (ROUGE-L recall)
TARGET_KL, OUTPUT_KL = "target KL", "output KL"  # the table columns of (a) / (b) and of (c)
BASELINE = "Original"
KL_ANALYSIS = "kl-analysis"  # cache kind of `figure5` (its code: paperlib.engine.cache.CODE)
KL_FILE = "figure5.json"
POINT_COLUMNS = ["label", "method", "seed", "epoch", "final", TARGET_KL, OUTPUT_KL]


# ----------------------------------------------------------------------------------------- tensors
def soft_target(method: str, logits: torch.Tensor, labels: torch.Tensor, beta: float = 10.0) -> torch.Tensor:
    """The soft target probabilities [..., V] that `method` distils towards at shifted `labels`.

    `logits`: the current model's (Unilogit) or the frozen original model's (UnDIAL). Reuses the losses'
    own target functions (`losses.unilogit_target`, `losses.undial_target`), so the analysis sees exactly
    what training sees; `beta` is UnDIAL's only."""
    if method == "Unilogit":
        return losses.unilogit_target(logits, labels)
    if method == "UnDIAL":
        return losses.undial_target(logits, labels, beta)
    raise ValueError(f"method {method!r} has no soft target; allowed: {', '.join(TARGET_METHODS)}")


def kl_sum(retain_logits: torch.Tensor, q_log: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """(sum over answer positions of KL(p_retain || q), number of answer positions): the parts of a token mean
    that batches add up. `q_log`: log-probabilities or logits of q (log_softmax leaves either unchanged)."""
    answer = labels != IGNORE
    count = int(answer.sum())
    return float(losses.kl_div_positions(retain_logits, q_log, answer)) * count, count


def target_kl(retain_logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over answer positions of KL(p_retain || target), `target` as probabilities (0 where none).
    Probabilities below the smallest normal float are read as that (a log of 0 would make the KL infinite)."""
    total, count = kl_sum(retain_logits, target.clamp_min(torch.finfo(target.dtype).tiny).log(), labels)
    return total / max(count, 1)


def output_kl(retain_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over answer positions of KL(p_retain || p_model): how far a model's outputs are from the retain
    model's on those tokens."""
    total, count = kl_sum(retain_logits, logits, labels)
    return total / max(count, 1)


# ----------------------------------------------------------------------------------------- forget-set passes
def forget_batches(profile: Profile, forget: str, batch_size: int = 32) -> list[dict[str, torch.Tensor]]:
    """The forget split, encoded as in training (prompt labels -100, EOS appended) and collated."""
    from paperlib.benchmarks.tofu import data as tofu
    from paperlib.engine import encoding
    from paperlib.engine.models import load_tokenizer

    tok = load_tokenizer(pipeline.tokenizer_path(profile))
    ds = tofu.load_split(pipeline.benchmark_source(profile), forget)
    rows = pipeline.encode_rows(tok, profile.model.template, list(zip(ds["question"], ds["answer"])),
                                profile.eval.max_length)
    return [encoding.collate(rows[i:i + batch_size], tok.pad_token_id) for i in range(0, len(rows), batch_size)]


@torch.no_grad()
def _shifted_logits(model: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    device = next(model.parameters()).device
    out = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device))
    z, y = losses.shift(out.logits.float(), batch["labels"].to(device))
    return z, y


def _load(path: str) -> torch.nn.Module:
    from paperlib.engine.models import load_model

    return load_model(path).eval()


def _log(p: torch.Tensor) -> torch.Tensor:
    return p.clamp_min(torch.finfo(p.dtype).tiny).log()


def _passes(profile: Profile, forget: str, model: torch.nn.Module | None
            ) -> Iterator[tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per forget batch: (logits of `model` or None, retain logits, original logits, labels)."""
    retain, original = _load(pipeline.retain_model(profile, forget)), _load(pipeline.original_model(profile))
    for batch in forget_batches(profile, forget):
        z_ret, y = _shifted_logits(retain, batch)
        z_orig, _ = _shifted_logits(original, batch)
        yield (None if model is None else _shifted_logits(model, batch)[0]), z_ret, z_orig, y


def _mean(parts: list[tuple[float, int]]) -> float:
    return sum(s for s, _ in parts) / max(1, sum(c for _, c in parts))


def model_kls(profile: Profile, forget: str, path: str | None = None) -> dict[str, float]:
    """{OUTPUT_KL: KL(p_retain || p_model), TARGET_KL: KL(p_retain || Unilogit target of the model)}, token
    means over the forget set's answer tokens, of the model at `path` (None: the original model). The models
    are read one at a time (the paper profile's 7B models do not fit together)."""
    model = None if path is None else _load(path)
    out, target = [], []
    for z, z_ret, z_orig, y in _passes(profile, forget, model):
        z = z_orig if z is None else z
        out.append(kl_sum(z_ret, z, y))
        target.append(kl_sum(z_ret, _log(soft_target("Unilogit", z, y)), y))
    return {OUTPUT_KL: _mean(out), TARGET_KL: _mean(target)}


def undial_kls(profile: Profile, forget: str, betas: tuple[float, ...] = UNDIAL_BETAS) -> dict[float, float]:
    """{beta: KL(p_retain || UnDIAL target)}: the original model's logits with the gold logit lowered by beta
    (fixed for the whole run), token mean over the forget set's answer tokens."""
    parts: dict[float, list] = {b: [] for b in betas}
    for _, z_ret, z_orig, y in _passes(profile, forget, None):
        for b in betas:
            parts[b].append(kl_sum(z_ret, _log(soft_target("UnDIAL", z_orig, y, b)), y))
    return {b: _mean(p) for b, p in parts.items()}


# ----------------------------------------------------------------------------------------- the notebook's runs
def undial_label(beta: float) -> str:
    return f"UnDIAL β={beta:g}"


def runs(profile: Profile) -> list[experiments.Run]:
    """GA, NPO, Unilogit and UnDIAL with each beta of UNDIAL_BETAS (beta 10, UnDIAL's default, is notebook
    01's run: the same settings, served from the cache)."""
    default = unlearn.resolve(profile, "UnDIAL")[0].hp.beta
    undial = [experiments.Run(undial_label(b), "UnDIAL", {} if b == default else {"beta": b}) for b in UNDIAL_BETAS]
    return [experiments.Run(m, m) for m in OTHER_METHODS] + [experiments.Run("Unilogit", "Unilogit"), *undial]


def checkpoint(profile: Profile, run: experiments.Run, forget: str, lr: float, seed: int, epoch: int) -> str:
    """The model after `epoch` epochs of the tuning schedule at `lr` and `seed` (TrainConfig.stop_epoch: the
    same steps as the sweep's run up to that epoch), saved; evaluated once, at that epoch."""
    return str(unlearn.unlearned_model(_checkpoint_request(profile, run, forget, lr, seed, epoch).run()))


def _checkpoint_request(profile: Profile, run: experiments.Run, forget: str, lr: float, seed: int, epoch: int
                        ) -> executors.Request:
    overrides = {**run.overrides, **tuning.run_overrides(profile, run.method, lr, seed, epoch)}
    return executors.Request(profile, run.method, forget, overrides, eval_every_epoch=False, save_model=True)


def checkpoints(profile: Profile, run_list: list[experiments.Run], tuned: experiments.Tuned, forget: str
                ) -> pd.DataFrame:
    """Saved models of every run at its selected lr, for every seed: each epoch 1..selected of Unilogit (its
    target moves with the model: panel b), the selected epoch of the others (panel c). Columns label, method,
    seed, epoch, final, path; a diverged run saves no weights and has no row."""
    chosen = tuned.selected.set_index("label")
    todo = []
    for run in run_list:
        lr, last = float(chosen.loc[run.label, "lr"]), int(chosen.loc[run.label, "epoch"])
        todo += [(run, seed, lr, epoch, last) for seed in tuning.grid(profile).seeds
                 for epoch in (range(1, last + 1) if run.method == "Unilogit" else (last,))]
    folders = executors.run_all([_checkpoint_request(profile, run, forget, lr, seed, epoch)
                                 for run, seed, lr, epoch, _ in todo])
    rows = []
    for (run, seed, _lr, epoch, last), folder in zip(todo, folders):
        try:
            path = str(unlearn.unlearned_model(folder))
        except FileNotFoundError:  # diverged: no weights
            continue
        rows.append({"label": run.label, "method": run.method, "seed": seed, "epoch": epoch,
                     "final": epoch == last, "path": path})
    return pd.DataFrame(rows)


@dataclass
class Figure5:
    """The three panels' numbers: per-checkpoint KLs (label, seed, epoch, final, TARGET_KL, OUTPUT_KL; epoch 0
    = the original model), the original model's KLs, and UnDIAL's fixed-target KL per beta."""

    points: pd.DataFrame
    original: dict[str, float]
    undial: dict[float, float]

    def target_table(self) -> pd.DataFrame:
        """(a) per method: the KL between its soft targets and the retain model's outputs, averaged over the
        targets it trains on (Unilogit: the checkpoints 0..selected epoch of each seed, then mean ± sd over
        seeds; UnDIAL: its one fixed target per beta)."""
        rows = []
        uni = self.points[self.points["label"] == "Unilogit"]
        if len(uni):
            per_seed = [np.mean([self.original[TARGET_KL], *part.sort_values("epoch")[TARGET_KL]])
                        for _, part in uni.groupby("seed")]
            mean, sd = tuning.mean_std(pd.Series(per_seed))
            rows.append({"method": "Unilogit", "target": "current model, gold prob. 1/V",
                         "epochs": f"0-{int(uni['epoch'].max())}", "seeds": len(per_seed), TARGET_KL: mean,
                         f"{TARGET_KL}{SPREAD}": sd})
        for b, kl in self.undial.items():
            rows.append({"method": undial_label(b), "target": f"original model, gold logit - {b:g}",
                         "epochs": "fixed", "seeds": 1, TARGET_KL: kl, f"{TARGET_KL}{SPREAD}": 0.0})
        return pd.DataFrame(rows)

    def epoch_table(self) -> pd.DataFrame:
        """(b) per method and epoch: the target KL (mean ± sd over seeds; UnDIAL's constant, epoch 0 = start)."""
        rows = []
        uni = self.points[self.points["label"] == "Unilogit"]
        last = int(uni["epoch"].max()) if len(uni) else 0
        rows.append({"method": "Unilogit", "epoch": 0, TARGET_KL: self.original[TARGET_KL],
                     f"{TARGET_KL}{SPREAD}": 0.0})
        for epoch, part in uni.groupby("epoch"):
            mean, sd = tuning.mean_std(part[TARGET_KL])
            rows.append({"method": "Unilogit", "epoch": int(epoch), TARGET_KL: mean, f"{TARGET_KL}{SPREAD}": sd})
        for b, kl in self.undial.items():
            rows += [{"method": undial_label(b), "epoch": e, TARGET_KL: kl, f"{TARGET_KL}{SPREAD}": 0.0}
                     for e in range(last + 1)]
        return pd.DataFrame(rows)

    def output_table(self) -> pd.DataFrame:
        """(c) per method: KL of its final (selected-epoch) model's outputs to the retain model's, mean ± sd
        over seeds; the original model (where every run starts) first, as the baseline."""
        rows = [{"method": BASELINE, "seeds": 1, OUTPUT_KL: self.original[OUTPUT_KL], f"{OUTPUT_KL}{SPREAD}": 0.0}]
        final = self.points[self.points["final"]]
        for label, part in final.groupby("label", sort=False):
            mean, sd = tuning.mean_std(part[OUTPUT_KL])
            rows.append({"method": label, "seeds": len(part), OUTPUT_KL: mean, f"{OUTPUT_KL}{SPREAD}": sd})
        return pd.DataFrame(rows)


def compute_figure5(profile: Profile, forget: str, ckpts: pd.DataFrame) -> Figure5:
    """KL(p_retain || .) of every checkpoint's outputs and Unilogit target, of the original model's, and of
    UnDIAL's fixed targets, on the forget set's answer tokens (computed here; `figure5` caches it)."""
    rows = []
    for r in progress_bar(ckpts.to_dict("records"), "KL to the retain model"):
        rows.append({k: r[k] for k in ("label", "method", "seed", "epoch", "final")} | model_kls(profile, forget,
                                                                                               r["path"]))
    return Figure5(pd.DataFrame(rows, columns=POINT_COLUMNS), model_kls(profile, forget), undial_kls(profile, forget))


def kl_config(profile: Profile, forget: str, ckpts: pd.DataFrame) -> dict:
    """The cache key's config of `figure5`: every input of the KL analysis (the benchmark, tokenizer and template
    settings, the retain, original and checkpoint models by content, UnDIAL's betas)."""
    identity = pipeline.stored_model_identity
    rows = [{k: r[k] for k in ("label", "method", "seed", "epoch", "final")} | {"model": identity(r["path"])}
            for r in ckpts.to_dict("records")]
    return {"forget": forget, "benchmark": profile.benchmark, "model": profile.model,
            "max_length": profile.eval.max_length, "betas": list(UNDIAL_BETAS),
            "retain": pipeline.stored_model_identity(pipeline.retain_model(profile, forget)),
            "original": pipeline.stored_model_identity(pipeline.original_model(profile)), "checkpoints": rows}


def _write_figure5(fig5: Figure5, out: Path) -> None:
    points = [{c: r[c] for c in POINT_COLUMNS} for r in fig5.points.to_dict("records")]
    blob = {"points": points, "original": fig5.original, "undial": [[b, kl] for b, kl in fig5.undial.items()]}
    (out / KL_FILE).write_text(json.dumps(blob, indent=1))  # floats as repr: read back bit for bit


def read_figure5(folder: Path) -> Figure5:
    """The `Figure5` stored in a cache folder of kind KL_ANALYSIS."""
    blob = json.loads((Path(folder) / KL_FILE).read_text())
    return Figure5(pd.DataFrame(blob["points"], columns=POINT_COLUMNS), blob["original"],
                   {float(b): kl for b, kl in blob["undial"]})


def figure5(profile: Profile, forget: str, ckpts: pd.DataFrame, force: bool = False) -> Figure5:
    """`compute_figure5`, cached (kind KL_ANALYSIS, keyed by `kl_config`): a warm notebook reads it back."""
    from paperlib.engine.cache import cached_run

    folder = cached_run(KL_ANALYSIS, kl_config(profile, forget, ckpts),
                        lambda out: _write_figure5(compute_figure5(profile, forget, ckpts), out), force=force)
    return read_figure5(folder)


def sweep_table(tuned: experiments.Tuned) -> pd.DataFrame:
    """`experiments.sweep_table` (every grid point, the selected one marked) with the scatter's two scores."""
    table = experiments.sweep_table(tuned)
    for col in (FORGET_SCORE, RETAIN_SCORE):
        table.insert(4, col, tuned.sweep[col] if col in tuned.sweep else np.nan)
    return table


def reference_summaries(profile: Profile, forget: str) -> dict[str, dict]:
    """{"Original": TOFU summary, "Retain": TOFU summary}: the scatter's fixed markers."""
    return {name: experiments.evaluation(profile, path, forget)[1]
            for name, path in experiments.reference_models(profile, forget).items()}


# ----------------------------------------------------------------------------------------- figures
def _ok(sweep: pd.DataFrame) -> pd.DataFrame:
    return sweep[(sweep["status"] == experiments.STATUS_OK) & sweep[FORGET_SCORE].notna()]


def forget_retain_scatter(sweep: pd.DataFrame, selected: pd.DataFrame, references: dict[str, dict]) -> plt.Figure:
    """The Unilogit paper's Figures 2-3 shape, one panel per method: every sweep point (lr x epoch, seed 0)
    as forget score (ROUGE-L recall on the forget set, lower = more forgotten) against retain score (ROUGE-L
    recall on the retain set, higher = kept), epochs of one lr joined by a line, the reported point circled;
    `references` {"Original": summary, "Retain": summary} as fixed markers in every panel."""
    import matplotlib.pyplot as plt

    report.set_paper_style()
    names = list(dict.fromkeys(sweep["label"]))
    cols = min(3, len(names))
    nrows = -(-len(names) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(report.TEXT_WIDTH, 1.9 * nrows + 0.5), sharex=True,
                             sharey=True, squeeze=False)
    palette = report.method_palette([*names, *references])
    ok, chosen = _ok(sweep), selected.set_index("label")
    lrs = sorted(ok["lr"].unique())
    alphas = dict(zip(lrs, np.linspace(0.35, 1.0, len(lrs))))
    for ax, name in zip(axes.flat, names):
        part = ok[ok["label"] == name]
        for lr, run in part.groupby("lr"):
            run = run.sort_values("epoch")
            ax.plot(run[FORGET_SCORE], run[RETAIN_SCORE], color=palette[name], alpha=alphas[lr], linewidth=0.7,
                    marker="o", markersize=2.5, label=f"lr {lr:g}")
        pick = part[(part["lr"] == chosen.loc[name, "lr"]) & (part["epoch"] == chosen.loc[name, "epoch"])]
        ax.scatter(pick[FORGET_SCORE], pick[RETAIN_SCORE], s=60, facecolors="none", edgecolors="black",
                   linewidths=1.0, zorder=4)
        for ref, summary in references.items():
            ax.scatter(summary[FORGET_SCORE], summary[RETAIN_SCORE], marker="s" if ref == "Retain" else "D", s=18,
                       color=palette[ref], zorder=5, label=ref)
        ax.set_title(name, fontsize=7, pad=2)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=5, frameon=False, loc="lower right")
    fig.supxlabel("forget score: ROUGE-L recall on the forget set (lower = more forgotten)", fontsize=7)
    fig.supylabel("retain score: ROUGE-L recall on the retain set", fontsize=7)
    fig.suptitle("Every sweep point (lr x epoch, seed 0; lines join the epochs of one lr); circled: the reported "
                 "point", fontsize=8)
    fig.tight_layout()
    return fig


def figure5_plot(fig5: Figure5) -> plt.Figure:
    """(a) soft-target KL per method, (b) its progression over the epochs, (c) the final models' output KL with
    the original model's as a dashed baseline; bars and bands: ± sd over seeds."""
    import matplotlib.pyplot as plt

    report.set_paper_style()
    a, b, c = fig5.target_table(), fig5.epoch_table(), fig5.output_table()
    palette = report.method_palette([*c["method"], *a["method"]])
    fig, axes = plt.subplots(1, 3, figsize=(report.TEXT_WIDTH, 2.7))
    for ax, table, col, title, ylabel in (
            (axes[0], a, TARGET_KL, "(a) soft target vs retain", "KL(retain ‖ target), nats / token"),
            (axes[2], c[c["method"] != BASELINE], OUTPUT_KL, "(c) final model vs retain", "KL(retain ‖ model)")):
        x = np.arange(len(table))
        ax.bar(x, table[col], yerr=table[f"{col}{SPREAD}"], color=[palette[m] for m in table["method"]],
               capsize=2, error_kw={"linewidth": 0.8})
        ax.set_xticks(x, table["method"], rotation=35, ha="right", fontsize=6)
        ax.set_title(title, fontsize=7)
        ax.set_ylabel(ylabel, fontsize=6)
        ax.tick_params(axis="y", labelsize=6)
    axes[2].axhline(fig5.original[OUTPUT_KL], color=palette[BASELINE], linestyle="--", linewidth=0.8)
    axes[2].set_title("(c) final model vs retain\n(dashed: the original model, the start)", fontsize=7)
    ax = axes[1]
    for method, part in b.groupby("method", sort=False):
        mean, sd = part[TARGET_KL].to_numpy(), part[f"{TARGET_KL}{SPREAD}"].to_numpy()
        style = "-" if method == "Unilogit" else "--"
        ax.plot(part["epoch"], mean, style, color=palette[method], marker="o" if method == "Unilogit" else None,
                markersize=3, linewidth=1.0, label=method)
        ax.fill_between(part["epoch"], mean - sd, mean + sd, color=palette[method], alpha=0.2, linewidth=0)
    ax.set_title("(b) soft target over the epochs", fontsize=7)
    ax.set_xlabel("epoch (0 = original model)", fontsize=6)
    ax.set_ylabel("KL(retain ‖ target)", fontsize=6)
    ax.tick_params(labelsize=6)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=5, frameon=False)
    fig.tight_layout(w_pad=1.5)
    return fig


# ----------------------------------------------------------------------------------------- dry run
def plan(profile: Profile) -> list[dict]:
    """Runs notebook 10 adds to notebook 01's (the dry run): the UnDIAL betas other than the default (sweep
    and seeds), then the saved checkpoints at each selected point (at most the grid's last epoch; every epoch
    for Unilogit), each evaluated once."""
    planned = [p for r in runs(profile) if r.overrides for p in experiments._planned(profile, r, False)]
    size = experiments._forget_size(profile)
    for r in runs(profile):
        m, g = unlearn.resolve(profile, r.method, r.overrides)[0], tuning.grid(profile, r.method)
        common = {"model": pipeline.original_model(profile), "method": r.method, "n_examples": size,
                  "passes": 2 if m.needs().retain else 1, "reference": bool(m.needs().ref), "evaluations": 1}
        for seed in g.seeds:
            for epoch in range(1, g.epochs + 1) if r.method == "Unilogit" else (g.epochs,):
                planned.append({**common, "epochs": epoch, "hyperparameters": {
                    **r.overrides, "lr": "selected", "seed": seed, "stop_epoch": epoch, "save_model": True}})
    return planned
