"""Figures and tables in one paper style, and the PALU paper's reference numbers beside ours.

- `set_paper_style()` / `with paper_style():` one seaborn theme, fonts and sizes for every figure;
  `method_color`, `method_palette`, `method_markers` give each method a fixed colour (PALU in red, drawn
  as a star; the baselines in muted colours; Original black, Retain grey).
- `save_figure` writes PDF + PNG with deterministic metadata (reruns give the same bytes).
- `save_table` writes CSV (full precision) + Markdown + LaTeX (formatted numbers, FQ-like p-values in
  scientific notation), with the profile's setting in a caption line and a `setting` CSV column.
  Without a folder both write into the project's figures/ and tables/ (`paperlib.engine.paths`), whatever the
  working directory (JupyterLab starts kernels in notebooks/).
- `show(df, profile=...)` displays a table in a notebook as the paper prints it: numbers by
  `format_number`, no 0..n-1 index, a dash where a value does not apply, the setting once above the table.
- `paper_numbers()` holds the numbers of shared/spec/metrics.md, "Reference numbers";
  `with_paper_numbers` puts them beside ours in the paper profile only: a mini number is never presented
  as the paper's.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd

from paperlib.benchmarks.tofu.metrics import PALU_COLUMNS
from paperlib.engine import stamps
from paperlib.engine.config import PROFILE_NAMES
from paperlib.engine.paths import figures_dir, tables_dir

# ---------------------------------------------------------------------------------------------- style

COLUMN_WIDTH = 3.25  # inches, one column of a two-column paper
TEXT_WIDTH = 6.75  # inches, full text width
DPI = 150  # PNG resolution

PAPER_RC: dict[str, Any] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # ships with matplotlib: same glyphs on every machine
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 8,
    "lines.linewidth": 1.4,
    "lines.markersize": 5,
    "figure.figsize": (COLUMN_WIDTH, 2.4),
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "pdf.fonttype": 42,  # embed TrueType (camera-ready requirement of most venues)
    "ps.fonttype": 42,
    "svg.hashsalt": "paperlib",
    "axes.spines.top": False,
    "axes.spines.right": False,
}

# Fixed colour per method (colour-blind-safe tab10/tab20 hues; no other method is red, so PALU stands out).
METHOD_COLORS: dict[str, str] = {
    "GA": "#1f77b4",
    "GD": "#aec7e8",
    "NPO": "#2ca02c",
    "SimNPO": "#98df8a",
    "DPO": "#9467bd",
    "WGA": "#c5b0d5",
    "TPO": "#ff7f0e",
    "PDU": "#ffbb78",
    "UnDIAL": "#8c564b",
    "Unilogit": "#c49c94",
    "RMU": "#17becf",
    "CE-U": "#bcbd22",
    "PALU": "#d62728",
    "Original": "#222222",
    "Retain": "#8c8c8c",
}
HIGHLIGHT = "PALU"
# other spellings (open-unlearning's names, lower case) -> the names above
ALIASES = {"graddiff": "GD", "gradientdifference": "GD", "gradascent": "GA", "gradientascent": "GA",
           "finetuned": "Original", "full": "Original", "target": "Original"}
FALLBACK_COLORS = ("#7f7f7f", "#e377c2", "#dbdb8d", "#9edae5", "#f7b6d2", "#393b79")


def _style_rc() -> dict[str, Any]:
    import seaborn as sns  # loaded by the first figure, not by every table

    rc = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper")}
    rc.update(PAPER_RC)
    return rc


def set_paper_style() -> None:
    """Apply the paper style to every following figure (call once at the top of a notebook)."""
    mpl.rcParams.update(_style_rc())


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """The paper style inside a `with` block only; the previous rcParams come back afterwards."""
    with mpl.rc_context(_style_rc()):
        yield


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


_CANONICAL = {_key(m): m for m in METHOD_COLORS} | ALIASES


def canonical_method(name: str) -> str:
    """The name of `name` in METHOD_COLORS (case, '-', '_' and open-unlearning aliases ignored)."""
    try:
        return _CANONICAL[_key(str(name))]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(METHOD_COLORS)} "
                         f"(or aliases {', '.join(sorted(ALIASES))})") from None


def method_color(name: str) -> str:
    """Fixed colour of a method (ValueError naming the known methods if `name` is none of them)."""
    return METHOD_COLORS[canonical_method(name)]


def method_palette(names: Iterable[str]) -> dict[str, str]:
    """{label: colour} for seaborn's `palette=`: known methods keep their colour, other labels (variants
    such as "PALU N=3") get neutral fallback colours in order of first appearance."""
    labels = list(dict.fromkeys(names))
    spare = iter(FALLBACK_COLORS * (1 + len(labels) // len(FALLBACK_COLORS)))
    palette: dict[str, str] = {}
    for name in labels:
        known = _CANONICAL.get(_key(str(name)))
        palette[name] = METHOD_COLORS[known] if known else next(spare)
    return palette


def method_markers(names: Iterable[str]) -> dict[str, str]:
    """{label: marker} for seaborn's `markers=`: a star for PALU, a circle for every other label."""
    return {n: "*" if _CANONICAL.get(_key(str(n))) == HIGHLIGHT else "o" for n in dict.fromkeys(names)}


