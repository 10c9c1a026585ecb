"""What the notebooks compute, as functions that return DataFrames (the notebooks only call these,
plot the frames with `paperlib.plots` and save them with `paperlib.report`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from paperlib import methods, metrics, pipeline, unlearn
from paperlib.config import Profile
from paperlib.data import mini_tofu, tofu
from paperlib.models import load_tokenizer

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


def reference_models(profile: Profile, forget: str) -> dict[str, str]:
    """{"Original": path, "Retain": path}: the two models every table compares against."""
    return {"Original": pipeline.original_model(profile), "Retain": pipeline.retain_model(profile, forget)}


def truth_ratios(profile: Profile, forget: str) -> pd.DataFrame:
    """Per-sample forget-set truth ratios of the original and the retain model (long format)."""
    frames = []
    for model, path in reference_models(profile, forget).items():
        log, _ = pipeline.evaluation(profile, path, forget)
        tr = [v["score"] for v in log["forget_truth_ratio"]["value_by_index"].values()]
        frames.append(pd.DataFrame({"model": model, "truth ratio": tr}))
    return pd.concat(frames, ignore_index=True)


def reference_rows(profile: Profile, forget: str) -> pd.DataFrame:
    """PALU table columns (FQ, MU, Fluency, EM, F-TR, Ra-TR, R-TR, Rw-TR) of the original and retain models."""
    rows = []
    for method, path in reference_models(profile, forget).items():
        _, summary = pipeline.evaluation(profile, path, forget)
        rows.append({"method": method, **metrics.palu_columns(summary)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- unlearning runs
MAIN_METHODS = ("GA", "GD", "NPO", "SimNPO", "DPO", "WGA", "TPO", "PDU", "UnDIAL", "Unilogit", "RMU", "CE-U", "PALU")
PAPER_K = (1, 1000, 5000, 10000)  # the paper's top-K sizes, of Llama-2's 32,000-token vocabulary
PAPER_V = 32000
TARGETS = ("global_mean", "local_mean", "detached_mean", "zero", "topk_min")
PREFIX_BUDGETS = (1, 2, 3, 4, 5, 10, 0)  # 0 = every sensitive token ("all")


@dataclass(frozen=True)
class Run:
    """One unlearning run of a notebook: a label, the method and its settings beside the profile's."""

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


def run_paths(profile: Profile, runs: list[Run], forget: str, eval_every_epoch: bool = False) -> dict[str, Path]:
    """Run (or load from the cache) every run; {label: run folder}."""
    return {r.label: unlearn.unlearn(profile, r.method, forget, r.overrides, eval_every_epoch=eval_every_epoch,
                                     save_model=False, progress=False)
            for r in tqdm(runs, desc="runs")}


def results_table(profile: Profile, runs: list[Run], forget: str, eval_every_epoch: bool = False,
                  with_references: bool = False) -> pd.DataFrame:
    """PALU-table columns of every run (plus the original and retain rows), status and training time."""
    rows = reference_rows(profile, forget).to_dict("records") if with_references else []
    for run, path in zip(runs, run_paths(profile, runs, forget, eval_every_epoch).values()):
        info = unlearn.read_run(path)
        status = info["status"]
        row = {"method": run.label, **metrics.palu_columns(info["summary"] or {})}
        row["status"] = status["status"] if status["status"] == "completed" else status["message"]
        row["train s"] = status["timing"]["train_seconds"]
        rows.append(row)
    return pd.DataFrame(rows)


def epoch_curves(profile: Profile, runs: list[Run], forget: str) -> pd.DataFrame:
    """FQ, MU and F-TR after every epoch (epoch 0 = the original model), with cumulative training time."""
    _, original = pipeline.evaluation(profile, pipeline.original_model(profile), forget)
    rows = []
    for run, path in zip(runs, run_paths(profile, runs, forget, eval_every_epoch=True).values()):
        info = unlearn.read_run(path)
        per_step = info["status"]["timing"]["train_seconds"] / max(1, len(info["steps"]))
        steps_per_epoch = len(info["steps"]) / max(1, len(info["epochs"]))
        rows.append({"method": run.label, "epoch": 0, "train s": 0.0, **metrics.palu_columns(original)})
        for e in info["epochs"]:
            rows.append({"method": run.label, "epoch": e["epoch"], "train s": per_step * steps_per_epoch * e["epoch"],
                         **metrics.palu_columns(e)})
    return pd.DataFrame(rows)


