"""Each notebook's verdict as a tested function of its tables.

A claim names an effect (e.g. "PALU has the highest FQ among the methods that keep 95% of the original
model's utility") and gets one of four verdicts (`VERDICTS`), by one rule for every claim about forgetting:

- A row *forgot* (`forgot_fq`, `muse_forgetters`, `rwku_forgetters`): TOFU, its FQ (mean over seeds) >=
  FORGOTTEN_P = 0.05; MUSE, its KnowMem-forget or VerbMem (mean over seeds) below the target model's 95%
  bootstrap CI; RWKU, its forget All below the original model's beyond the seed spread.
- A comparison is decided only when at least one compared row forgot; otherwise the verdict is "not testable
  here" (`NOT_TESTABLE`), never "reproduced" or "not reproduced".
- "reproduced" needs the effect to exceed the seed spread (the intervals mean +- sd over seeds do not overlap
  in the claimed direction), every other part of the finding's wording to hold, and the claimed row to have
  forgotten; "not reproduced": the opposite effect exceeds the spread, a stated part of the finding fails, or
  the claimed row did not forget while another did; "inconclusive": the difference stays within the spread.

Notebooks 00 (the benchmark) and 07 (timing) claim nothing about forgetting: they check every part of their
wording without the forgetting rule. Tables are the notebooks' own: a label column, metric columns "X" and
their standard deviations "X sd" (`paperlib.report.SPREAD`: over seeds; RWKU: over seeds of the mean over
targets; 07: over timing repeats).

`show(claim)` displays a verdict in a notebook together with a machine-readable copy that the runner
collects from the executed notebooks into tables/claims.md (`collect`, `write_markdown`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from paperlib.methods.tuning import MU_FRACTION
from paperlib.report import SPREAD

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
NOT_TESTABLE = "not testable here"  # no compared row forgot: the comparison says nothing about unlearning
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_TESTABLE)
FORGOTTEN_P = 0.05  # FQ >= 0.05: the KS test cannot tell the model's truth ratios from the retain model's at 5%
MUSE_FORGET_METRICS = ("KnowMem-f", "VerbMem")  # MUSE: a row forgot when one is below the target's 95% CI
MUSE_TARGET = "Target"  # the MUSE table's row of the model before unlearning
RWKU_FORGET = "forget All"  # RWKU: a row forgot when this is below the original model's beyond the spread
REFERENCE_ROWS = ("Original", "Retain")  # rows of a TOFU table that are not unlearning methods
MIME = "application/vnd.paperlib.claim+json"
RULES = ("A row *forgot* when its FQ (mean over seeds) >= 0.05 (MUSE: KnowMem-forget or VerbMem below the target "
         "model's 95% bootstrap CI; RWKU: forget All below the original model's beyond the seed spread). A "
         "comparison is decided only when at least one compared row forgot, else **not testable here**. "
         "**reproduced**: the effect exceeds the seed spread (the intervals mean ± sd over seeds do not overlap), "
         "every part of the finding holds and the claimed row forgot; **not reproduced**: the opposite effect "
         "exceeds the spread, a part of the finding fails, or the claimed row did not forget; **inconclusive**: "
         "within the spread. 00 and 07 are not about forgetting. ± in the evidence: sd over seeds (12: over "
         "seeds of the mean over targets; 07: over timing repeats). *Second draw*: the same verdict function on "
         "tiny models trained from another seed (TOFU's base, original and retain; 09: with their masks and "
         "injected oracle; MUSE's target and retrained; RWKU's base), every selected point (no new sweep) re-run "
         "on them with every seed; a finding whose two verdicts differ is **fragile**; – where no second "
         "draw was made.")
FRAGILE = "fragile"
NO_DRAW = "–"  # the second-draw cell of a claim that was not re-derived


@dataclass(frozen=True)
class Claim:
    """A notebook's finding, its verdict and the numbers behind it."""

    notebook: str
    finding: str
    verdict: str
    evidence: str
    second: str = ""  # the verdict on the second draw of the models (`robust`), "" where none was made

    def __post_init__(self) -> None:
        for verdict in (self.verdict, *([self.second] if self.second else [])):
            if verdict not in VERDICTS:
                raise ValueError(f"verdict {verdict!r}; allowed: {', '.join(VERDICTS)}")

    @property
    def fragile(self) -> bool:
        """The verdict changed with the second draw of the models."""
        return bool(self.second) and self.second != self.verdict

    def robustness(self) -> str:
        """The claims table's second-draw cell: that verdict, marked fragile when it differs."""
        if not self.second:
            return NO_DRAW
        return f"**{FRAGILE}**: {self.second}" if self.fragile else self.second

    def _repr_markdown_(self) -> str:
        return f"**{self.verdict.capitalize()}**: {self.finding}. {self.evidence}"

    def __str__(self) -> str:
        return f"{self.verdict.upper()}: {self.finding}. {self.evidence}"


