"""Each notebook's verdict as a tested function of its tables.

A claim names an effect (e.g. "PALU has the highest FQ among the methods that keep 95% of the original
model's utility") and is "reproduced" only when that effect exceeds the seed spread: the two intervals
mean +- sd do not overlap in the claimed direction. It is "not reproduced" when the opposite effect
exceeds the spread (or the precondition fails, e.g. nothing was forgotten), and "inconclusive" when the
difference stays within the spread. Tables are the notebooks' own: a label column, metric columns "X"
and their seed standard deviations "X sd" (`paperlib.report.SPREAD`).

`show(claim)` displays a verdict in a notebook together with a machine-readable copy that the runner
collects from the executed notebooks into tables/claims.md (`collect`, `write_markdown`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from paperlib.report import SPREAD
from paperlib.tuning import MU_FRACTION

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
FORGOTTEN_P = 0.05  # FQ >= 0.05: the KS test cannot tell the model's truth ratios from the retain model's at 5%
MIME = "application/vnd.paperlib.claim+json"


@dataclass(frozen=True)
class Claim:
    """A notebook's finding, its verdict and the numbers behind it."""

    notebook: str
    finding: str
    verdict: str
    evidence: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}; allowed: {', '.join(VERDICTS)}")

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


# ----------------------------------------------------------------------------------------- the notebooks' claims
def benchmark_claim(models: pd.DataFrame) -> Claim:
    """00: the original model memorises the forget set (FQ < FORGOTTEN_P against the retain model, higher EM)
    and both models keep general knowledge (retain MU >= MU_FRACTION x original MU)."""
    t = models.set_index("method")
    orig, ret = t.loc["Original"], t.loc["Retain"]
    ok = orig["FQ"] < FORGOTTEN_P and orig["EM"] > ret["EM"] and min(orig["MU"], ret["MU"]) >= \
        MU_FRACTION * max(orig["MU"], ret["MU"])
    evidence = (f"FQ(original) {orig['FQ']:.2e}, EM {orig['EM']:.3f} vs {ret['EM']:.3f}, "
                f"MU {orig['MU']:.3f} vs {ret['MU']:.3f}")
    return Claim("00", "the original model memorises the forget authors, the retain model does not, and both "
                 "keep general knowledge", REPRODUCED if ok else NOT_REPRODUCED, evidence)


def main_claim(table: pd.DataFrame, method: str = "PALU") -> Claim:
    """01: `method` reaches the highest FQ among the methods whose selected point keeps MU95."""
    finding = f"{method} reaches the highest forget quality among methods keeping 95% of the original's utility"
    rows = table[~table["method"].isin(["Original", "Retain"])]
    if rows.set_index("method").loc[method, "MU95"] != "yes":
        return Claim("01", finding, NOT_REPRODUCED, f"{method} has no sweep point with MU >= 95% of the original's")
    qualified = list(rows[rows["MU95"] == "yes"]["method"])
    if qualified == [method]:
        return Claim("01", finding, REPRODUCED, f"{method} is the only method keeping 95% of the utility "
                     f"(FQ {fmt(_stat(rows, method, 'FQ', 'method'))})")
    verdict, evidence = best(rows, "FQ", method, among=qualified)
    return Claim("01", finding, verdict, evidence)


def localization_claim(table: pd.DataFrame, prefix: str = "sensitive prefix (N=3)",
                       whole: str = "all answer tokens") -> Claim:
    """02: unlearning the sensitive prefix forgets more than unlearning every answer token, both tuned to
    the same utility floor (MU95 selection)."""
    d = direction(_stat(table, prefix, "FQ", "method"), _stat(table, whole, "FQ", "method"))
    evidence = (f"{_metric(table, 'FQ')}: {prefix} {fmt(_stat(table, prefix, 'FQ', 'method'))}, "
                f"{whole} {fmt(_stat(table, whole, 'FQ', 'method'))}")
    return Claim("02", "unlearning only the sensitive prefix forgets more than unlearning every answer token at "
                 "the same utility floor", {1: REPRODUCED, -1: NOT_REPRODUCED, 0: INCONCLUSIVE}[d], evidence)


