"""MUSE end to end: the benchmark folder, the target and retrained models, their evaluations, the "muse"
evaluator of the raw-text engine, the tuned unlearning table of notebook 11 and its dry-run plan.

Tiny profiles (smoke, mini) generate mini-MUSE (`paperlib.data.mini_muse`) and fine-tune mini-TOFU's pretrained
tiny base on forget + retain1 + retain2 (the target) and on retain1 + retain2 only (the retrained model), both
with the earlier coverage (`mini_muse.prior_texts`), with the project's training loop, cached like
`paperlib.pipeline`'s stages (`paperlib.muse_models`). The paper profile reads
`muse-bench/MUSE-News` / `MUSE-Books` and MUSE's published target / retrained checkpoints.

Unlearning (`paperlib.unlearn.unlearn_text`): forget = raw/forget, retain regulariser = raw/retain1, both cut
into `block`-token blocks. Tuning follows `paperlib.tuning` (the same lr grid x epochs and seeds as every TOFU
table) with MUSE's quantities in its two roles: utility MU = KnowMem on retain (MUSE's utility metric; a point
qualifies at MU >= 95% of the target's), forgetting FQ = 1 - (VerbMem + KnowMem-forget) / 2 (the mean of MUSE's
two forget-set memorisation scores, turned so that higher = more forgotten).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from paperlib import executors, muse_models, pipeline, tuning
from paperlib import muse_metrics as mm
from paperlib.cache import cached_run, code_fingerprint, file_digest
from paperlib.config import Profile
from paperlib.corpus import TextCorpus, register_evaluator
from paperlib.data import muse, rawtext
from paperlib.methods import make_method
from paperlib.models import load_model, load_tokenizer
from paperlib.studies import protocol

EVALUATOR = "muse"
METHODS, PAPER_MODELS, SETTINGS = muse_models.METHODS, muse_models.PAPER_MODELS, muse_models.SETTINGS
settings, benchmark_source, load_data = muse_models.settings, muse_models.benchmark_source, muse_models.load_data
target_model, retrained_model = muse_models.target_model, muse_models.retrained_model
COLUMNS = {"VerbMem": mm.VERBMEM, "KnowMem-f": mm.KNOW_F, "KnowMem-r": mm.KNOW_R, "PrivLeak": mm.PRIVLEAK}


def eval_settings(profile: Profile) -> dict:
    s = settings(profile)
    # tiny models: byte-level BPE, the KnowMem prompt's final space left to the answer (muse_metrics.evaluate_muse)
    return {"verbmem_new_tokens": s.verbmem_new_tokens, "knowmem_new_tokens": s.knowmem_new_tokens,
            "max_length": s.max_length, "batch_size": s.batch_size, "answer_space": s.mini is not None}


def evaluation_dir(profile: Profile, model_path: str, reference: str | None = "retrained",
                   force: bool = False) -> Path:
    """Cached folder with MUSE_EVAL.json / MUSE_SUMMARY.json of a model; `reference="retrained"` compares with
    the retrained model's own evaluation (PrivLeak), a path names another MUSE_EVAL.json, None: none."""
    if reference == "retrained":
        reference = str(retrained_log_path(profile))
    config = {"model": pipeline.model_identity(model_path), "benchmark": benchmark_source(profile)
              if settings(profile).mini is None else asdict(settings(profile).mini), **eval_settings(profile),
              "reference": None if reference is None else file_digest(Path(reference))}

    def build(out: Path) -> None:
        tok, model = load_tokenizer(model_path), load_model(model_path)
        ref = mm.load_log(reference) if reference else None
        mm.evaluate_muse(model, tok, load_data(profile), reference=ref, out_dir=out, **eval_settings(profile))

    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="privleak left out")
        return cached_run("muse-eval", config, build, force=force)


def retrained_log_path(profile: Profile) -> Path:
    """The retrained model's MUSE_EVAL.json (its own evaluation: the PrivLeak reference)."""
    return evaluation_dir(profile, retrained_model(profile), reference=None) / mm.EVAL_FILE


