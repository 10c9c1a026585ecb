"""Notebook 11's span study: how well each automatic span source finds the exact sensitive spans of mini-TOFU,
and how PALU does when it unlearns with each (`paperlib.benchmarks.spans` annotates; the protocol tunes)."""

from __future__ import annotations

import pandas as pd

from paperlib.benchmarks import spans
from paperlib.studies import palu as experiments


def span_study(profile, forget: str = spans.REPORT_SPLIT) -> pd.DataFrame:
    """Notebook 11's span study: for each span source (exact, logprob, capitalised) the precision / recall
    against the exact spans (`precision_table`; exact = 1) and PALU's forget quality and model utility with
    that span file, each source tuned by the same protocol (`experiments.tune`: lr grid x epochs, MU95
    selection, seeds; mean and sd over seeds)."""
    runs = [experiments.Run("exact", "PALU")]
    runs += [experiments.Run(s, "PALU", {"spans": str(spans.auto_span_file(profile, forget, s) / "spans")})
             for s in spans.SOURCES[1:]]
    tuned = experiments.tune(profile, runs, forget)
    palu = tuned.table(("FQ", "MU")).rename(columns={"label": "source"})
    exact = {"source": "exact", "rule": "span file", "token P": 1.0, "token R": 1.0, "token F1": 1.0,
             "span P": 1.0, "span R": 1.0, "span exact": 1.0}
    quality = pd.concat([pd.DataFrame([exact]), spans.precision_table(profile, forget)], ignore_index=True)
    keep = ["source", "rule", "token P", "token R", "token F1", "span P", "span R", "span exact"]
    return quality[keep].merge(palu, on="source", how="left")