# ----------------------------------------------------------------------------------------- comparisons
LOG_FQ = "log10 FQ"  # forget quality is compared on the log scale when the table has it (p-values)


def _metric(table: pd.DataFrame, metric: str) -> str:
    return LOG_FQ if metric == "FQ" and LOG_FQ in table else metric


def _stat(table: pd.DataFrame, label: str, metric: str, by: str) -> tuple[float, float]:
    metric = _metric(table, metric)
    row = table.set_index(by).loc[label]
    sd = row.get(f"{metric}{SPREAD}", 0.0)
    sd = 0.0 if sd is None or (isinstance(sd, float) and math.isnan(sd)) else float(sd)
    return float(row[metric]), sd


def above(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a's interval lies entirely above b's: mean_a - sd_a > mean_b + sd_b (NaN means never)."""
    return a[0] - a[1] > b[0] + b[1]


def direction(a: tuple[float, float], b: tuple[float, float]) -> int:
    """+1 if a is above b beyond the spread, -1 if below, 0 within the spread."""
    return 1 if above(a, b) else -1 if above(b, a) else 0


def fmt(stat: tuple[float, float]) -> str:
    """'mean ± sd' (just the mean when sd is 0), p-value-sized numbers in scientific notation."""
    mean, sd = stat
    f = (lambda x: f"{x:.2e}") if 0 < abs(mean) < 1e-3 else (lambda x: f"{x:.3f}")
    return f(mean) if sd == 0 else f"{f(mean)} ± {f(sd)}"


def best(table: pd.DataFrame, metric: str, label: str, by: str = "method",
         among: Iterable[str] | None = None, higher: bool = True) -> tuple[str, str]:
    """(verdict, evidence) of "`label` has the best `metric` among `among`" (default: every row)."""
    labels = list(among) if among is not None else list(table[by])
    sign = 1 if higher else -1
    stats = {lb: _stat(table, lb, metric, by) for lb in labels}
    signed = {lb: (sign * m, s) for lb, (m, s) in stats.items()}
    mine, others = signed[label], {lb: v for lb, v in signed.items() if lb != label}
    if not others:
        return INCONCLUSIVE, f"{label} is the only candidate"
    leader = max(signed, key=lambda lb: signed[lb][0])
    runner_up = max(others, key=lambda lb: others[lb][0])
    evidence = f"{_metric(table, metric)}: {label} {fmt(stats[label])}; best other {runner_up} {fmt(stats[runner_up])}"
    if all(above(mine, v) for v in others.values()):
        return REPRODUCED, evidence
    if leader != label and above(signed[leader], mine):
        return NOT_REPRODUCED, evidence
    return INCONCLUSIVE, evidence + " (within the seed spread)"


# ----------------------------------------------------------------------------------------- what "forgot" means
def forgot_fq(fq: float) -> bool:
    """TOFU's rule: a row forgot when its FQ (the table's "FQ", mean over seeds) >= FORGOTTEN_P (NaN: no)."""
    return bool(fq >= FORGOTTEN_P)


def fq_forgetters(table: pd.DataFrame, labels: Iterable[str], by: str = "method", column: str = "FQ") -> list[str]:
    """The rows of `labels` that forgot by `forgot_fq` (`column`: the table's mean FQ over seeds)."""
    t = table.set_index(by)
    return [lb for lb in labels if forgot_fq(float(t.loc[lb, column]))]


def _ci_low(cell: object) -> float:
    """The lower end of a CI cell "[low, high]" (NaN when there is none)."""
    try:
        return float(str(cell).strip("[] ").split(",")[0])
    except ValueError:
        return math.nan


def muse_forgetters(table: pd.DataFrame, labels: Iterable[str], by: str = "method") -> list[str]:
    """MUSE's rule: the rows of `labels` whose KnowMem-forget or VerbMem (mean over seeds) lies below the lower
    end of the target model's 95% bootstrap CI ("X CI" of the MUSE_TARGET row)."""
    t = table.set_index(by)
    lows = {m: _ci_low(t.loc[MUSE_TARGET, f"{m} CI"]) for m in MUSE_FORGET_METRICS}
    return [lb for lb in labels if any(float(t.loc[lb, m]) < low for m, low in lows.items())]


def rwku_forgetters(table: pd.DataFrame, labels: Iterable[str], original: str = "Original",
                    by: str = "method") -> list[str]:
    """RWKU's rule: the rows of `labels` whose forget All lies below the original model's beyond the spread."""
    orig = _stat(table, original, RWKU_FORGET, by)
    return [lb for lb in labels if above(orig, _stat(table, lb, RWKU_FORGET, by))]


def _decide(notebook: str, finding: str, verdict: str, evidence: str, forgot: Sequence[str],
            claimed: str | None, rule: str) -> Claim:
    """The forgetting rule on top of a comparison's (verdict, evidence): NOT_TESTABLE when no compared row
    forgot; NOT_REPRODUCED instead of REPRODUCED when the `claimed` row did not forget."""
    evidence = f"{evidence}; forgot ({rule}): {', '.join(map(str, forgot)) or 'none'}"
    if not forgot:
        return Claim(notebook, finding, NOT_TESTABLE, evidence + " (no compared row forgot: nothing to decide)")
    if claimed is not None and claimed not in forgot and verdict == REPRODUCED:
        return Claim(notebook, finding, NOT_REPRODUCED, evidence + f" ({claimed} did not forget)")
    return Claim(notebook, finding, verdict, evidence)


FQ_RULE = f"FQ >= {FORGOTTEN_P}"


def robust(claim: Claim, second: Claim | None) -> Claim:
    """`claim` with the verdict of the same claim function on the second draw of the models
    (`experiments.redraw`; None: no second draw, e.g. the paper profiles) and that draw's evidence appended."""
    if second is None:
        return claim
    if (second.notebook, second.finding) != (claim.notebook, claim.finding):
        raise ValueError(f"second draw of another claim: {second.notebook} {second.finding!r}")
    return replace(claim, second=second.verdict, evidence=f"{claim.evidence}. Second draw: {second.evidence}")


# ----------------------------------------------------------------------------------------- the notebooks' claims
def benchmark_claim(models: pd.DataFrame) -> Claim:
    """00 (not about unlearning): the original model memorises the forget set (FQ < FORGOTTEN_P against the
    retain model), the retain model does not (lower EM on the forget set than the original's), and both keep
    general knowledge (the lower MU >= MU_FRACTION x the higher). Reproduced when all three hold."""
    t = models.set_index("method")
    orig, ret = t.loc["Original"], t.loc["Retain"]
    parts = {"the original's truth ratios differ from the retain model's (FQ < 0.05)": orig["FQ"] < FORGOTTEN_P,
             "the retain model answers fewer forget questions verbatim (lower EM)": orig["EM"] > ret["EM"],
             f"both keep general knowledge (MU within {1 - MU_FRACTION:.0%})":
                 min(orig["MU"], ret["MU"]) >= MU_FRACTION * max(orig["MU"], ret["MU"])}
    evidence = (f"FQ(original) {orig['FQ']:.2e}, EM {orig['EM']:.3f} vs {ret['EM']:.3f}, "
                f"MU {orig['MU']:.3f} vs {ret['MU']:.3f}")
    failed = [part for part, ok in parts.items() if not ok]
    return Claim("00", "the original model memorises the forget authors, the retain model does not, and both "
                 "keep general knowledge", NOT_REPRODUCED if failed else REPRODUCED,
                 evidence + (f" (fails: {'; '.join(failed)})" if failed else ""))


def _unlearning_rows(table: pd.DataFrame, by: str = "method") -> pd.DataFrame:
    return table[~table[by].isin(REFERENCE_ROWS)]


def _qualified(table: pd.DataFrame, by: str = "method") -> list[str]:
    """Rows whose reported point keeps MU95 (every row when the table has no MU95 column)."""
    return list(table[table["MU95"] == "yes"][by]) if "MU95" in table else list(table[by])


def main_claim(table: pd.DataFrame, method: str = "PALU") -> Claim:
    """01: `method` reaches the highest FQ among the methods whose reported point keeps MU95, beyond the seed
    spread; compared rows: `method` and every method keeping MU95 (the forgetting rule on their FQ)."""
    finding = f"{method} reaches the highest forget quality among methods keeping 95% of the original's utility"
    rows = _unlearning_rows(table)
    qualified = _qualified(rows)
    forgot = fq_forgetters(rows, dict.fromkeys([method, *qualified]))
    if method not in qualified:
        verdict, evidence = NOT_REPRODUCED, f"{method}'s reported point keeps less than 95% of the original's utility"
    elif qualified == [method]:
        verdict, evidence = REPRODUCED, (f"{method} is the only method keeping 95% of the utility "
                                         f"({_metric(rows, 'FQ')} {fmt(_stat(rows, method, 'FQ', 'method'))})")
    else:
        verdict, evidence = best(rows, "FQ", method, among=qualified)
    return _decide("01", finding, verdict, evidence, forgot, method, FQ_RULE)


def localization_claim(table: pd.DataFrame, prefix: str = "sensitive prefix (N=3)",
                       whole: str = "all answer tokens") -> Claim:
    """02: unlearning the sensitive prefix forgets more (higher FQ beyond the seed spread) than unlearning every
    answer token, both tuned to the same utility floor: the prefix's reported point must keep MU95 (not
    reproduced otherwise); a whole-answer point that could not keep it is compared and named in the evidence."""
    finding = ("unlearning only the sensitive prefix forgets more than unlearning every answer token at the same "
               "utility floor")
    p, w = _stat(table, prefix, "FQ", "method"), _stat(table, whole, "FQ", "method")
    evidence = f"{_metric(table, 'FQ')}: {prefix} {fmt(p)}, {whole} {fmt(w)}"
    flags = table.set_index("method")["MU95"] if "MU95" in table else pd.Series("yes", index=[prefix, whole])
    if flags[whole] != "yes":
        evidence += f" ({whole} kept less than 95% of the utility at every point)"
    if flags[prefix] != "yes":
        verdict = NOT_REPRODUCED
        evidence += f" ({prefix} kept less than 95% of the utility at every point)"
    else:
        verdict = {1: REPRODUCED, -1: NOT_REPRODUCED, 0: INCONCLUSIVE}[direction(p, w)]
    return _decide("02", finding, verdict, evidence, fq_forgetters(table, [prefix, whole]), prefix, FQ_RULE)


def stability_claim(curves: pd.DataFrame, mu_original: float, ours: str = "PALU", other: str = "NCE") -> Claim:
    """03: over the epochs at the selected learning rate, local entropy loses less utility than negated CE
    (largest MU drop from the original, per seed; mean ± sd over seeds, beyond the spread). A method forgot
    when its FQ (mean over seeds) reaches FORGOTTEN_P at some epoch."""
    drops = (mu_original - curves.groupby(["method", "seed"])["MU"].min()).groupby("method")
    stats = {m: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0) for m, v in drops}
    peak = curves.groupby(["method", "epoch"])["FQ"].mean().groupby("method").max()
    d = direction(stats[other], stats[ours])  # ours reproduces when NCE's drop is larger
    evidence = (f"largest MU drop: {ours} {fmt(stats[ours])}, {other} {fmt(stats[other])}; highest FQ over the "
                f"epochs: {ours} {fmt((float(peak[ours]), 0.0))}, {other} {fmt((float(peak[other]), 0.0))}")
    forgot = [m for m in (ours, other) if forgot_fq(float(peak[m]))]
    return _decide("03", f"local entropy ({ours}) keeps utility over the epochs better than negated cross-entropy",
                   {1: REPRODUCED, -1: NOT_REPRODUCED, 0: INCONCLUSIVE}[d], evidence, forgot, ours,
                   f"{FQ_RULE} at some epoch")


