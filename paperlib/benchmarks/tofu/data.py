"""One loader for TOFU and mini-TOFU: the hub dataset `locuslab/TOFU`, a local folder in TOFU's layout
(`<split>.json` JSON lines or `<split>.parquet`), or a generated mini-TOFU folder; plus the PALU/TPO span
files (`datasets.load_from_disk`) joined to forget sets by question."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import datasets

datasets.disable_progress_bars()  # small local files: the bars only add noise to logs

PERCENTS = ("01", "05", "10")
FORGET_SPLITS = tuple(f"forget{p}" for p in PERCENTS)
SPLITS = (
    "full", *FORGET_SPLITS, "retain99", "retain95", "retain90",
    *(f"{s}_perturbed" for s in FORGET_SPLITS), "retain_perturbed",
    *(f"holdout{p}" for p in PERCENTS),
    "real_authors", "real_authors_perturbed", "world_facts", "world_facts_perturbed",
)
PRETRAIN = "pretrain"  # mini-TOFU only, not a TOFU split: the tiny base model's corpus (mini_tofu.pretrain_rows)


def check_split(split: str, allowed: tuple[str, ...] = SPLITS) -> str:
    if split not in allowed:
        raise ValueError(f"unknown split {split!r}; allowed: {', '.join(allowed)}")
    return split


def retain_of(forget: str) -> str:
    """forget05 -> retain95."""
    check_split(forget, FORGET_SPLITS)
    return f"retain{100 - int(forget[-2:])}"


def holdout_of(forget: str) -> str:
    """forget05 -> holdout05."""
    return "holdout" + check_split(forget, FORGET_SPLITS)[-2:]


def load_split(source: str | Path, split: str) -> datasets.Dataset:
    """Split `split` from a local folder in TOFU's layout, else from the hub dataset id `source`."""
    check_split(split, (*SPLITS, PRETRAIN))
    folder = Path(source)
    if folder.is_dir():
        for name, kind in ((f"{split}.json", "json"), (f"{split}.jsonl", "json"), (f"{split}.parquet", "parquet")):
            if (folder / name).is_file():
                return _load_file(kind, folder / name)
        raise FileNotFoundError(f"split {split!r} not found in {folder} (looked for {split}.json/.jsonl/.parquet)")
    if folder.suffix or str(source).startswith((".", "/")):
        raise FileNotFoundError(f"benchmark folder {source!s} does not exist")
    from paperlib.engine import hub

    return hub.load_dataset(str(source), split, split="train", what="benchmark",
                            local="a local copy in TOFU's layout (a folder of <split>.json or .parquet files), "
                                  "e.g. paperlib evaluate --source DIR")


_LOADED: dict[tuple, datasets.Dataset] = {}


def _load_file(kind: str, path: Path) -> datasets.Dataset:
    """`datasets.load_dataset` of one local split file, memoised per process by (path, size, mtime): a sweep reads
    the same splits for every run and every evaluation (datasets are immutable: `map` etc. return new ones)."""
    st = path.stat()
    key = (str(path.resolve()), kind, st.st_size, st.st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = datasets.load_dataset(kind, data_files=str(path), split="train")
    return _LOADED[key]


def load_idk(source: str | Path) -> list[str]:
    """The "I don't know" answers of a benchmark folder (`idontknow.jsonl`, one answer a line)."""
    path = Path(source)
    path = path / "idontknow.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"idk answers not found at {path}; pass the folder or file holding idontknow.jsonl")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _span_list(raw: str | list, answer: str, question: str) -> list[tuple[int, int]]:
    items = [json.loads(x) if isinstance(x, str) else x for x in (json.loads(raw) if isinstance(raw, str) else raw)]
    spans = [(int(w["start"]), int(w["end"])) for w in items]
    for s, e in spans:
        if not 0 <= s < e <= len(answer):
            raise ValueError(f"span ({s}, {e}) outside answer of length {len(answer)} "
                             f"(allowed: 0 <= start < end <= {len(answer)}) for question {question!r}")
    return spans


_SPANS: dict[tuple, dict[str, dict]] = {}


def load_spans(folder: str | Path) -> dict[str, dict]:
    """Span file (PALU/TPO schema) as {question: {"answer", "spans", "common"}}, offsets checked. Read once per
    process while the folder's files keep their size and mtime (every run of a sweep reads it); each call returns
    a fresh dict."""
    path = Path(folder)
    stamp = tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(path))) \
        if path.is_dir() else ()
    key = (str(path.resolve()), stamp)
    if key not in _SPANS:
        _SPANS[key] = _read_spans(path)
    return {q: {"answer": v["answer"], "spans": list(v["spans"]), "common": list(v["common"])}
            for q, v in _SPANS[key].items()}


def _read_spans(folder: Path) -> dict[str, dict]:
    ds = datasets.load_from_disk(str(folder))
    missing = {"question", "answer", "target_words"} - set(ds.column_names)
    if missing:
        raise ValueError(f"span file {folder} lacks columns {sorted(missing)}")
    out = {}
    for row in ds:
        q, a = row["question"], row["answer"]
        out[q] = {"answer": a, "spans": _span_list(row["target_words"], a, q),
                  "common": _span_list(row.get("common_words") or [], a, q)}
    return out


def attach_spans(ds: datasets.Dataset, spans: dict[str, dict]) -> datasets.Dataset:
    """Add `spans` (sensitive char spans) and `common` (TPO common words) to every row, joined by question."""
    missing = [q for q in ds["question"] if q not in spans]
    if missing:
        raise ValueError(f"{len(missing)} of {len(ds)} questions have no span annotation, e.g. {missing[0]!r}")
    for q, a in zip(ds["question"], ds["answer"]):
        if spans[q]["answer"] != a:
            raise ValueError(f"span file answer differs from the dataset's for question {q!r}")
    # the new fingerprint is the input's and the joined spans' (datasets would otherwise pickle the whole
    # `spans` dict with the function, the largest cost of reading a cached run)
    joined = [[spans[q]["spans"], spans[q]["common"]] for q in ds["question"]]
    fingerprint = hashlib.sha256(json.dumps([ds._fingerprint, joined]).encode()).hexdigest()[:16]
    return ds.map(lambda r: {"spans": spans[r["question"]]["spans"], "common": spans[r["question"]]["common"]},
                  new_fingerprint=fingerprint)
