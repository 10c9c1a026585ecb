"""RWKU (Jin et al. 2024, arXiv 2406.10890) per target: the hub dataset `jinzhuoran/RWKU` by config name, or a
local folder in the RWKU repository's layout (also what `paperlib.benchmarks.rwku.mini` writes).

Local layout: one folder per target, `<root>/Target/{i}_{Name_with_underscores}/` (or `<root>/{i}_{Name}/`),
holding JSON lists: forget_level{1,2,3}.json, neighbor_level{1,2}.json, forget_mia.json, retain_mia.json,
retain_mmlu.json, fluency.json, passage.json (and more files RWKU ships, unused here). A target is named by
its name ("Stephen King") or its folder name ("1_Stephen_King").

Hub: every part is a config (`HUB_CONFIGS`; probes and MIA texts split "test", passages split "train") whose
records are selected by their `subject` (= the target's name); utility sets without `subject` are shared.

`load_target(source, target)` returns {part: list of records} for every part of `PARTS`; a target not in the
benchmark or a missing probe level is one `PaperlibError` before any model is loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from paperlib.engine import encoding
from paperlib.engine.errors import PaperlibError

PROBES = ("forget_level1", "forget_level2", "forget_level3", "neighbor_level1", "neighbor_level2")
PARTS = (*PROBES, "forget_mia", "retain_mia", "mmlu", "fluency", "passage")
FILES = {**{p: f"{p}.json" for p in PROBES}, "forget_mia": "forget_mia.json", "retain_mia": "retain_mia.json",
         "mmlu": "retain_mmlu.json", "fluency": "fluency.json", "passage": "passage.json"}
HUB_ID = "jinzhuoran/RWKU"
HUB_CONFIGS = {**{p: p for p in PROBES}, "forget_mia": "mia_forget", "retain_mia": "mia_retain",
               "mmlu": "utility_general", "fluency": "utility_fluency", "passage": "train_original_passage"}
OPTIONAL = ("mmlu", "fluency", "passage")  # utility / training files: empty when a copy lacks them
_FOLDER = re.compile(r"^(\d+)_(.+)$")
# RWKU's prompts (src/llmtuner/eval): a user turn, then a literal suffix on the assistant side
FB_PROMPT = "Please complete the blank in the following question.\nQuestion: {query}\n"
QA_PROMPT = "Please briefly answer the following question.\nQuestion: {query}\n"
AFFIRMATIVE_PROMPT = "Please briefly answer the following question.\nQuestion: {query}"
ICL_PROMPT = "Please briefly answer the following question.\n{query}\n"
ANSWER_SUFFIX = "Answer:"
FLUENCY_PROMPT = "Instruction: {instruction}\n"
AFFIRMATIVE, INCONTEXT = "affirmative suffix", "incontext learning"  # the two level-3 types RWKU special-cases
MCQ_LETTERS = ("A", "B", "C", "D")


def probe_prompt(record: Mapping) -> tuple[str, str]:
    """(user message, assistant-side suffix) of one probe record (`query`, `level`, level 3 also `type`)."""
    level, query = str(record["level"]), record["query"]
    if level == "1":
        return FB_PROMPT.format(query=query), ANSWER_SUFFIX
    kind = record.get("type", "") if level == "3" else ""
    if kind == AFFIRMATIVE:
        return AFFIRMATIVE_PROMPT.format(query=query), ""
    if kind == INCONTEXT:
        return ICL_PROMPT.format(query=query), ANSWER_SUFFIX
    return QA_PROMPT.format(query=query), ANSWER_SUFFIX


def chat_prompt(template: str, tokenizer, user: str, suffix: str = "") -> str:
    """`user` as the user turn of the template (chat templates: no system turn, generation prompt added), then
    `suffix` verbatim on the assistant side."""
    if template in encoding.CHAT_TEMPLATES:
        head = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
    else:
        head = encoding.render_prompt(template, tokenizer, user)
    return head + suffix


def mcq_block(record: Mapping, answer: bool) -> str:
    """One multiple-choice item: question, options "A. ..", then "Answer: X" (with `answer`) or "Answer:"."""
    lines = [record["question"], *(f"{letter}. {c}" for letter, c in zip(MCQ_LETTERS, record["choices"]))]
    tail = f"Answer: {MCQ_LETTERS[int(record['answer'])]}" if answer else ANSWER_SUFFIX
    return "\n".join([*lines, tail])


def mcq_prompt(record: Mapping, shots: int) -> tuple[str, str]:
    """(user message, suffix) of an MMLU-style item: the header, `shots` solved items of `record["examples"]`,
    then the item itself; the assistant side starts with "Answer:" (the next token is the letter)."""
    task = record.get("task", "")
    head = f"The following are multiple choice questions (with answers){' about ' + task if task else ''}.\n\n"
    solved = [mcq_block(ex, answer=True) + "\n\n" for ex in list(record.get("examples", []))[:shots]]
    body = mcq_block(record, answer=False)
    return head + "".join(solved) + body.removesuffix(ANSWER_SUFFIX).rstrip("\n"), ANSWER_SUFFIX


def folder_name(index: int, name: str) -> str:
    """RWKU's target folder name: "{i}_{Name_with_underscores}" (commas kept)."""
    return f"{index}_{name.replace(' ', '_')}"