def prefix_claim(table: pd.DataFrame, short: str = "3", every: str = "all", by: str = "N") -> Claim:
    """04: a short prefix (N = 3) is enough: it forgets (the forgetting rule) and no worse than unlearning every
    sensitive token (N = all not above it beyond the seed spread)."""
    finding = "a short prefix (N = 3) is enough: it forgets, and no worse than every sensitive token"
    s, a = _stat(table, short, "FQ", by), _stat(table, every, "FQ", by)
    evidence = f"{_metric(table, 'FQ')}: N={short} {fmt(s)}, N={every} {fmt(a)}"
    forgot = fq_forgetters(table, [short, every], by=by)
    if short not in forgot:
        verdict, evidence = NOT_REPRODUCED, evidence + f" (N={short} does not forget)"
    else:
        verdict = NOT_REPRODUCED if above(a, s) else REPRODUCED
    return _decide("04", finding, verdict, evidence, [f"N={n}" for n in forgot], f"N={short}", FQ_RULE)


def topk_claim(table: pd.DataFrame, by: str = "K") -> Claim:
    """05: K = 1 (the smallest K) forgets least (below every other K beyond the spread) and a mid-sized K forgets
    most (the highest FQ, above both ends of the grid beyond the spread). Not reproduced when the smallest K
    lies above another K beyond the spread, or an end of the grid above every mid-sized K."""
    t = table.assign(**{by: table[by].astype(int)})
    ks = sorted(t[by])
    stats = {k: _stat(t, k, "FQ", by) for k in ks}
    evidence = f"{_metric(table, 'FQ')}: " + ", ".join(f"K={k} {fmt(stats[k])}" for k in ks)
    finding = "K = 1 forgets least and a mid-sized K forgets most"
    forgot = [f"K={k}" for k in fq_forgetters(t, ks, by=by)]
    if len(ks) < 3:
        return _decide("05", finding, INCONCLUSIVE, evidence + " (fewer than three K values)", forgot, None, FQ_RULE)
    ends, mids = (ks[0], ks[-1]), ks[1:-1]
    top = max(mids, key=lambda k: stats[k][0])
    least = all(above(stats[k], stats[ks[0]]) for k in ks[1:])
    most = all(above(stats[top], stats[k]) for k in ends)
    least_wrong = any(above(stats[ks[0]], stats[k]) for k in ks[1:])
    most_wrong = any(all(above(stats[e], stats[m]) for m in mids) for e in ends)
    if least and most:
        verdict = REPRODUCED
    elif least_wrong or most_wrong:
        verdict = NOT_REPRODUCED
        evidence += f" (K={ks[0]} is above another K)" if least_wrong else " (an end of the grid is above every mid K)"
    else:
        verdict = INCONCLUSIVE
    return _decide("05", finding, verdict, evidence, forgot, f"K={top}", FQ_RULE)