def summary(folder: Path) -> dict:
    return json.loads((Path(folder) / mm.SUMMARY_FILE).read_text())


def sanity(profile: Profile) -> pd.DataFrame:
    """VerbMem, KnowMem-f, KnowMem-r, PrivLeak (vs the retrained model) of the target and retrained models,
    with the bootstrap CIs of the ROUGE metrics: the benchmark check of notebook 11."""
    rows = []
    for name, path in (("Target", target_model(profile)), ("Retrained", retrained_model(profile))):
        folder = evaluation_dir(profile, path)
        log = json.loads((folder / mm.EVAL_FILE).read_text())
        rows.append({"model": name, **_columns(summary(folder), log)})
    return pd.DataFrame(rows)


PRIVLEAK_STRONG = -50.0  # "strongly negative": half of PrivLeak's most negative value (-100)


def benchmark_check(sanity_table: pd.DataFrame) -> tuple[bool, str]:
    """The benchmark check of notebook 11 on `sanity`'s table: the target's VerbMem and KnowMem-f 95% CIs lie
    wholly above the retrained model's values, and the target's PrivLeak (vs the retrained model) is at most
    `PRIVLEAK_STRONG`. Returns (holds, one sentence with the numbers)."""
    t, r = (sanity_table.set_index("model").loc[m] for m in ("Target", "Retrained"))
    parts, ok = [], True
    for col in ("VerbMem", "KnowMem-f"):
        low = float(str(t[f"{col} CI"]).strip("[]").split(",")[0])
        ok &= low > r[col]
        parts.append(f"{col} CI low {low:.1f} {'>' if low > r[col] else '<='} retrained {r[col]:.1f}")
    ok &= t["PrivLeak"] <= PRIVLEAK_STRONG
    parts.append(f"PrivLeak {t['PrivLeak']:.1f} ({'<=' if t['PrivLeak'] <= PRIVLEAK_STRONG else '>'} "
                 f"{PRIVLEAK_STRONG:g})")
    return bool(ok), f"benchmark check {'holds' if ok else 'FAILS'}: " + "; ".join(parts)


def _columns(summ: dict, log: dict | None = None) -> dict:
    """MUSE's table columns (ROUGE x 100 as MUSE prints them; PrivLeak in %), with CIs from a log."""
    row = {}
    for col, key in COLUMNS.items():
        v = summ.get(key, float("nan"))
        row[col] = v * 100 if key != mm.PRIVLEAK else v
        if log is not None and key in log and "ci_low" in log[key]:
            row[f"{col} CI"] = f"[{log[key]['ci_low'] * 100:.1f}, {log[key]['ci_high'] * 100:.1f}]"
    return row


# ----------------------------------------------------------------------------------------- the evaluator
@register_evaluator(EVALUATOR)
def evaluate_for_engine(model, tokenizer, profile: Profile, eval_args: dict, out_dir: Path | None) -> dict:
    """The "muse" evaluator of `unlearn.unlearn_text`: `mm.evaluate_muse` on the profile's MUSE data against
    the retrained model's log (eval_args: `engine_eval_args(profile)`, which records what the result depends on)."""
    ref = mm.load_log(retrained_log_path(profile))
    _, summ = mm.evaluate_muse(model, tokenizer, load_data(profile), reference=ref, out_dir=out_dir,
                               **{k: eval_args[k] for k in eval_settings(profile)})
    return summ


def engine_eval_args(profile: Profile) -> dict:
    """eval_args of a MUSE unlearning run (its cache key): generation settings, the benchmark, the retrained
    model's log digest and the fingerprint of the MUSE code (the engine's own fingerprint does not cover it)."""
    s = settings(profile)
    return {**eval_settings(profile), "benchmark": s.corpus if s.mini is None else asdict(s.mini),
            "reference": file_digest(retrained_log_path(profile)), "code": code_fingerprint("muse-eval")}