def _target_root(source: Path) -> Path:
    return source / "Target" if (source / "Target").is_dir() else source


def local_targets(source: str | Path) -> dict[str, Path]:
    """{target name: its folder} of a local copy, in RWKU's index order."""
    root = _target_root(Path(source))
    found = []
    for d in root.iterdir() if root.is_dir() else ():
        m = _FOLDER.match(d.name)
        if d.is_dir() and m:
            found.append((int(m[1]), m[2].replace("_", " "), d))
    return {name: d for _, name, d in sorted(found)}


def is_local(source: str | Path) -> bool:
    return Path(source).is_dir()


@lru_cache(maxsize=32)
def _hub(config: str, split: str):
    from paperlib.engine import hub

    return hub.load_dataset(HUB_ID, config, split=split, what="RWKU", local="--source DIR (a local copy)")


def _hub_split(part: str) -> str:
    return "train" if part == "passage" else "test"


def targets(source: str | Path) -> list[str]:
    """Target names of the benchmark at `source` (a local folder or the hub id)."""
    if is_local(source):
        return list(local_targets(source))
    return sorted({r["subject"] for r in _hub(HUB_CONFIGS["forget_level1"], "test")})


def _resolve_target(source: str | Path, target: str) -> tuple[str, Path | None]:
    names = targets(source)
    if is_local(source):
        folders = local_targets(source)
        by_folder = {d.name: n for n, d in folders.items()}
        if target in by_folder:
            target = by_folder[target]
        if target in folders:
            return target, folders[target]
    elif target in names:
        return target, None
    shown = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
    raise PaperlibError(f"RWKU target {target!r} is not in the benchmark at {str(source)!r}; allowed: one of its "
                        f"{len(names)} targets ({shown or 'none found'})")


def _read(path: Path) -> list[dict]:
    try:
        records = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PaperlibError(f"{path} is not valid JSON ({err}); allowed: a JSON list of records") from None
    if not isinstance(records, list):
        raise PaperlibError(f"{path} holds {type(records).__name__}; allowed: a JSON list of records")
    return records


def load_target(source: str | Path, target: str) -> dict[str, Any]:
    """Every part (`PARTS`) of one RWKU target from a local folder or the hub (and "target": its name). A probe
    level or MIA set that is missing or empty is an error; utility and passage files may be absent (empty)."""
    name, folder = _resolve_target(source, target)
    data: dict[str, Any] = {}
    for part in PARTS:
        if folder is not None:
            path = folder / FILES[part]
            records = _read(path) if path.is_file() else []
        else:
            ds = _hub(HUB_CONFIGS[part], _hub_split(part))
            records = [dict(r) for r in ds if r.get("subject", name) == name]
        if not records and part not in OPTIONAL:
            where = f"{folder / FILES[part]}" if folder is not None else f"hub {HUB_ID} config {HUB_CONFIGS[part]}"
            raise PaperlibError(f"RWKU target {name!r}: {part} is missing or empty ({where}); allowed: a target with "
                                f"every probe level and MIA set ({', '.join(p for p in PARTS if p not in OPTIONAL)})")
        data[part] = records
    for part in PROBES:
        level = part[-1]
        bad = [i for i, r in enumerate(data[part]) if str(r.get("level", level)) != level
               or not r.get("query") or not r.get("answer")]
        if bad:
            raise PaperlibError(f"RWKU target {name!r}: {part} record {bad[0]} lacks a query or answer or is not "
                                f"level {level}; allowed: records with query, answer, level {level!r}")
        for r in data[part]:
            r["level"] = str(r.get("level", level))
    data["target"] = name
    return data