def target_claim(table: pd.DataFrame, ours: str = "global_mean", by: str = "target") -> Claim:
    """06: the global mean is the best flattening target: the highest FQ, beyond the seed spread, among the
    targets whose reported point keeps MU95 (not reproduced when the global mean's does not)."""
    finding = "the global mean is the best flattening target (highest FQ among targets keeping 95% of the utility)"
    qualified = _qualified(table, by)
    if ours not in qualified:
        verdict, evidence = NOT_REPRODUCED, f"{ours}'s reported point keeps less than 95% of the original's utility"
    else:
        verdict, evidence = best(table, "FQ", ours, by=by, among=qualified)
    forgot = fq_forgetters(table, dict.fromkeys([ours, *qualified]), by=by)
    return _decide("06", finding, verdict, evidence, forgot, ours, FQ_RULE)


def efficiency_claim(timing: pd.DataFrame) -> Claim:
    """07 (not about unlearning): at the largest vocabulary V measured, the top-K loss (forward + backward) is
    cheaper than the full-vocabulary one at every K < V/4, beyond the spread over timing repeats; inconclusive
    when no K < V/4 was measured or some but not all are cheaper beyond the spread."""
    big = timing[timing["V"] == timing["V"].max()]
    full = big[big["loss"] == "full-vocabulary"].iloc[0]
    spread = lambda r: float(r.get(f"ms{SPREAD}", 0.0))  # noqa: E731
    full_stat = (float(full["ms"]), spread(full))
    small = big[(big["loss"] != "full-vocabulary") & (big["K"] < big["V"] / 4)]
    stats = {int(r["K"]): (float(r["ms"]), spread(r)) for _, r in small.iterrows()}
    cheaper = [above(full_stat, s) for s in stats.values()]
    evidence = (f"V = {int(full['V'])}: full {fmt(full_stat)} ms; top-K " +
                ", ".join(f"K={k} {fmt(s)} ms" for k, s in stats.items()) + " (± sd over timing repeats)")
    if not cheaper:
        verdict, evidence = INCONCLUSIVE, evidence + f" (no K < V/4 = {int(full['V']) // 4} measured)"
    else:
        verdict = REPRODUCED if all(cheaper) else NOT_REPRODUCED if not any(cheaper) else INCONCLUSIVE
    return Claim("07", "at the largest vocabulary measured, the top-K loss costs less than a full-vocabulary loss "
                 "at every K < V/4", verdict, evidence)