def stability_claim(curves: pd.DataFrame, mu_original: float, ours: str = "PALU", other: str = "NCE") -> Claim:
    """03: over the epochs at the selected learning rate, local entropy loses less utility than negated CE
    (largest MU drop from the original, per seed)."""
    drops = (mu_original - curves.groupby(["method", "seed"])["MU"].min()).groupby("method")
    stats = {m: (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0) for m, v in drops}
    d = direction(stats[other], stats[ours])  # ours reproduces when NCE's drop is larger
    evidence = f"largest MU drop: {ours} {fmt(stats[ours])}, {other} {fmt(stats[other])}"
    return Claim("03", f"local entropy ({ours}) keeps utility over the epochs better than negated cross-entropy",
                 {1: REPRODUCED, -1: NOT_REPRODUCED, 0: INCONCLUSIVE}[d], evidence)


def prefix_claim(table: pd.DataFrame, short: str = "3", every: str = "all", by: str = "N") -> Claim:
    """04: a short prefix (N = 3) forgets (FQ >= FORGOTTEN_P beyond the spread) and no worse than unlearning
    every sensitive token."""
    finding = "a short prefix (N = 3) is enough: it forgets, and no worse than every sensitive token"
    s, a = _stat(table, short, "FQ", by), _stat(table, every, "FQ", by)
    floor = math.log10(FORGOTTEN_P) if _metric(table, "FQ") == LOG_FQ else FORGOTTEN_P
    forgetting = [lb for lb in table[by] if _stat(table, lb, "FQ", by)[0] >= floor]
    evidence = (f"{_metric(table, 'FQ')}: N={short} {fmt(s)}, N={every} {fmt(a)}; N with mean FQ >= {FORGOTTEN_P}: "
                f"{forgetting or 'none'}")
    if s[0] - s[1] < floor:
        verdict = NOT_REPRODUCED if s[0] + s[1] < floor else INCONCLUSIVE
        return Claim("04", finding, verdict, evidence + f" (N={short} does not forget beyond the spread)")
    return Claim("04", finding, NOT_REPRODUCED if above(a, s) else REPRODUCED, evidence)


def topk_claim(table: pd.DataFrame, by: str = "K") -> Claim:
    """05: K = 1 forgets least and a mid-sized K forgets most (ranked by FQ, beyond the spread)."""
    ks = sorted(table[by].astype(int))
    stats = {k: _stat(table.assign(**{by: table[by].astype(int)}), k, "FQ", by) for k in ks}
    top = max(ks, key=lambda k: stats[k][0])
    evidence = f"{_metric(table, 'FQ')}: " + ", ".join(f"K={k} {fmt(stats[k])}" for k in ks)
    finding = "K = 1 forgets least and a mid-sized K forgets most"
    if len(ks) < 3:
        return Claim("05", finding, INCONCLUSIVE, evidence + " (fewer than three K values)")
    mid_best = top not in (ks[0], ks[-1]) and all(above(stats[top], stats[k]) for k in (ks[0], ks[-1]))
    if mid_best:
        return Claim("05", finding, REPRODUCED, evidence)
    wrong = top in (ks[0], ks[-1]) and any(above(stats[top], stats[k]) for k in ks if k != top)
    return Claim("05", finding, NOT_REPRODUCED if wrong else INCONCLUSIVE, evidence)


def target_claim(table: pd.DataFrame, ours: str = "global_mean", by: str = "target") -> Claim:
    """06: the global mean is the best flattening target (highest FQ at the MU95 point)."""
    verdict, evidence = best(table, "FQ", ours, by=by)
    return Claim("06", "the global mean is the best flattening target", verdict, evidence)


