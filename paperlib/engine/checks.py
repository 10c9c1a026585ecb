"""Up-front checks of user inputs (files, folders, logs), each failing with one `PaperlibError` line that says
what was given and what is allowed, before any model is loaded. docs/errors.md lists them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from paperlib.engine.errors import PaperlibError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer.tiktoken", "spiece.model")
# what a reference (retain-model) log needs for forget_quality
REFERENCE_METRICS = ("forget_Q_A_PARA_Prob", "forget_Q_A_PERT_Prob")


def _local(path: str | Path, what: str) -> Path | None:
    """The folder `path`, or None for a hub id; raises for a path that does not exist."""
    p = Path(path)
    if p.exists():
        return p
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/")):
        return None
    raise PaperlibError(f"{what} {str(path)!r} does not exist and is not a hub id (org/name); allowed: a "
                        "checkpoint folder written by save_pretrained, or a hub id")


def check_model_dir(path: str | Path, tokenizer: bool = True) -> None:
    """A checkpoint folder needs config.json, weights and (with `tokenizer`) tokenizer files."""
    p = _local(path, "model")
    if p is None:
        return
    if not p.is_dir():
        raise PaperlibError(f"model {p} is a file; allowed: a checkpoint folder (config.json, weights, tokenizer)")
    if not (p / "config.json").is_file():
        raise PaperlibError(f"model folder {p} has no config.json; allowed: a checkpoint folder written by "
                            "save_pretrained")
    if not any(f.suffix in WEIGHT_SUFFIXES for f in p.iterdir() if f.is_file()):
        raise PaperlibError(f"model folder {p} holds no weights (*.safetensors / *.bin); allowed: a checkpoint "
                            "folder written by save_pretrained")
    if tokenizer:
        check_tokenizer_dir(p)


def check_tokenizer_dir(path: str | Path) -> None:
    """A tokenizer folder needs one of `TOKENIZER_FILES` (else transformers blames sentencepiece/tiktoken)."""
    p = _local(path, "tokenizer")
    if p is None:
        return
    if not p.is_dir() or not any((p / n).is_file() for n in TOKENIZER_FILES):
        raise PaperlibError(f"model folder {p} has no tokenizer ({', '.join(TOKENIZER_FILES)}); allowed: a "
                            "checkpoint folder saved with its tokenizer (tokenizer.save_pretrained)")


def load_eval_log(path: str | Path, name: str = "retain log", reference: bool = True) -> dict:
    """An open-unlearning TOFU_EVAL.json (file or folder holding it), checked: valid JSON, the log schema
    (not a TOFU_SUMMARY.json), and with `reference` the per-sample metrics forget_quality needs."""
    from paperlib.benchmarks.tofu.metrics import validate_tofu_log

    p = Path(path)
    p = p / "TOFU_EVAL.json" if p.is_dir() else p
    if not p.is_file():
        raise PaperlibError(f"{name} {path}: no TOFU_EVAL.json there; allowed: an open-unlearning TOFU_EVAL.json "
                            "file or the folder holding it")
    try:
        log = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise PaperlibError(f"{name} {p} is not valid JSON ({err}); allowed: an open-unlearning "
                            "TOFU_EVAL.json") from None
    try:
        validate_tofu_log(log, f"{name} {p}")
    except PaperlibError:
        raise
    except ValueError as err:
        raise PaperlibError(str(err)) from None
    if reference:
        missing = [m for m in REFERENCE_METRICS if m not in log]
        if missing:
            raise PaperlibError(f"{name} {p} lacks {missing}, needed for forget_quality; allowed: a full "
                                "open-unlearning TOFU_EVAL.json of the retain model")
    return log


def _words(text: str) -> str:
    return " ".join(str(text).split())


def check_log_split(log: dict, rows: list[dict], forget: str, name: str = "retain log") -> None:
    """The log must be of the forget split `forget` (`rows`): same number of forget samples and, where the log
    has them, the same ROUGE ground-truth answers and questions (each row's question, whitespace aside, must
    occur in the prompt the log records as `input`, whatever chat template wrapped it)."""
    para = log.get("forget_Q_A_PARA_Prob", {}).get("value_by_index") or {}
    if para and len(para) != len(rows):
        raise PaperlibError(f"{name} is for another forget split: {len(para)} forget samples, {forget} has "
                            f"{len(rows)}; allowed: the retain model's log of {forget}")
    rouge = log.get("forget_Q_A_ROUGE", {}).get("value_by_index") or {}
    for i, row in rouge.items():
        k = int(i) if str(i).isdigit() else -1
        if row and "ground_truth" in row and (not 0 <= k < len(rows) or row["ground_truth"] != rows[k]["answer"]):
            raise PaperlibError(f"{name} is for another forget split: its forget sample {i} answers "
                                f"{str(row['ground_truth'])[:40]!r}, not {forget}'s; allowed: the retain model's "
                                f"log of {forget}")
        if row and "input" in row and 0 <= k < len(rows) and _words(rows[k]["question"]) not in _words(row["input"]):
            raise PaperlibError(f"{name} is for another forget split: its forget sample {i} asks "
                                f"{_words(row['input'])[-60:]!r}, not {forget}'s {rows[k]['question'][:40]!r}; "
                                f"allowed: the retain model's log of {forget}")


def check_rows(rows: list, what: str) -> list:
    if not rows:
        raise PaperlibError(f"{what} is empty; allowed: a split with at least one question")
    return rows


def check_idk(path: str | Path) -> list[str]:
    """The IdK answers file (or folder holding idontknow.jsonl): present and non-empty."""
    from paperlib.benchmarks.tofu import data as tofu

    p = Path(path)
    f = p / "idontknow.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise PaperlibError(f"idk answers not found at {f}; allowed: a file with one answer a line, or the folder "
                            "holding idontknow.jsonl")
    answers = tofu.load_idk(f)
    if not answers:
        raise PaperlibError(f"idk answers file {f} is empty; allowed: a file with one answer a line")
    return answers


def check_out_file(out: str | Path) -> Path:
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise PaperlibError(f"--out {out} is a file; allowed: a folder (created if missing)")
    return p


def split_rows(source: str | Path, split: str) -> list[dict]:
    """The rows of `split`, refusing an empty split (an empty file of a local folder included) in one line."""
    from paperlib.benchmarks.tofu import data as tofu

    folder = Path(source)
    if folder.is_dir():
        for name in (f"{split}.json", f"{split}.jsonl"):
            f = folder / name
            if f.is_file() and not f.read_text().strip():
                raise PaperlibError(f"{split} set {f} is empty; allowed: a split with at least one question")
    return check_rows(tofu.load_split(source, split).to_list(), f"{split} set of {source}")