def privacy_claim(table: pd.DataFrame, ours: str = "PALU", metric: str = "mia_min_k") -> Claim:
    """08: `ours` has the MinK AUC closest to the retain model's among the unlearning methods (smallest
    |AUC - retain AUC| beyond the seed spread); a method forgot by its `forget_quality` column."""
    ref = float(table.set_index("method").loc["Retain", metric])
    rows = _unlearning_rows(table).copy()
    rows["gap"] = (rows[metric] - ref).abs()
    rows[f"gap{SPREAD}"] = rows.get(f"{metric}{SPREAD}", 0.0)
    verdict, evidence = best(rows, "gap", ours, higher=False)
    forgot = fq_forgetters(rows, rows["method"], column="forget_quality")
    return _decide("08", f"{ours}'s MinK AUC is the closest to the retain model's", verdict,
                   evidence + f" (|AUC - retain AUC|, retain AUC {ref:.3f})", forgot, ours, FQ_RULE)


def distill_claim(targets: pd.DataFrame, tuned: pd.DataFrame, ours: str = "Unilogit",
                  metric: str = "target KL") -> Claim:
    """10: `ours`'s soft targets are closer to the retain model's outputs on the forget set (lower mean
    KL(retain || target), `paperlib.studies.distill`) than every other method's in `targets` (UnDIAL at each beta),
    beyond the seed spread. The forgetting rule applies to the same methods' reported points in `tuned`
    (notebook 10's table, FQ mean over seeds): targets of runs that forgot nothing decide nothing."""
    verdict, evidence = best(targets, metric, ours, higher=False)
    forgot = fq_forgetters(tuned, [m for m in targets["method"] if m in set(tuned["method"])])
    return _decide("10", f"{ours}'s soft targets are closer to the retain model's outputs than UnDIAL's (every beta)",
                   verdict, evidence + " (KL(retain ‖ target), nats per forget answer token)", forgot, ours, FQ_RULE)