def corpus(profile: Profile, spans: tuple | None = None) -> TextCorpus:
    """The unlearning corpus: raw/forget (with `spans` when given) and raw/retain1."""
    data = load_data(profile)
    return TextCorpus("mini-muse" if settings(profile).mini else f"muse-{settings(profile).corpus}",
                      tuple(data.raw["forget"]), tuple(data.raw["retain1"]), settings(profile).block, spans)


def auto_spans(profile: Profile) -> tuple:
    """Automatic sensitive spans of the forget articles, cached: `paperlib.spans`' log-prob rule (its
    `DEFAULT_RULE`) on raw text, i.e. tokens with log p_target - log p_retrained > threshold nats grouped into
    whole-word spans (`spans.group_spans`); tokens past the first `max_length` are never flagged."""
    from paperlib import spans as auto

    rule = auto.DEFAULT_RULE
    target, retrained = target_model(profile), retrained_model(profile)
    config = {"target": pipeline.model_identity(target), "retrained": pipeline.model_identity(retrained),
              "benchmark": settings(profile).corpus if settings(profile).mini is None
              else asdict(settings(profile).mini), "rule": asdict(rule), "max_length": settings(profile).max_length}

    def build(out: Path) -> None:
        texts = load_data(profile).raw["forget"]
        tok = load_tokenizer(target)
        lp = {name: _token_logprobs(load_model(path), tok, texts, settings(profile).max_length)
              for name, path in (("target", target), ("retrained", retrained))}
        found = []
        for i, text in enumerate(texts):
            _, offsets = rawtext.tokenize(tok, text)
            gap = np.zeros(len(offsets))
            d = lp["target"][i] - lp["retrained"][i]
            gap[1:1 + len(d)] = d  # token t's log-prob given tokens < t (BOS first: never flagged)
            found.append(auto.group_spans(gap, offsets, text, rule.threshold, rule.gap))
        (out / "spans.json").write_text(json.dumps(found))

    folder = cached_run("muse-spans", config, build)
    return tuple(tuple(tuple(s) for s in doc) for doc in json.loads((folder / "spans.json").read_text()))


@torch.no_grad()
def _token_logprobs(model, tokenizer, texts: list[str], max_length: int) -> list[np.ndarray]:
    """log p(token t | tokens < t) for t = 1 .. of each text (BOS + its first `max_length` tokens)."""
    device = next(model.parameters()).device
    out = []
    for text in texts:
        ids = torch.tensor([rawtext.tokenize(tokenizer, text)[0][:max_length]], device=device)
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
        out.append(logp.gather(-1, ids[0, 1:, None]).squeeze(-1).cpu().numpy())
    return out


# ----------------------------------------------------------------------------------------- tuning
def forget_score(summ: dict) -> float:
    """FQ on MUSE (higher = more forgotten): 1 - mean(VerbMem, KnowMem-forget), both in 0..1."""
    return 1.0 - (summ[mm.VERBMEM] + summ[mm.KNOW_F]) / 2


def describe(profile: Profile) -> str:
    """The tuning protocol on MUSE in one paragraph (`tuning.describe` with MUSE's FQ and MU)."""
    g = tuning.grid(profile)
    return (f"{profile.name}: every method sweeps lr in {{{', '.join(f'{lr:g}' for lr in g.lrs)}}} for {g.epochs} "
            f"epochs, evaluated after each; MU = KnowMem-retain, FQ = 1 - mean(VerbMem, KnowMem-forget); reported "
            f"point = highest FQ with MU >= {tuning.MU_FRACTION:.0%} of the target model's MU (else the highest MU, "
            f"flagged MU95 = no); that lr and epoch re-run with seeds {list(g.seeds)}; tables show mean ± sd.")


def _row(summ: dict | None) -> dict:
    if summ is None:
        return {}
    return {**_columns(summ), "FQ": forget_score(summ), "MU": summ[mm.KNOW_R]}


