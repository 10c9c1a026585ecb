"""MUSE loaders: the hub datasets `muse-bench/MUSE-News` / `muse-bench/MUSE-Books`, or a local folder in
MUSE's on-disk layout (also what `paperlib.benchmarks.muse.mini` writes):

- `raw/{forget,holdout,retain1,retain2}.txt` (MUSE's files: texts joined by a blank line; one text per
  blank-line-separated block) or `.json` (a list of strings);
- `verbmem/forget.json`: a list of {"prompt", "gt"};
- `knowmem/{forget_qa,retain_qa,forget_qa_icl,retain_qa_icl}.json`: lists of {"question", "answer"};
- `privleak/{forget,retain,holdout}.json`: lists of strings.

On the hub each folder is a config and each file a split (raw and privleak rows hold "text").
Every load checks the corpus name and the folder first (`PaperlibError` naming what is missing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from paperlib.engine.errors import PaperlibError

CORPORA = ("news", "books")
HUB = {"news": "muse-bench/MUSE-News", "books": "muse-bench/MUSE-Books"}
CONFIGS: dict[str, tuple[str, ...]] = {
    "raw": ("forget", "holdout", "retain1", "retain2"),
    "verbmem": ("forget",),
    "knowmem": ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"),
    "privleak": ("forget", "retain", "holdout"),
}
FIELDS = {"verbmem": ("prompt", "gt"), "knowmem": ("question", "answer")}
TEXT_SEPARATOR = "\n\n"  # MUSE's raw .txt files join their texts with a blank line


def check_corpus(corpus: str) -> str:
    """`corpus` if it is a MUSE corpus (news, books), else a PaperlibError."""
    if corpus not in CORPORA:
        raise PaperlibError(f"MUSE corpus {corpus!r}; allowed: {', '.join(CORPORA)}")
    return corpus


def resolve_source(source: str) -> str:
    """A corpus name (news / books -> its hub id), a hub id, or a local folder in MUSE's layout (checked)."""
    if source in CORPORA:
        return HUB[source]
    if source in HUB.values():
        return source
    path = Path(source)
    if path.is_dir():
        check_folder(path)
        return str(path)
    if "/" in str(source) and not str(source).startswith((".", "/")) and not path.suffix:
        raise PaperlibError(f"MUSE source {source!r} is not a MUSE hub dataset; allowed: "
                            f"{', '.join(CORPORA)}, {', '.join(HUB.values())}, or a local folder in MUSE's layout")
    raise PaperlibError(f"MUSE corpus or folder {source!r}; allowed: {', '.join(CORPORA)} (the hub datasets) or an "
                        "existing folder with raw/, verbmem/, knowmem/, privleak/")


def _file(folder: Path, config: str, split: str) -> Path | None:
    for suffix in ((".txt", ".json") if config == "raw" else (".json",)):
        if (folder / config / f"{split}{suffix}").is_file():
            return folder / config / f"{split}{suffix}"
    return None


def check_folder(folder: str | Path) -> Path:
    """Raise a PaperlibError naming the first config folder (or file) missing from a local MUSE folder."""
    folder = Path(folder)
    for config in CONFIGS:
        if not (folder / config).is_dir():
            raise PaperlibError(f"MUSE folder {folder} has no {config}/ config; allowed: a folder with "
                                f"{', '.join(c + '/' for c in CONFIGS)} in MUSE's layout")
    for config, splits in CONFIGS.items():
        for split in splits:
            if _file(folder, config, split) is None:
                ext = ".txt or .json" if config == "raw" else ".json"
                raise PaperlibError(f"MUSE folder {folder} lacks {config}/{split}{ext}; allowed: MUSE's layout "
                                    f"({config}: {', '.join(splits)})")
    return folder


def _check_rows(rows: object, config: str, where: str) -> list:
    if not isinstance(rows, list):
        raise PaperlibError(f"{where} is not a JSON list; allowed: a list of "
                            f"{'strings' if config not in FIELDS else 'objects with ' + ', '.join(FIELDS[config])}")
    if config in FIELDS:
        for i, r in enumerate(rows):
            if not isinstance(r, dict) or any(not isinstance(r.get(f), str) for f in FIELDS[config]):
                raise PaperlibError(f"{where} item {i} lacks string fields {FIELDS[config]}")
        return [{f: r[f] for f in FIELDS[config]} for r in rows]
    if any(not isinstance(t, str) for t in rows):
        raise PaperlibError(f"{where} holds a non-string item; allowed: a list of strings")
    return rows


def load(source: str, config: str, split: str) -> list:
    """One split of one config: raw / privleak -> list of texts; verbmem / knowmem -> list of dicts."""
    if config not in CONFIGS or split not in CONFIGS[config]:
        allowed = ", ".join(f"{c}/{s}" for c, ss in CONFIGS.items() for s in ss)
        raise PaperlibError(f"MUSE split {config}/{split}; allowed: {allowed}")
    source = resolve_source(source)
    folder = Path(source)
    if folder.is_dir():
        path = _file(folder, config, split)
        if path.suffix == ".txt":
            return [t.strip() for t in path.read_text().split(TEXT_SEPARATOR) if t.strip()]
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise PaperlibError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
        return _check_rows(rows, config, str(path))
    from paperlib.engine import hub

    ds = hub.load_dataset(source, config, split=split, what="MUSE", local="--source DIR (a local copy)")
    rows = list(ds["text"]) if config not in FIELDS else ds.to_list()
    return _check_rows(rows, config, f"{source} {config}/{split}")


@dataclass(frozen=True)
class MuseData:
    """Every MUSE split the evaluation and unlearning read."""

    raw: dict[str, list[str]]
    verbmem: list[dict]
    knowmem: dict[str, list[dict]]
    privleak: dict[str, list[str]]


def load_all(source: str) -> MuseData:
    """All of MUSE's evaluation and training splits from a corpus name, hub id or local folder."""
    return MuseData(raw={s: load(source, "raw", s) for s in CONFIGS["raw"]},
                    verbmem=load(source, "verbmem", "forget"),
                    knowmem={s: load(source, "knowmem", s) for s in CONFIGS["knowmem"]},
                    privleak={s: load(source, "privleak", s) for s in CONFIGS["privleak"]})


def write(data: dict[str, dict[str, list]], out_dir: str | Path) -> Path:
    """Write {config: {split: rows}} in MUSE's local layout (raw texts as .txt joined by a blank line)."""
    out = Path(out_dir)
    for config, splits in data.items():
        (out / config).mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            if config == "raw":
                if any(TEXT_SEPARATOR in t for t in rows):
                    raise PaperlibError(f"raw/{split}: a text holds a blank line (MUSE's .txt separator)")
                (out / config / f"{split}.txt").write_text(TEXT_SEPARATOR.join(rows) + "\n")
            else:
                (out / config / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    return out
