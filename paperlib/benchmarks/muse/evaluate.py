"""MUSE's evaluation side: the target and retrained models' evaluations, the "muse" evaluator of the raw-text
engine, the unlearning corpus and its automatic spans, and the numbers the tuning rule reads (notebook 11's study
and tables: `paperlib.studies.muse`; its runs are planned by `paperlib.benchmarks.muse.plugin`).

Tiny profiles (smoke, mini) generate mini-MUSE (`paperlib.benchmarks.muse.mini`) and fine-tune mini-TOFU's pretrained
tiny base on forget + retain1 + retain2 (the target) and on retain1 + retain2 only (the retrained model), both
with the earlier coverage (`mini_muse.prior_texts`), with the project's training loop, cached like
`paperlib.benchmarks.tofu.pipeline`'s stages (`paperlib.benchmarks.muse.models`). The paper profile reads
`muse-bench/MUSE-News` / `MUSE-Books` and MUSE's published target / retrained checkpoints.

Unlearning (`paperlib.engine.unlearn.unlearn_text`): forget = raw/forget, retain regulariser = raw/retain1, both cut
into `block`-token blocks. Tuning follows `paperlib.methods.tuning` (the same lr grid x epochs and seeds as every TOFU
table) with MUSE's quantities in its two roles: utility MU = KnowMem on retain (MUSE's utility metric; a point
qualifies at MU >= 95% of the target's), forgetting FQ = 1 - (VerbMem + KnowMem-forget) / 2 (the mean of MUSE's
two forget-set memorisation scores, turned so that higher = more forgotten).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from paperlib.benchmarks.muse import data as muse
from paperlib.benchmarks.muse import metrics as mm
from paperlib.benchmarks.muse import models as muse_models
from paperlib.benchmarks.tofu import pipeline
from paperlib.engine import rawtext
from paperlib.engine.cache import cached_run, code_fingerprint, file_digest
from paperlib.engine.config import Profile
from paperlib.engine.corpus import TextCorpus, register_evaluator
from paperlib.engine.models import load_model, load_tokenizer

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
        mm.evaluate_muse(model, tok, load_data(profile), mm.MuseEvalConfig(**eval_settings(profile)), reference=ref,
                         out_dir=out)

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
        rows.append({"model": name, **table_columns(summary(folder), log)})
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


def table_columns(summ: dict, log: dict | None = None) -> dict:
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
    cfg = mm.MuseEvalConfig(**{k: eval_args[k] for k in eval_settings(profile)})
    _, summ = mm.evaluate_muse(model, tokenizer, load_data(profile), cfg, reference=ref, out_dir=out_dir)
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
    """Automatic sensitive spans of the forget articles, cached: `paperlib.benchmarks.spans`' log-prob rule (its
    `DEFAULT_RULE`) on raw text, i.e. tokens with log p_target - log p_retrained > threshold nats grouped into
    whole-word spans (`spans.group_spans`); tokens past the first `max_length` are never flagged."""
    from paperlib.benchmarks import spans as auto

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


# ----------------------------------------------------------------------------------------- the tuning rule's numbers
def forget_score(summ: dict) -> float:
    """FQ on MUSE (higher = more forgotten): 1 - mean(VerbMem, KnowMem-forget), both in 0..1."""
    return 1.0 - (summ[mm.VERBMEM] + summ[mm.KNOW_F]) / 2


def table_row(summ: dict | None) -> dict:
    """A run's MUSE columns and the tuning rule's two numbers: FQ (`forget_score`) and MU = KnowMem-retain."""
    if summ is None:
        return {}
    return {**table_columns(summ), "FQ": forget_score(summ), "MU": summ[mm.KNOW_R]}


def question_count(profile: Profile) -> int:
    """KnowMem questions on the retain set (one question is worth 100 / this many points of KnowMem-retain)."""
    return len(load_data(profile).knowmem["retain_qa"])


def target_mu(profile: Profile) -> float:
    """The target model's KnowMem-retain (the MU95 rule's reference on MUSE; its cached evaluation)."""
    return summary(evaluation_dir(profile, target_model(profile)))[mm.KNOW_R]


def nan_free(df: pd.DataFrame, cols: list[str]) -> bool:
    return bool(np.isfinite(df[cols].to_numpy(dtype=float)).all())


# ----------------------------------------------------------------------------------------- command line
def evaluate_cli(model: str, source: str | None, profile_name: str | None, retain_log: str | None,
                 out: str) -> None:
    """`paperlib evaluate --benchmark muse`: MUSE_EVAL.json / MUSE_SUMMARY.json of `model` in `out`. `source`:
    news, books or a MUSE-layout folder (default: the profile's, mini-MUSE for smoke / mini); `retain_log`: the
    retrained model's MUSE_EVAL.json (PrivLeak; without it privleak is left out). Inputs checked first."""
    from paperlib.engine import checks
    from paperlib.engine.config import get_profile

    profile = get_profile(profile_name or ("paper" if source in muse.CORPORA else "mini"))
    if source is not None:
        source = muse.resolve_source(source)  # a corpus name, hub id or a complete MUSE-layout folder
    checks.check_out_file(out)
    data = muse.load_all(source) if source else load_data(profile)
    ref = mm.load_log(retain_log) if retain_log else None
    checks.check_model_dir(model)
    tok, lm = load_tokenizer(model), load_model(model)
    _, summ = mm.evaluate_muse(lm, tok, data, mm.MuseEvalConfig(**eval_settings(profile)), ref, out_dir=out)
    print(json.dumps(summ, indent=1))
    print(f"wrote {Path(out) / mm.EVAL_FILE} and {mm.SUMMARY_FILE}")
