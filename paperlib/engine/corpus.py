"""A raw-text unlearning corpus and the registry of its evaluators (MUSE, RWKU, ...).

`TextCorpus(name, forget, retain, block, forget_spans)`: the forget and retain documents, the training block
length in tokens and, optionally, sensitive character spans of every forget document (PALU needs them; e.g.
from `paperlib.benchmarks.spans`). `digest()` is a sha256 over all of it and is part of an unlearning run's cache key.

An evaluator is a function `(model, tokenizer, profile, eval_args: dict, out_dir: Path | None) -> dict` (the
run's summary: flat name -> number; it writes its logs, e.g. MUSE_EVAL.json, into `out_dir` when given),
registered once with `@register_evaluator("muse")`. `paperlib.engine.unlearn.unlearn_text` calls it after every epoch
with the `eval_args` recorded in the run's cache key (so they must be JSON values), beside the digest of
the evaluator's source (`evaluator_code`: its defining file and the modules named in `code=`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paperlib.engine.encoding import check_spans
from paperlib.engine.errors import PaperlibError
from paperlib.engine.rawtext import check_block

Evaluator = Callable[[Any, Any, Any, dict, "Path | None"], dict]
EVALUATORS: dict[str, Evaluator] = {}


@dataclass(frozen=True)
class EvalCall:
    """A registered evaluator by name and the JSON arguments it is called with (both join a run's cache key)."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
EVALUATOR_CODE: dict[str, tuple[str, ...]] = {}  # name -> further paperlib modules of its code digest


@dataclass(frozen=True)
class TextCorpus:
    """Forget / retain documents of a raw-text benchmark, cut into `block`-token training blocks.
    `forget_spans[i]`: (start, end) character spans of `forget[i]` (None: no span annotation)."""

    name: str
    forget: tuple[str, ...]
    retain: tuple[str, ...]
    block: int
    forget_spans: tuple[tuple[tuple[int, int], ...], ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise PaperlibError(f"TextCorpus name={self.name!r}; allowed: a non-empty string")
        for part in ("forget", "retain"):
            texts = getattr(self, part)
            if isinstance(texts, str) or not isinstance(texts, (tuple, list)):
                raise PaperlibError(f"TextCorpus {part} is {type(texts).__name__}; allowed: a tuple of strings")
            bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t]
            if bad:
                raise PaperlibError(f"TextCorpus {self.name}: {part} document {bad[0]} is empty or not a string; "
                                    "allowed: non-empty strings")
            object.__setattr__(self, part, tuple(texts))
        if not self.forget:
            raise PaperlibError(f"TextCorpus {self.name}: no forget document; allowed: at least one")
        check_block(self.block)
        if self.forget_spans is not None:
            if len(self.forget_spans) != len(self.forget):
                raise PaperlibError(f"TextCorpus {self.name}: {len(self.forget_spans)} span lists for "
                                    f"{len(self.forget)} forget documents; allowed: one list per document")
            spans = tuple(tuple((int(s), int(e)) for s, e in doc) for doc in self.forget_spans)
            for i, (doc, text) in enumerate(zip(spans, self.forget)):
                check_spans(doc, text, row=i)
            object.__setattr__(self, "forget_spans", spans)

    def digest(self) -> str:
        """sha256 (hex) over the name, block, every document and every span."""
        blob = {"name": self.name, "block": self.block, "forget": list(self.forget), "retain": list(self.retain),
                "forget_spans": None if self.forget_spans is None else [list(map(list, d)) for d in self.forget_spans]}
        return hashlib.sha256(json.dumps(blob, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def describe(self) -> dict:
        """A short JSON record (counts, characters, the digest) for a run's config."""
        return {"name": self.name, "block": self.block, "forget_docs": len(self.forget),
                "retain_docs": len(self.retain), "forget_chars": sum(map(len, self.forget)),
                "spans": self.forget_spans is not None, "digest": self.digest()}


def register_evaluator(name: str, code: tuple[str, ...] = ()) -> Callable[[Evaluator], Evaluator]:
    """Decorator: register `fn(model, tokenizer, profile, eval_args, out_dir) -> summary` under `name`.
    `code`: further paperlib modules (as in `paperlib.engine.cache.CODE`, e.g. ("muse_metrics", "data/muse")) whose
    source, with the file defining `fn`, makes the evaluator's code digest (`evaluator_code`, part of a run's
    cache key: an edited metric recomputes). A second function under a taken name is an error."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"evaluator name {name!r}; allowed: a non-empty string")

    def deco(fn: Evaluator) -> Evaluator:
        if name in EVALUATORS and EVALUATORS[name] is not fn:
            raise ValueError(f"evaluator {name!r} is already registered (by {EVALUATORS[name].__qualname__})")
        EVALUATORS[name] = fn
        EVALUATOR_CODE[name] = tuple(code)
        return fn
    return deco


def evaluator_code(name: str) -> str:
    """sha256 (16 hex digits) of the source of evaluator `name`: the file defining it and its `code` modules,
    and (for paperlib's own files) every paperlib module they import (`paperlib.engine.cache.closure`)."""
    from paperlib.engine.cache import PACKAGE, _module_files, closure, source_code

    fn = get_evaluator(name)
    source = Path(inspect.getsourcefile(fn) or "").resolve()
    for module in EVALUATOR_CODE.get(name, ()):
        if not _module_files(module):
            raise ValueError(f"evaluator {name!r}: code module {module!r} not found in paperlib")
    own = (source.relative_to(PACKAGE).with_suffix("").as_posix(),) if source.is_relative_to(PACKAGE) else ()
    files = [source] + [f for m in closure(own + tuple(EVALUATOR_CODE.get(name, ()))) for f in _module_files(m)]
    h = hashlib.sha256()
    for f in dict.fromkeys(files):
        h.update(f"{f.name}\n".encode())
        h.update(source_code(f) if f.is_file() else b"")
    return h.hexdigest()[:16]


def unregister_evaluator(name: str) -> None:
    """Remove evaluator `name` (tests that register a toy evaluator clean up with it)."""
    EVALUATORS.pop(name, None)
    EVALUATOR_CODE.pop(name, None)


def get_evaluator(name: str) -> Evaluator:
    """The evaluator registered as `name` (PaperlibError listing the registered ones otherwise)."""
    if name not in EVALUATORS:
        raise PaperlibError(f"unknown evaluator {name!r}; allowed: {', '.join(sorted(EVALUATORS)) or 'none registered'}"
                            " (register one with paperlib.engine.corpus.register_evaluator)")
    return EVALUATORS[name]