class _Arm(NamedTuple):
    method: str


def _request(profile: Profile, arm: _Arm, point: protocol.Point, spans: tuple | None = None) -> executors.Request:
    """The planned MUSE run of `arm` at `point`: `unlearn.unlearn_text` on `corpus` (PALU with `spans`) from the
    target model, the "muse" evaluator."""
    return executors.Request(profile, arm.method, overrides=tuning.run_overrides(profile, arm.method, point.lr,
                                                                                 point.seed, point.stop_epoch),
                             eval_every_epoch=point.every_epoch, model=str(target_model(profile)),
                             corpus=corpus(profile, spans if arm.method == "PALU" else None), evaluator=EVALUATOR,
                             eval_args=engine_eval_args(profile))


def _sweep_rows(arm: _Arm, point: protocol.Point, info: dict) -> list[dict]:
    return protocol.epoch_rows(info, {"method": arm.method, "lr": point.lr}, _row)


def sweep(profile: Profile, methods: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One run per (method, lr of the grid), evaluated after every epoch: rows (method, lr, epoch, status,
    MUSE columns, FQ, MU); a diverged run gives one row with status "diverged" (`protocol.sweep`)."""
    methods = methods or settings(profile).methods
    spans = auto_spans(profile) if "PALU" in methods else None
    return pd.DataFrame(protocol.sweep(profile, [_Arm(m) for m in methods], partial(_request, profile, spans=spans),
                                       _sweep_rows, every_epoch=True))


def question_count(profile: Profile) -> int:
    """KnowMem questions on the retain set (one question is worth 100 / this many points of KnowMem-retain)."""
    return len(load_data(profile).knowmem["retain_qa"])


def target_mu(profile: Profile) -> float:
    """The target model's KnowMem-retain (the MU95 rule's reference on MUSE; its cached evaluation)."""
    return summary(evaluation_dir(profile, target_model(profile)))[mm.KNOW_R]


def select(profile: Profile, table: pd.DataFrame) -> pd.DataFrame:
    """`tuning.select` per method with MU = KnowMem-retain against the target's (`target_mu`)."""
    return pd.DataFrame([{"method": method, "lr": best["lr"], "epoch": int(best["epoch"]),
                          "qualified": bool(best["qualified"])}
                         for method, best in protocol.select(profile, table, "method", target_mu(profile))])


def seed_runs(profile: Profile, chosen: pd.DataFrame, table: pd.DataFrame | None) -> pd.DataFrame:
    """Each method at its selected point with every seed of the grid: one row per (method, seed) with the MUSE
    columns and the bootstrap CIs of that run's final evaluation. Seed 0 is the sweep's run (re-trained up to
    the selected epoch when that is not its last, so that its MUSE_EVAL.json is the selected point's; the
    numbers equal the sweep's row: same seed, same schedule); with no sweep (`table` None: `redraw`) seed 0
    trains up to the selected epoch like the others."""
    spans = auto_spans(profile) if "PALU" in set(chosen["method"]) else None
    sel = {c["method"]: c for _, c in chosen.iterrows()}

    def point(arm: _Arm, seed: int) -> protocol.Point:
        c = sel[arm.method]
        last = table is not None and seed == 0 and int(c["epoch"]) == tuning.grid(profile, arm.method).epochs
        return protocol.Point(c["lr"], seed, 0 if last else int(c["epoch"]), last)

    def rows(arm: _Arm, point: protocol.Point, info: dict) -> list[dict]:
        c = sel[arm.method]
        base = {"method": arm.method, "lr": c["lr"], "epoch": c["epoch"], "MU95": "yes" if c["qualified"] else "no",
                "seed": point.seed}
        log = info["path"] / mm.EVAL_FILE
        log = json.loads(log.read_text()) if info["summary"] is not None and log.is_file() else None
        cis = {k: v for k, v in _columns(info["summary"], log).items() if k.endswith(" CI")} if log else {}
        return [{**protocol.final_row(info, base, _row), **cis}]

    return pd.DataFrame(protocol.seed_runs(profile, [_Arm(m) for m in sel], point,
                                           partial(_request, profile, spans=spans), rows))