def rwku_claim(table: pd.DataFrame, ours: str = "Unilogit", other: str = "UnDIAL", metric: str = RWKU_FORGET,
               utility: str = "neighbor All") -> Claim:
    """12: at the points the tuning rule selects, `ours` forgets the RWKU targets more than `other` (lower forget
    All, ROUGE-L recall x 100 over the three probe levels, mean over targets) at a similar utility (`ours`'s
    neighbour All not below `other`'s), each beyond the spread over seeds (of the mean over targets). Not
    reproduced when `other` forgets more beyond the spread or `ours` keeps less neighbour knowledge beyond it."""
    finding = f"{ours} forgets the RWKU targets more than {other} at a similar utility (lower forget All, " \
              "neighbour All not lower, at the selected points)"
    verdict, evidence = best(table, metric, ours, among=[ours, other], higher=False)
    mine, theirs = _stat(table, ours, utility, "method"), _stat(table, other, utility, "method")
    orig = _stat(table, "Original", metric, "method")
    evidence += f"; original {fmt(orig)}; {utility}: {ours} {fmt(mine)}, {other} {fmt(theirs)}"
    if "MU95" in table:
        flags = table.set_index("method")["MU95"]
        evidence += f"; targets keeping 95% of the neighbour knowledge: {ours} {flags[ours]}, {other} {flags[other]}"
    if above(theirs, mine):
        verdict = NOT_REPRODUCED
        evidence += f" ({ours} keeps less neighbour knowledge beyond the spread)"
    forgot = rwku_forgetters(table, [ours, other])
    return _decide("12", finding, verdict, evidence + " (± sd over seeds of the mean over targets)", forgot, ours,
                   "forget All below the original's beyond the spread")


