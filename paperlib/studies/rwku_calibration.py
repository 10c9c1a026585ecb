"""Is mini RWKU faithful? Its original model beside Llama-3-8B-Instruct's numbers, and issue 23's checks.

`utility_above_chance` decides whether the multiple-choice utility says anything (else `without_gen` drops its
columns from notebook 12's tables); `fidelity_table` lays out mini vs real RWKU (`REAL_ORIGINAL`, the RWKU
paper's Table 1 as ../shared/spec/rwku_muse.md quotes it; a test reads it back from there) with the checks:
at least 10 targets, the utility above chance, and a baseline (GA or NPO) that lowers forget All beyond the
seed spread while keeping 95% of the original model's neighbour All. Reads notebook 12's tables only, so an
edit here re-keys no run.
"""

from __future__ import annotations

import pandas as pd

from paperlib.engine.config import Profile
from paperlib.methods import tuning

CHANCE_P = 0.05  # utility Gen counts as above chance when a one-sided binomial test rejects chance at this level
# RWKU paper Table 1, Llama-3-8B-Instruct before unlearning (x 100; ../shared/spec/rwku_muse.md)
REAL_ORIGINAL = {"forget FB": 85.9, "forget QA": 76.4, "forget AA": 77.7, "forget All": 79.6, "neighbor FB": 95.6,
                 "neighbor QA": 85.3, "neighbor All": 90.7, "MIA FM": 226.7, "MIA RM": 230.4, "utility Gen": 65.7,
                 "utility Flu": 705.8}
REAL_TARGETS = 100
MIN_TARGETS = 10  # issue 23: at least 10 targets, so that a spread over targets means something
BASELINES = ("GA", "NPO")  # the methods the forgetting check reads (never PALU or Unilogit, the claim's)


def mcq_items(profile: Profile) -> int:
    """Multiple-choice (utility Gen) items per target, read from the profile's first target."""
    from paperlib.benchmarks.rwku import data as rwku_data
    from paperlib.benchmarks.rwku import evaluate as rwku

    return len(rwku_data.load_target(rwku.benchmark_source(profile), rwku.target_names(profile)[0])["mmlu"])


def utility_above_chance(original: pd.DataFrame, items: int) -> tuple[bool, str]:
    """Whether the original model's utility Gen (multiple choice, `items` per target, one row per target of
    `original`) lies above chance (1 / the choices): a one-sided binomial test over the items of every target at
    `CHANCE_P` (mini RWKU asks every target the same questions in other orders, so the test counts answers, not
    independent questions). Returns (above, one sentence with the numbers); below chance the column says
    nothing about utility."""
    from scipy import stats

    from paperlib.benchmarks.rwku.data import MCQ_LETTERS

    acc = original["utility Gen"].to_numpy(dtype=float) / 100
    n, k = items * len(acc), int(round(float((acc * items).sum())))
    chance = 1 / len(MCQ_LETTERS)
    p = float(stats.binomtest(k, n, chance, alternative="greater").pvalue)
    ok = p < CHANCE_P
    return ok, (f"utility Gen: the original model answers {k}/{n} multiple-choice items ({100 * k / n:.1f}%, chance "
                f"{100 * chance:.0f}%, one-sided binomial p = {p:.3g}): "
                + ("above chance, kept" if ok else f"not above chance at p < {CHANCE_P:g}, so the column says "
                   "nothing about utility and is left out of the tables"))


def without_gen(table: pd.DataFrame) -> pd.DataFrame:
    """`table` without its utility Gen columns (mean and spread)."""
    return table.drop(columns=[c for c in table.columns if c.startswith("utility Gen")])


def forgetting_baselines(table: pd.DataFrame) -> list[str]:
    """The baselines of `BASELINES` in `results_table` `table` whose forget All lies below the original's beyond
    the spread (`claims.rwku_forgetters`) while their neighbour All (mean over targets) keeps 95% of the
    original's (`tuning.MU_FRACTION`)."""
    from paperlib.studies.claims import rwku_forgetters

    rows = table.set_index("method")
    floor = tuning.MU_FRACTION * float(rows.loc["Original", "neighbor All"])
    present = [m for m in BASELINES if m in rows.index]
    return [m for m in rwku_forgetters(table, present) if float(rows.loc[m, "neighbor All"]) >= floor]


def fidelity_table(table: pd.DataFrame, original: pd.DataFrame, items: int) -> pd.DataFrame:
    """Mini vs real RWKU: the number of targets, the original model's numbers beside Llama-3-8B-Instruct's, and
    issue 23's checks (statistic, mini, real, target, met)."""
    rows = table.set_index("method")
    orig = rows.loc["Original"]
    out = [{"statistic": "targets", "mini": float(len(original)), "real": float(REAL_TARGETS),
            "target": f">= {MIN_TARGETS}", "met": "yes" if len(original) >= MIN_TARGETS else "no"}]
    out += [{"statistic": f"original {c}", "mini": float(orig[c]), "real": v, "target": "–", "met": "–"}
            for c, v in REAL_ORIGINAL.items() if c in orig]
    above, _ = utility_above_chance(original, items)
    out.append({"statistic": "utility Gen above chance", "mini": float(above), "real": 1.0, "target": "1",
                "met": "yes" if above else "no (column dropped)"})
    found = forgetting_baselines(table)
    flags = "; ".join(f"{m}: targets keeping 95% {rows.loc[m, 'MU95']}" for m in found if "MU95" in rows)
    out.append({"statistic": f"a baseline ({'/'.join(BASELINES)}) forgets beyond the spread, neighbour All >= "
                f"{tuning.MU_FRACTION:.0%}", "mini": float(bool(found)), "real": 1.0, "target": "1",
                "met": f"yes ({', '.join(found)}{'; ' + flags if flags else ''})" if found else "no"})
    return pd.DataFrame(out)