def privacy_table(profile: Profile, runs: list[Run], forget: str) -> pd.DataFrame:
    """MIA AUCs (LOSS, ZLib, MinK, MinK++) and privleak of the original, retain and every run."""
    names = ("mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus", "privleak", "forget_quality")
    models = reference_models(profile, forget)
    summaries = {k: pipeline.evaluation(profile, path, forget)[1] for k, path in models.items()}
    for label, path in run_paths(profile, runs, forget).items():
        summaries[label] = unlearn.read_run(path)["summary"] or {}
    return pd.DataFrame([{"method": k, **{n: s.get(n, float("nan")) for n in names}} for k, s in summaries.items()])


def loss_timing(ks: list[int], vocab_sizes: list[int], tokens: int = 512, repeats: int = 5) -> pd.DataFrame:
    """Forward + backward time of PALU's top-K local entropy (O(TK) gathered logits) vs a full-vocabulary
    flattening loss (O(TV)), on random logits of `tokens` positions."""
    import time

    import torch

    from paperlib import losses

    rows = []
    for vocab in vocab_sizes:
        for k in [k for k in ks if k <= vocab]:
            logits = torch.randn(1, tokens, vocab, requires_grad=True)
            idx = torch.randint(0, vocab, (1, tokens, k))
            mask = torch.ones(1, tokens, dtype=torch.bool)
            full_idx = torch.arange(vocab).expand(1, tokens, vocab)
            for name, index in (("top-K local entropy", idx), ("full-vocabulary", full_idx)):
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    losses.local_entropy(logits, index, mask).backward()
                    times.append(time.perf_counter() - t0)
                rows.append({"V": vocab, "K": k if name.startswith("top") else vocab, "loss": name,
                             "ms": 1e3 * float(np.median(times))})
    return pd.DataFrame(rows).drop_duplicates(["V", "K", "loss"])


def step_times(profile: Profile, runs: list[Run], forget: str) -> pd.DataFrame:
    """Training seconds per optimizer step of each run (reference pass excluded) and the reference pass."""
    rows = []
    for label, path in run_paths(profile, runs, forget).items():
        st = unlearn.read_run(path)["status"]["timing"]
        rows.append({"method": label, "s / step": st["train_seconds"] / max(1, st["steps"]),
                     "reference s": st["reference"]["seconds"], "reference mode": st["reference"]["mode"]})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- dry-run plans
TOFU_FORGET_SIZES = {"forget01": 40, "forget05": 200, "forget10": 400}
NOTEBOOK_RUNS = {"01": (main_runs, False), "02": (localization_runs, False), "03": (nce_runs, True),
                 "04": (prefix_runs, False), "05": (topk_runs, False), "06": (target_runs, False),
                 "07": (None, False), "08": (None, False)}


def _forget_size(profile: Profile) -> int:
    forget = profile.benchmark.forget
    if profile.benchmark.name == "tofu":
        return TOFU_FORGET_SIZES[forget]
    cfg = profile.benchmark.mini
    return mini_tofu.n_forget_authors(cfg.n_authors, int(forget[-2:])) * cfg.qa_per_author


def _planned(profile: Profile, run: Run, eval_every_epoch: bool) -> dict:
    m, train_cfg, _ = unlearn.resolve(profile, run.method, run.overrides)
    return {"model": pipeline.original_model(profile), "method": run.method,
            "hyperparameters": {**run.overrides, "lr": train_cfg.lr}, "n_examples": _forget_size(profile),
            "epochs": train_cfg.epochs, "passes": 2 if m.needs().retain else 1,
            "evaluations": train_cfg.epochs if eval_every_epoch else 1, "reference": bool(m.needs().ref)}


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
            return [_planned(profile, Run("", method, dict(over)), ev) for method, over, ev in runs
                    if (method, over, ev) not in seen]
        seen.update(runs)
    raise ValueError(f"notebook {notebook!r} has no plan; allowed: 00, {', '.join(NOTEBOOK_RUNS)}")


def sensitive_run_lengths(profile: Profile, forget: str) -> pd.Series:
    """How many sensitive spans of the forget set are k tokens long (k = maximal run of sensitive tokens);
    prefix budgets N at or above the longest run all unlearn the same tokens."""
    from paperlib.data import encoding

    tok = load_tokenizer(pipeline.tokenizer_path(profile))
    spans = tofu.load_spans(pipeline.spans_dir(profile, forget))
    lengths = []
    for question, row in spans.items():
        flags = encoding.encode(tok, profile.model.template, question, row["answer"], row["spans"])["sensitive"]
        run = 0
        for flag in [*flags, False]:
            if flag:
                run += 1
            elif run:
                lengths.append(run)
                run = 0
    return pd.Series(lengths, name="tokens").value_counts().sort_index()