def efficiency_claim(timing: pd.DataFrame) -> Claim:
    """07: the top-K loss is cheaper than the full-vocabulary one at every K < V/4 (largest V measured),
    beyond the spread over repeats."""
    big = timing[timing["V"] == timing["V"].max()]
    full = big[big["loss"] == "full-vocabulary"].iloc[0]
    full_stat = (float(full["ms"]), float(full.get(f"ms{SPREAD}", 0.0)))
    small = big[(big["loss"] != "full-vocabulary") & (big["K"] < big["V"] / 4)]
    cheaper = [above(full_stat, (float(r["ms"]), float(r.get(f"ms{SPREAD}", 0.0)))) for _, r in small.iterrows()]
    evidence = (f"V = {int(full['V'])}: full {fmt(full_stat)} ms; top-K " +
                ", ".join(f"K={int(r['K'])} {r['ms']:.1f} ms" for _, r in small.iterrows()))
    verdict = REPRODUCED if cheaper and all(cheaper) else NOT_REPRODUCED if not any(cheaper) else INCONCLUSIVE
    return Claim("07", "the top-K loss costs less than a full-vocabulary loss at every K < V/4", verdict, evidence)


def privacy_claim(table: pd.DataFrame, ours: str = "PALU", metric: str = "mia_min_k") -> Claim:
    """08: `ours` has the MinK AUC closest to the retain model's among the unlearning methods."""
    ref = float(table.set_index("method").loc["Retain", metric])
    rows = table[~table["method"].isin(["Original", "Retain"])].copy()
    rows["gap"] = (rows[metric] - ref).abs()
    rows[f"gap{SPREAD}"] = rows.get(f"{metric}{SPREAD}", 0.0)
    verdict, evidence = best(rows, "gap", ours, higher=False)
    return Claim("08", f"{ours}'s MinK AUC is the closest to the retain model's", verdict,
                 evidence + f" (|AUC - retain AUC|, retain AUC {ref:.3f})")


def distill_claim(targets: pd.DataFrame, ours: str = "Unilogit", metric: str = "target KL") -> Claim:
    """10: `ours`'s soft targets are closer to the retain model's outputs on the forget set (lower mean
    KL(retain || target), `paperlib.distill`) than every other method's in `targets` (UnDIAL at each beta)."""
    verdict, evidence = best(targets, metric, ours, higher=False)
    return Claim("10", f"{ours}'s soft targets are closer to the retain model's outputs than UnDIAL's (every beta)",
                 verdict, evidence + " (KL(retain ‖ target), nats per forget answer token)")


def rwku_claim(table: pd.DataFrame, ours: str = "Unilogit", other: str = "UnDIAL", metric: str = "forget All") -> Claim:
    """12: at the points the tuning rule selects (neighbour knowledge kept at 95% of the original's), `ours`
    forgets the RWKU targets more than `other`: lower forget All (ROUGE-L recall x 100 over the three probe
    levels), beyond the spread over targets. Not reproduced when `ours` does not lower forget All below the
    original model's beyond the spread (nothing forgotten) or `other` is lower beyond the spread."""
    finding = f"{ours} forgets the RWKU targets more than {other} (lower forget All at the selected points)"
    orig, mine = _stat(table, "Original", metric, "method"), _stat(table, ours, metric, "method")
    if not above(orig, mine):
        return Claim("12", finding, NOT_REPRODUCED, f"{metric}: {ours} {fmt(mine)} is not below the original "
                     f"model's {fmt(orig)} beyond the spread over targets")
    verdict, evidence = best(table, metric, ours, among=[ours, other], higher=False)
    return Claim("12", finding, verdict, evidence.replace("seed spread", "spread over targets") +
                 f"; original {fmt(orig)}")