def redraw(profile: Profile, chosen: pd.DataFrame) -> tuple[Profile, pd.DataFrame] | None:
    """Each method's selected point (`select`'s lr and epoch: no new sweep) re-run with every seed of the grid on
    the target and retrained models of the second draw (`experiments.second_draw`: trained from another seed;
    their own automatic spans and PrivLeak reference), as (that profile, its `main_table`, MU95 against that
    draw's target); None where the models are given (the paper profile's published checkpoints)."""
    from paperlib.experiments import second_draw

    other = second_draw(profile)
    if other is None or settings(profile).mini is None:
        return None
    return other, main_table(other, seed_runs(other, chosen, None))


def main_table(profile: Profile, seeds: pd.DataFrame) -> pd.DataFrame:
    """Target and retrained rows, then each method's mean ± sd over seeds (columns "X" and "X sd"), the
    bootstrap 95% CIs (over items) of its seed-0 run, and MU95: whether the seed mean of MU (KnowMem-retain)
    keeps 95% of the target's (`tuning.keeps_utility`; seed 0 alone decided the selection)."""
    ref, mu = sanity(profile), target_mu(profile)
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
    """The span annotator study of notebook 11 (`paperlib.spans.span_study`, on mini-TOFU)."""
    from paperlib import spans

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
    from paperlib.experiments import DRAW_SEED

    s = settings(name)
    for method in s.methods:
        common = {"model": "muse-target", "method": method, "n_examples": s.mini.n_events if s.mini else 0,
                  "epochs": g.epochs}
        rows += [{**common, "hyperparameters": {"lr": lr}} for lr in g.lrs]
        rows += [{**common, "hyperparameters": {"lr": "selected", "seed": seed}} for seed in g.seeds if seed != 0]
        # `redraw`: every seed at the selected point on the second draw's target model
        rows += [{**common, "model": f"muse-target (draw {DRAW_SEED})",
                  "hyperparameters": {"lr": "selected", "seed": seed, "draw": DRAW_SEED}} for seed in g.seeds]
    return rows


def nan_free(df: pd.DataFrame, cols: list[str]) -> bool:
    return bool(np.isfinite(df[cols].to_numpy(dtype=float)).all())


# ----------------------------------------------------------------------------------------- command line
def evaluate_cli(model: str, source: str | None, profile_name: str | None, retain_log: str | None,
                 out: str) -> None:
    """`paperlib evaluate --benchmark muse`: MUSE_EVAL.json / MUSE_SUMMARY.json of `model` in `out`. `source`:
    news, books or a MUSE-layout folder (default: the profile's, mini-MUSE for smoke / mini); `retain_log`: the
    retrained model's MUSE_EVAL.json (PrivLeak; without it privleak is left out). Inputs checked first."""
    from paperlib import checks
    from paperlib.config import get_profile

    profile = get_profile(profile_name or ("paper" if source in muse.CORPORA else "mini"))
    if source is not None:
        source = muse.resolve_source(source)  # a corpus name, hub id or a complete MUSE-layout folder
    checks.check_out_file(out)
    data = muse.load_all(source) if source else load_data(profile)
    ref = mm.load_log(retain_log) if retain_log else None
    checks.check_model_dir(model)
    tok, lm = load_tokenizer(model), load_model(model)
    s = settings(profile)
    _, summ = mm.evaluate_muse(lm, tok, data, s.verbmem_new_tokens, s.knowmem_new_tokens, s.max_length,
                               s.batch_size, ref, out_dir=out, answer_space=s.mini is not None)
    print(json.dumps(summ, indent=1))
    print(f"wrote {Path(out) / mm.EVAL_FILE} and {mm.SUMMARY_FILE}")