# --------------------------------------------------------------------------------------------- figures

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _check_name(name: str) -> None:
    if not _NAME.match(name) or name.endswith((".pdf", ".png", ".csv", ".md", ".tex")):
        raise ValueError(f"output name {name!r}: use letters, digits, '_', '-', '.' and no extension "
                         f"(e.g. '01_fq_mu_scatter')")


def save_note(text: str, name: str, folder: str | Path | None = None) -> Path:
    """Write a generated paragraph (e.g. `experiments.frontier_sentence`) to `<folder>/<name>.md`; `folder` None
    or "": the project's tables/. The README shows the ones `paperlib.studies.claims.README_TABLES` names."""
    _check_name(name)
    out = tables_dir(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    path.write_text(text.strip() + "\n")
    stamps.record([path])
    return path


def save_figure(fig: Any, name: str, folder: str | Path | None = None) -> list[Path]:
    """Write `<folder>/<name>.pdf` and `.png` (tight bounding box, no dates in the metadata); return the paths.

    `folder` None or "": the project's figures/ (`paths.figures_dir`)."""
    _check_name(name)
    out = figures_dir(folder)
    out.mkdir(parents=True, exist_ok=True)
    pdf, png = out / f"{name}.pdf", out / f"{name}.png"
    fig.savefig(pdf, bbox_inches="tight", metadata={"CreationDate": None})
    fig.savefig(png, bbox_inches="tight", dpi=DPI, metadata={"Software": None})
    stamps.record([pdf, png])
    return [pdf, png]


# ---------------------------------------------------------------------------------------------- tables

SETTING_LABELS = {
    "smoke": "mini benchmark, tiny model (smoke profile: a test-sized run)",
    "mini": "mini benchmark, tiny model",
    "paper": "paper setting",
}
SETTING_COLUMN = "setting"


def format_number(value: Any) -> str:
    """A table cell as text: '' for missing, integers as is, |x| < 1e-3 in scientific notation (FQ
    p-values such as 5.87e-14), otherwise 4 decimals below 10, 2 below 1000, none above."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        x = float(value)
        if math.isinf(x) or x == 0:
            return str(x) if math.isinf(x) else "0"
        if abs(x) < 1e-3:
            return f"{x:.2e}"
        if abs(x) < 10:
            return f"{x:.4f}"
        return f"{x:.2f}" if abs(x) < 1000 else f"{x:.0f}"
    return str(value)


def _label(df: pd.DataFrame, profile: str | None) -> str:
    """The setting line: the table's `setting` column if it has one, else the profile's label."""
    if profile is not None and profile not in SETTING_LABELS:
        raise ValueError(f"profile {profile!r}; allowed: {', '.join(PROFILE_NAMES)}")
    label = SETTING_LABELS[profile] if profile else ""
    if SETTING_COLUMN in df.columns:
        values = [str(v) for v in df[SETTING_COLUMN].dropna().unique()]
        if len(values) != 1 or (profile and not values[0].startswith(label)):
            raise ValueError(f"column {SETTING_COLUMN!r} holds {values}; expected one value"
                             + (f" starting with {label!r} (profile {profile!r})" if profile else ""))
        label = values[0]
    return label


def _paper_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if str(c).endswith(tuple(f" ({tag})" for tag in SOURCE_TAGS.values()))]


SPREAD = " sd"  # a column "X sd" holds the standard deviation of column "X" (over what: the table's caption)
SPREAD_NAMED = "sd over"  # a saved table with "X sd" columns says in its caption what they are over


def check_spread_named(df: pd.DataFrame, caption: str) -> None:
    """Refuse a table whose "X sd" columns (shown as "mean ± sd") have a caption that does not say what the sd
    is over (SPREAD_NAMED, e.g. "mean ± sd over seeds", "± sd over targets")."""
    merged = [c for c in df.columns if f"{c}{SPREAD}" in df.columns]
    if merged and SPREAD_NAMED not in caption:
        raise ValueError(f"table with mean ± sd columns {merged[:3]}{' ...' if len(merged) > 3 else ''} has caption "
                         f"{caption!r}; allowed: a caption that names the spread ('{SPREAD_NAMED} seeds', "
                         f"'{SPREAD_NAMED} targets', '{SPREAD_NAMED} repeats', ...)")


def merge_spread(df: pd.DataFrame) -> pd.DataFrame:
    """Columns "X" and "X sd" as one text column "X" reading "mean ± sd" (just the mean where sd is
    missing, e.g. for the deterministic Original / Retain rows); other columns unchanged."""
    out = df.copy()
    for col in [c for c in df.columns if f"{c}{SPREAD}" in df.columns]:
        sd = df[f"{col}{SPREAD}"]
        out[col] = [format_number(m) if pd.isna(d) or pd.isna(m) else f"{format_number(m)} ± {format_number(d)}"
                    for m, d in zip(df[col], sd)]
        out = out.drop(columns=f"{col}{SPREAD}")
    return out


def _body(df: pd.DataFrame) -> pd.DataFrame:
    """The table as shown in Markdown / LaTeX: no `setting` column (it becomes the caption line), "X" and
    "X sd" merged into "mean ± sd", the index as leading columns unless it is the default 0..n-1."""
    body = merge_spread(df.drop(columns=[SETTING_COLUMN], errors="ignore"))
    if not isinstance(body.index, pd.RangeIndex) or body.index.name is not None:
        body = body.reset_index()
    return body


def to_markdown(df: pd.DataFrame, title: str = "") -> str:
    """A GitHub pipe table (numbers right-aligned and formatted by `format_number`, '–' where missing),
    `title` in bold above it."""
    body = _body(df)

    def cell(v: Any) -> str:
        return (format_number(v) or "–").replace("|", "\\|").replace("\n", " ")

    numeric = [pd.api.types.is_numeric_dtype(body[c]) for c in body.columns]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(cell(c) for c in body.columns) + " |")
    lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
    for row in body.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs LaTeX table (pandas Styler), numbers formatted by `format_number`, text escaped."""
    body = _body(df)
    styler = body.style.hide(axis="index")
    styler = styler.format(lambda v: format_number(v) or "--", escape="latex")
    styler = styler.format_index(escape="latex", axis=1)
    align = "".join("r" if pd.api.types.is_numeric_dtype(body[c]) else "l" for c in body.columns)
    return styler.to_latex(caption=caption or None, label=label or None, hrules=True, position="t",
                           position_float="centering", column_format=align)


def save_table(df: pd.DataFrame, name: str, folder: str | Path | None = None, caption: str = "",
               profile: str | None = None) -> list[Path]:
    """Write `<folder>/<name>.csv` (full precision, with a `setting` column), `.md` and `.tex`; `folder` None
    or "": the project's tables/ (`paths.tables_dir`).

    `profile` (smoke | mini | paper) sets the setting label ("mini benchmark, tiny model" for mini and
    smoke); without it the label is taken from a `setting` column (as `with_paper_numbers` adds). A table
    labelled mini or smoke must not hold paper columns ("... (paper)"); a table with "X sd" columns needs a
    caption that says what the sd is over (`check_spread_named`). Returns the three paths.
    """
    _check_name(name)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"save_table needs a pandas DataFrame, got {type(df).__name__}")
    label = _label(df, profile)
    check_spread_named(df, caption)
    if label in (SETTING_LABELS["smoke"], SETTING_LABELS["mini"]) and _paper_columns(df):
        raise ValueError(f"table {name!r} is labelled {label!r} but holds reference columns "
                         f"{_paper_columns(df)}: mini numbers are never shown beside the paper's")
    out = tables_dir(folder)
    out.mkdir(parents=True, exist_ok=True)
    csv_df = df.copy()
    if label:
        csv_df[SETTING_COLUMN] = label
    paths = [out / f"{name}.csv", out / f"{name}.md", out / f"{name}.tex"]
    csv_df.to_csv(paths[0], index=not isinstance(df.index, pd.RangeIndex) or df.index.name is not None)
    title = " — ".join(t for t in (caption, label) if t)
    paths[1].write_text(to_markdown(df, title))
    tex_caption = f"{caption} ({label})" if caption and label else caption or label
    paths[2].write_text(to_latex(df, tex_caption, label=f"tab:{name}"))
    stamps.record(paths)
    return paths