def random_mask_claim(table: pd.DataFrame, pairs: Iterable[tuple[str, str]] = (
        ("oracle", "complement"), ("activation", "random"), ("wagle", "random"), ("memflex", "random")),
        metric: str = "AUES", min_seeds: int = 2) -> Claim:
    """09: a localized mask is no better than a random one of the same size. Per loss, each (localized, random)
    pair of `pairs` present with at least `min_seeds` completed seeds (the table's `seeds` "k/n") compares
    `metric` (higher = better): "not reproduced" when any localized mask lies above its random one beyond the
    spread, "reproduced" only when every random mask lies above its localized one (the intervals separate),
    else "inconclusive"."""
    finding = "localized masks (the oracle's own mask, attribution masks) are no better than random masks"
    completed = table["seeds"].map(lambda s: int(str(s).split("/")[0]))
    rows = table[completed >= min_seeds].set_index(["loss", "mask"])
    found = [(loss, mine, other) for loss in dict.fromkeys(table["loss"]) for mine, other in pairs
             if (loss, mine) in rows.index and (loss, other) in rows.index]
    if not found:
        return Claim("09", finding, INCONCLUSIVE, f"no (localized, random) pair with {min_seeds}+ seeds")
    stat = lambda key: (float(rows.loc[key, metric]), float(rows.loc[key].get(f"{metric}{SPREAD}", 0.0)))  # noqa: E731
    signs = [direction(stat((loss, mine)), stat((loss, other))) for loss, mine, other in found]
    evidence = f"{metric}: " + "; ".join(f"{loss} {mine} {fmt(stat((loss, mine)))} vs {other} "
                                         f"{fmt(stat((loss, other)))}" for loss, mine, other in found)
    verdict = NOT_REPRODUCED if 1 in signs else REPRODUCED if all(d == -1 for d in signs) else INCONCLUSIVE
    return Claim("09", finding, verdict, evidence + ("" if verdict != INCONCLUSIVE else " (within the seed spread)"))


def muse_claim(table: pd.DataFrame, ours: str = "PALU", metric: str = "KnowMem-f") -> Claim:
    """11: on MUSE, `ours` (with automatic spans) leaves the least forget-set knowledge (lowest KnowMem-forget)
    among the methods whose selected point keeps 95% of the target's KnowMem-retain (MU95 = "yes")."""
    finding = (f"{ours} (automatic spans) leaves the least forget-set knowledge (KnowMem-forget) among methods "
               "keeping 95% of the target's KnowMem-retain")
    rows = table[table["MU95"].isin(["yes", "no"])] if "MU95" in table else table
    if rows.set_index("method").loc[ours, "MU95"] != "yes":
        return Claim("11", finding, NOT_REPRODUCED, f"{ours} has no sweep point keeping 95% of KnowMem-retain")
    qualified = list(rows[rows["MU95"] == "yes"]["method"])
    verdict, evidence = best(rows, metric, ours, among=qualified, higher=False)
    return Claim("11", finding, verdict, evidence)


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


def to_markdown(found: list[Claim], profile: str) -> str:
    """The claims table (notebook, paper's finding, verdict, evidence) for tables/claims.md and the README."""
    lines = [f"Verdicts of the executed notebooks ({profile} profile); a finding is reproduced only when its "
             "effect exceeds the seed spread (`paperlib.claims`).", "",
             "| notebook | finding | verdict | evidence |", "|---|---|---|---|"]
    for c in found:
        lines.append(f"| {c.notebook} | {c.finding} | **{c.verdict}** | {c.evidence.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


README_BEGIN, README_END = "<!-- claims:begin -->", "<!-- claims:end -->"
README_TABLES = ("01_tofu_main",)  # tables the README shows, between <!-- table:NAME:begin/end --> markers


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
        if len(cells) == 4 and re.fullmatch(r"\d\d", cells[0]) and cells[0] not in have:
            kept.append(Claim(notebook=cells[0], finding=cells[1], verdict=cells[2].strip("*"), evidence=cells[3]))
    return sorted(found + kept, key=lambda c: c.notebook)


def write_markdown(found: list[Claim], profile: str, tables_dir: str | Path, readme: str | Path | None = None
                   ) -> Path:
    """Write `<tables_dir>/claims.md`; with `readme`, put it between the README's claims markers, and each
    table of README_TABLES (its regenerated Markdown) between that table's markers."""
    out = Path(tables_dir) / "claims.md"
    text = to_markdown(_merged(found, profile, out), profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if readme is not None and Path(readme).is_file():
        body = replace_between(Path(readme).read_text(), README_BEGIN, README_END, text)
        for name in README_TABLES:
            table = Path(tables_dir) / f"{name}.md"
            if table.is_file():
                body = replace_between(body, f"<!-- table:{name}:begin -->", f"<!-- table:{name}:end -->",
                                       table.read_text())
        Path(readme).write_text(body)
    return out