def random_mask_claim(table: pd.DataFrame, pairs: Iterable[tuple[str, str]] = (
        ("oracle", "complement"), ("activation", "random"), ("wagle", "random"), ("memflex", "random")),
        metric: str = "AUES", min_seeds: int = 2) -> Claim:
    """09: a localized mask is no better than a random one of the same size. Per loss, each (localized, random)
    pair of `pairs` present with at least `min_seeds` completed seeds (the table's `seeds` "k/n"; pairs with
    fewer are named in the evidence) compares `metric` (higher = better) at the selected learning rate. A pair
    is decided only when one of its masks forgot ("MU95 FQ", mean over seeds, >= FORGOTTEN_P). "not reproduced"
    when a localized mask lies above its random one beyond the spread; "reproduced" only when every decided
    random mask lies above its localized one and forgot, and pooled over learning rates ("AUES all lrs", seed
    0) no localized mask is above its random one (else inconclusive)."""
    finding = "localized masks (the oracle's own mask, attribution masks) are no better than random masks"
    completed = table["seeds"].map(lambda s: int(str(s).split("/")[0]))
    every = table.set_index(["loss", "mask"])
    rows = table[completed >= min_seeds].set_index(["loss", "mask"])
    present = [(loss, mine, other) for loss in dict.fromkeys(table["loss"]) for mine, other in pairs
               if (loss, mine) in every.index and (loss, other) in every.index]
    found = [p for p in present if (p[0], p[1]) in rows.index and (p[0], p[2]) in rows.index]
    left = [f"{loss} {mine} ({every.loc[(loss, mine), 'seeds']}) vs {other} ({every.loc[(loss, other), 'seeds']})"
            for loss, mine, other in present if (loss, mine, other) not in found]
    note = f"; not compared (fewer than {min_seeds} seeds): {', '.join(left)}" if left else ""
    if not found:
        return Claim("09", finding, INCONCLUSIVE, f"no (localized, random) pair with {min_seeds}+ seeds{note}")
    stat = lambda key: (float(rows.loc[key, metric]), float(rows.loc[key].get(f"{metric}{SPREAD}", 0.0)))  # noqa: E731
    fq = lambda key: float(rows.loc[key].get("MU95 FQ", math.nan))  # noqa: E731
    evidence = f"{metric}: " + "; ".join(
        f"{loss} {mine} {fmt(stat((loss, mine)))} vs {other} {fmt(stat((loss, other)))} (MU95 FQ "
        f"{fmt((fq((loss, mine)), 0.0))} vs {fmt((fq((loss, other)), 0.0))})" for loss, mine, other in found)
    forgot = [f"{loss} {m}" for loss, mine, other in found for m in (mine, other) if forgot_fq(fq((loss, m)))]
    decided = [p for p in found if forgot_fq(fq((p[0], p[1]))) or forgot_fq(fq((p[0], p[2])))]
    signs = [direction(stat((loss, mine)), stat((loss, other))) for loss, mine, other in decided]
    verdict = NOT_REPRODUCED if 1 in signs else REPRODUCED if signs and all(d == -1 for d in signs) else INCONCLUSIVE
    if verdict == REPRODUCED and any(not forgot_fq(fq((loss, other))) for loss, _, other in decided):
        verdict, evidence = NOT_REPRODUCED, evidence + " (a random mask that is above did not forget)"
    if verdict == INCONCLUSIVE and 0 in signs:
        evidence += " (within the seed spread)"
    if "AUES all lrs" in rows:
        pooled = [(loss, mine, other) for loss, mine, other in decided
                  if rows.loc[(loss, mine), "AUES all lrs"] > rows.loc[(loss, other), "AUES all lrs"]]
        evidence += "; AUES all lrs (seed 0): " + "; ".join(
            f"{loss} {mine} {rows.loc[(loss, mine), 'AUES all lrs']:.3f} vs {other} "
            f"{rows.loc[(loss, other), 'AUES all lrs']:.3f}" for loss, mine, other in found)
        if verdict == REPRODUCED and pooled:
            verdict, evidence = INCONCLUSIVE, evidence + " (pooled over learning rates a localized mask is higher)"
    return _decide("09", finding, verdict, evidence + note, forgot, None, f"MU95 {FQ_RULE}")


def muse_claim(table: pd.DataFrame, ours: str = "PALU", metric: str = "KnowMem-f") -> Claim:
    """11: on MUSE, `ours` (with automatic spans) leaves the least forget-set knowledge (lowest KnowMem-forget,
    beyond the seed spread) among the methods whose selected point keeps 95% of the target's KnowMem-retain
    (MU95 = "yes"; not reproduced when `ours`'s does not). MUSE's forgetting rule (`muse_forgetters`)."""
    finding = (f"{ours} (automatic spans) leaves the least forget-set knowledge (KnowMem-forget) among methods "
               "keeping 95% of the target's KnowMem-retain")
    rows = table[table["MU95"].isin(["yes", "no"])] if "MU95" in table else table
    qualified = _qualified(rows)
    if ours not in qualified:
        verdict, evidence = NOT_REPRODUCED, (f"{ours}'s selected point does not keep 95% of the target's "
                                        "KnowMem-retain (MU95 no)")
    else:
        verdict, evidence = best(rows, metric, ours, among=qualified, higher=False)
    forgot = muse_forgetters(table, dict.fromkeys([ours, *qualified]))
    return _decide("11", finding, verdict, evidence, forgot, ours,
                   "KnowMem-forget or VerbMem below the target's 95% CI")


