"""Raw text as training samples: token blocks of fixed length, every token a target (MUSE, RWKU).

`encode_texts(tokenizer, texts, block, spans)` tokenises each text on its own (BOS first when the tokenizer
has one, no EOS), cuts its token ids into blocks of `block` tokens with `chunk` (the last, shorter block
kept: no token is lost or duplicated at a block edge, and no block spans two texts) and returns one sample
per block: {"input_ids", "labels" (= input_ids: every token is a target), "sensitive" (True on a token whose
character range overlaps one of the text's sensitive character spans; BOS never)}, plus "text" and "start"
(the text's index and the block's first token position, for tracing a block back to its text).
"""

from __future__ import annotations

from collections.abc import Sequence

from paperlib.engine.encoding import check_spans
from paperlib.engine.errors import PaperlibError

Span = tuple[int, int]


def check_block(block: int) -> None:
    """Raise unless `block` is an int >= 2 (a block of one token has no next-token target)."""
    if isinstance(block, bool) or not isinstance(block, int) or block < 2:
        raise PaperlibError(f"block={block!r}; allowed: an integer >= 2 (tokens per training block)")


def chunk(token_ids: Sequence[int], block: int) -> list[list[int]]:
    """Consecutive blocks of `block` ids; the last block holds the remainder (shorter, never empty).
    Concatenating the blocks gives `token_ids` back exactly; an empty input gives no block."""
    check_block(block)
    ids = list(token_ids)
    return [ids[i:i + block] for i in range(0, len(ids), block)]


def tokenize(tokenizer, text: str, bos: bool = True) -> tuple[list[int], list[Span]]:
    """Token ids of `text` and each token's character range in it ((0, 0) for the BOS added in front)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    if bos and getattr(tokenizer, "bos_token_id", None) is not None:
        ids, offsets = [tokenizer.bos_token_id, *ids], [(0, 0), *offsets]
    return ids, offsets


def sensitive_flags(offsets: Sequence[Span], spans: Sequence[Span]) -> list[bool]:
    """Per token: True when its character range [s, e) overlaps a span [a, b) (empty ranges never do)."""
    return [s < e and any(s < b and a < e for a, b in spans) for s, e in offsets]


def encode_texts(tokenizer, texts: Sequence[str], block: int, spans: Sequence[Sequence[Span]] | None = None,
                 bos: bool = True) -> list[dict]:
    """Samples of `block` tokens from every text (see the module docstring). `spans[i]`: character spans of
    `texts[i]` (checked: 0 <= start < end <= len(text)); None = no sensitive token."""
    check_block(block)
    if isinstance(texts, str):
        raise PaperlibError("texts is one string; allowed: a sequence of strings (one per document)")
    if spans is not None and len(spans) != len(texts):
        raise PaperlibError(f"{len(spans)} span lists for {len(texts)} texts; allowed: one list per text")
    samples = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise PaperlibError(f"text {i} is {type(text).__name__}; allowed: str")
        text_spans = list(spans[i]) if spans is not None else []
        check_spans(text_spans, text, row=i)
        ids, offsets = tokenize(tokenizer, text, bos)
        flags = sensitive_flags(offsets, text_spans)
        for start in range(0, len(ids), block):
            piece = ids[start:start + block]
            samples.append({"input_ids": piece, "labels": list(piece), "sensitive": flags[start:start + block],
                            "text": i, "start": start})
    return samples