# ----------------------------------------------------------------------------------- tables on screen

MISSING = "–"  # shown where a value does not apply (the Markdown tables use the same dash)


class Table:
    """A table as a notebook shows it: `_repr_html_` (JupyterLab, nbconvert), `_repr_markdown_` and a
    plain-text `repr` (consoles), all with the same formatted cells and the setting line above."""

    def __init__(self, df: pd.DataFrame, title: str = "") -> None:
        self.body = _body(df)
        self.title = title

    def cells(self) -> pd.DataFrame:
        """Every cell as text (`format_number`, MISSING where missing)."""
        return self.body.map(lambda v: format_number(v) or MISSING).astype(str)

    def _repr_html_(self) -> str:
        numeric = [c for c in self.body.columns if pd.api.types.is_numeric_dtype(self.body[c])]
        cells = self.cells()
        uid = hashlib.sha256((self.title + cells.to_json()).encode()).hexdigest()[:8]  # same HTML on rerun
        styler = cells.style.set_uuid(uid).hide(axis="index")
        styler = styler.set_table_styles([{"selector": "th", "props": "text-align: left;"}])
        if numeric:
            styler = styler.set_properties(subset=numeric, **{"text-align": "right"})
        title = f"<p><b>{_escape(self.title)}</b></p>\n" if self.title else ""
        return title + styler.to_html()

    def _repr_markdown_(self) -> str:
        return to_markdown(self.body, self.title)

    def __repr__(self) -> str:
        text = self.cells().to_string(index=False)
        return f"{self.title}\n{text}" if self.title else text


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def table_view(df: pd.DataFrame, profile: str | None = None, caption: str = "") -> Table:
    """`df` ready to display (see `show`), without displaying it."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"show needs a pandas DataFrame, got {type(df).__name__}")
    label = _label(df, profile)
    return Table(df, " — ".join(t for t in (caption, label) if t))


def show(df: pd.DataFrame, profile: str | None = None, caption: str = "") -> None:
    """Display `df` in the notebook as the paper prints it: significant digits (`format_number`), no 0..n-1
    index, a dash where a value does not apply (never NaN), and the caption and the setting ("mini
    benchmark, tiny model", from `profile` or the table's `setting` column) once above the table instead
    of a `setting` column on every row. Returns None, so a cell ending with it shows the table only."""
    view = table_view(df, profile, caption)
    try:
        from IPython.display import display
    except ImportError:  # plain Python without IPython
        print(repr(view))
        return
    display(view)


# ---------------------------------------------------------------------------------------- paper numbers

PAPER_COLUMNS = tuple(PALU_COLUMNS)  # FQ, MU, Fluency, EM, F-TR, Ra-TR, R-TR, Rw-TR
NAN = float("nan")
SOURCE_TAGS = {"PALU": "paper", "open-unlearning": "open-unlearning"}  # column suffix per source

# shared/spec/metrics.md, "Reference numbers"
_PALU_FORGET05 = {  # PALU paper, main table: TOFU forget05, Llama-2-7B-chat
    "Original": (5.87e-14, .6276, .8557, .9988, .5113, .6120, .4596, .5521),
    "Retain": (1.0, .6266, .8889, .6670, .6696, .6052, .4639, .5624),
    "GA": (5.95e-11, .5580),
    "GD": (.0396, .3577),
    "DPO": (.5453, .5503),
    "NPO": (.6284, .5920),
    "SimNPO": (.4663, .5921),
    "PDU": (.0021, .5111),
    "TPO": (.6284, .5862),
    "PALU": (.7126, .6238, .8122, .5935, .7030, .6701, .4762, .6069),
}
_OPEN_UNLEARNING_FORGET10 = {  # open-unlearning's untuned reproduction: TOFU forget10, Llama-2-7B-chat
    "Original": (4.35e-25, .63),  # "finetuned"
    "Retain": (1.0, .61),
    "NPO": (.42, .54),
    "SimNPO": (1.47e-198, .60),
    "GD": (1.80e-229, .58),  # "GradDiff"
}


def paper_numbers() -> pd.DataFrame:
    """The reference numbers as a table: source, split, model, method, then FQ ... Rw-TR (NaN where the
    source gives none)."""
    rows = []
    for source, split, numbers in (("PALU", "forget05", _PALU_FORGET05),
                                   ("open-unlearning", "forget10", _OPEN_UNLEARNING_FORGET10)):
        for method, values in numbers.items():
            padded = list(values) + [NAN] * (len(PAPER_COLUMNS) - len(values))
            rows.append({"source": source, "split": split, "model": "Llama-2-7B-chat", "method": method,
                         **dict(zip(PAPER_COLUMNS, padded))})
    return pd.DataFrame(rows)


def with_paper_numbers(ours: pd.DataFrame, profile: str, split: str = "forget05", on: str = "method",
                       columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Our table ready for `save_table`.

    paper profile: after each of our metric columns (FQ, MU, ...) the reference value for the same method
    and forget split, in a column "FQ (paper)" (PALU's main table, forget05) or "FQ (open-unlearning)"
    (its reproduction, forget10); methods without a reference get NaN. smoke / mini: our numbers only, plus
    a `setting` column "mini benchmark, tiny model". `columns` restricts which metrics get references.
    """
    if profile not in PROFILE_NAMES:
        raise ValueError(f"profile {profile!r}; allowed: {', '.join(PROFILE_NAMES)}")
    if on not in ours.columns:
        raise ValueError(f"column {on!r} (method names) not in the table; columns: {list(ours.columns)}")
    if profile != "paper":
        out = ours.copy()
        out[SETTING_COLUMN] = SETTING_LABELS[profile]
        return out
    ref = paper_numbers()
    splits = sorted(ref["split"].unique())
    if split not in splits:
        raise ValueError(f"split {split!r} has no reference numbers; allowed: {', '.join(splits)}")
    ref = ref[ref["split"] == split]
    tag = SOURCE_TAGS[ref["source"].iloc[0]]
    metrics = [c for c in (columns or PAPER_COLUMNS) if c in ours.columns]
    unknown = [c for c in (columns or ()) if c not in PAPER_COLUMNS]
    if unknown:
        raise ValueError(f"columns {unknown} have no reference numbers; allowed: {', '.join(PAPER_COLUMNS)}")
    by_method: Mapping[str, pd.Series] = {row["method"]: row for _, row in ref.iterrows()}
    keys = [_CANONICAL.get(_key(str(m))) for m in ours[on]]
    out = ours.copy()
    for metric in reversed(metrics):
        values = [by_method[k][metric] if k in by_method else NAN for k in keys]
        out.insert(out.columns.get_loc(metric) + 1, f"{metric} ({tag})", values)
    source = ref["source"].iloc[0]
    out[SETTING_COLUMN] = f"{SETTING_LABELS['paper']}; '({tag})' columns: {source}, TOFU {split}, Llama-2-7B-chat"
    return out