# ----------------------------------------------------------------------------------------- notebooks and the runner
def show(claim: Claim) -> None:
    """Display the verdict (Markdown) with a machine-readable copy for `collect`."""
    try:
        from IPython.display import display
    except ImportError:
        print(claim)
        return
    display({"text/markdown": claim._repr_markdown_(), "text/plain": str(claim), MIME: asdict(claim)}, raw=True)


def collect(executed: Iterable[str | Path]) -> list[Claim]:
    """The claims shown in executed notebooks (in notebook order)."""
    import nbformat  # here, not at the top: its JSON-schema validator costs ~0.9 s per notebook kernel to import

    found = []
    for path in sorted(Path(p) for p in executed):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                data = out.get("data", {})
                if MIME in data:
                    payload = data[MIME]
                    found.append(Claim(**(json.loads(payload) if isinstance(payload, str) else payload)))
    return found


def to_markdown(found: list[Claim], profile: str, compact: bool = False) -> str:
    """The claims table (notebook, paper's finding, verdict, evidence) for tables/claims.md; `compact` (the
    README's front door): without the evidence column and the rules, which tables/claims.md holds."""
    if compact:
        fragile = [c.notebook for c in found if c.fragile]
        lines = [f"Verdicts of the executed notebooks ({profile} profile), each a tested function of "
                 "`paperlib.studies.claims`, beside the same verdict on a second draw of the tiny models "
                 "(another seed); "
                 "the rules and each verdict's evidence: [tables/claims.md](tables/claims.md). "
                 + (f"**Fragile** (the verdict changes with the draw): {', '.join(fragile)}." if fragile else
                    "No verdict changes with the draw." if any(c.second for c in found) else
                    "No second draw was made."), "",
                 "| notebook | finding | verdict | second draw |", "|---|---|---|---|"]
        lines += [f"| {c.notebook} | {c.finding} | **{c.verdict}** | {c.robustness()} |" for c in found]
        return "\n".join(lines) + "\n"
    lines = [f"Verdicts of the executed notebooks ({profile} profile), each a tested function of "
             "`paperlib.studies.claims`. "
             + RULES, "",
             "| notebook | finding | verdict | second draw | evidence |", "|---|---|---|---|---|"]
    for c in found:
        lines.append(f"| {c.notebook} | {c.finding} | **{c.verdict}** | {c.robustness()} | "
                     f"{c.evidence.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- claims:begin -->", "<!-- claims:end -->"
# tables and notes (report.save_note) the README shows
README_TABLES = ("01_tofu_main", "01_frontier")  # between <!-- table:NAME:begin/end --> markers


def replace_between(text: str, begin: str, end: str, body: str) -> str:
    """`text` with whatever stands between the markers `begin` and `end` replaced by `body`."""
    if begin not in text or end not in text:
        return text
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}{end}{tail}"


def _merged(found: list[Claim], profile: str, path: Path) -> list[Claim]:
    """`found` plus the claims of other notebooks already in `path` for the same profile (a partial reproduce,
    e.g. `--only 12`, updates its own rows and keeps the rest), in notebook order."""
    if not path.is_file() or f"({profile} profile)" not in path.read_text().split("\n", 1)[0]:
        return found
    have = {c.notebook for c in found}
    kept = []
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) in (4, 5) and re.fullmatch(r"\d\d", cells[0]) and cells[0] not in have:
            second = cells[3].rsplit(":", 1)[-1].strip() if len(cells) == 5 and cells[3] != NO_DRAW else ""
            kept.append(Claim(notebook=cells[0], finding=cells[1], verdict=cells[2].strip("*"), evidence=cells[-1],
                              second=second))
    return sorted(found + kept, key=lambda c: c.notebook)


def write_markdown(found: list[Claim], profile: str, tables_dir: str | Path, readme: str | Path | None = None
                   ) -> Path:
    """Write `<tables_dir>/claims.md`; with `readme`, its compact form between the README's claims markers, and each
    table of README_TABLES (its regenerated Markdown) between that table's markers."""
    out = Path(tables_dir) / "claims.md"
    merged = _merged(found, profile, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_markdown(merged, profile))
    if readme is not None and Path(readme).is_file():
        body = replace_between(Path(readme).read_text(), README_BEGIN, README_END,
                               to_markdown(merged, profile, compact=True))
        for name in README_TABLES:
            table = Path(tables_dir) / f"{name}.md"
            if table.is_file():
                body = replace_between(body, f"<!-- table:{name}:begin -->", f"<!-- table:{name}:end -->",
                                       table.read_text())
        Path(readme).write_text(body)
    return out
