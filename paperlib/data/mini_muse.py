"""mini-MUSE: a synthetic benchmark in MUSE's layout (`paperlib.data.muse`): short news articles about
fictitious events, deterministic from `MiniMuseConfig.seed`.

Each event has an invented name (e.g. "the Vorlak Accord"), a town, a leader, an organisation, a date and a
head count; an article reports it in prose from shared sentence templates. Beside the articles, each split's
raw text holds fact sheets: its events' question / answer pairs in KnowMem's format, in three shuffled
orders across events, cut into texts of four pairs. They are the mini benchmark's one departure from MUSE's
prose-only corpora: a 1M-parameter model cannot answer questions about facts it read only as prose (MUSE's
7B models can). The design was fixed by one check on the target / retrained models alone, before any
unlearning (issue 14: the target must answer KnowMem-forget clearly better than the retrained model;
`paperlib.muse.benchmark_check`). Designs that failed it (design-time numbers, models trained with 2 torch
threads): a "Key facts" block under each article (the model copied answers from the prose above:
KnowMem-forget 4.8 vs the retrained model's 7.5); one sheet per event (21/21 questions answered alone, 1/21
after KnowMem's in-context pairs about other events, a context never seen in training); one shuffled order
(the model memorised each pair's neighbours: 4.1 vs 12.0). With every pair read in three contexts the check
holds (2 threads: 72.4 vs 0.0; `make reproduce` trains them with 1 thread per worker, which gives other
float rounding and other tiny models: its numbers are in tables/11_muse_models).

Splits (events): forget, retain1, retain2, holdout (never trained on); raw/<split> = its articles, then its
fact sheets. Evaluation sets, as MUSE's:
- verbmem/forget: the first `prompt_words` words of each forget article and its next `gt_words` words;
- knowmem/forget_qa and retain_qa (about retain2 events): one question per event (its question type
  cycles), and `n_icl` in-context pairs from events of the same split that the evaluation does not ask;
- privleak/forget, retain, holdout: the articles of the forget, retain1 and holdout events.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from paperlib.data import muse

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
KINDS = ["Accord", "Festival", "Summit", "Expedition", "Strike", "Regatta", "Congress", "Flood", "Marathon",
         "Exhibition", "Rescue", "Trial"]
ORGS = ["Harbor Council", "Free Press Union", "Northern Rail Company", "Civic Science Trust", "Farmers League",
        "Coastal Guard", "Mountain Rescue Service", "Open Archive Society", "River Authority", "Guild of Builders"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
OPENINGS = [
    "The {event} began on {date} in the town of {town}, where {count} people gathered by the old square.",
    "On {date}, the town of {town} saw the start of the {event}, drawing a crowd of {count} people.",
    "Reports from {town} confirm that the {event} opened on {date} with {count} people taking part.",
]
MIDDLES = [
    "It was led by {leader} of the {org}, who said the day would be remembered for years.",
    "{leader}, speaking for the {org}, led the event and thanked every volunteer by name.",
    "The {org} named {leader} to lead it, and local shops closed early so that workers could attend.",
]
QUESTIONS = {
    "town": "In which town did the {event} take place?",
    "leader": "Who led the {event}?",
    "org": "Which organisation was behind the {event}?",
}


@dataclass(frozen=True)
class MiniMuseConfig:
    """Size and seed of a mini-MUSE benchmark (events per split, evaluation excerpt lengths in words)."""

    n_events: int = 24  # per split: forget, retain1, retain2, holdout
    prompt_words: int = 10  # verbmem prompt
    gt_words: int = 16  # verbmem true continuation
    n_icl: int = 3  # in-context QA pairs of KnowMem
    sheet_pairs: int = 4  # question / answer pairs per fact-sheet text
    sheet_shuffles: int = 3  # orders in which every pair appears (each pair read in that many contexts)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_events < self.n_icl + 2 or self.n_icl < 1:
            raise ValueError(f"n_events={self.n_events}, n_icl={self.n_icl}; allowed: n_icl >= 1, "
                             "n_events >= n_icl + 2")


SPLITS = ("forget", "retain1", "retain2", "holdout")


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)).capitalize()


def events(cfg: MiniMuseConfig) -> dict[str, list[dict]]:
    """{split: [event attributes]}, every event name, town and leader distinct."""
    rng = random.Random(cfg.seed)
    n = cfg.n_events * len(SPLITS)
    names: dict[str, None] = {}
    while len(names) < n:
        names.setdefault(f"{_word(rng, 2)} {rng.choice(KINDS)}", None)
    towns: dict[str, None] = {}
    while len(towns) < n:
        towns.setdefault(_word(rng, rng.choice((2, 3))), None)
    leaders: dict[str, None] = {}
    while len(leaders) < n:
        leaders.setdefault(f"{_word(rng, 2)} {_word(rng, 2)}", None)
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for i, (name, town, leader) in enumerate(zip(names, towns, leaders)):
        ev = {"event": f"{name}", "town": town, "leader": leader, "org": rng.choice(ORGS),
              "date": f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(1990, 2019)}",
              "count": str(rng.randint(120, 9800)), "templates": [rng.randrange(3) for _ in range(2)]}
        out[SPLITS[i % len(SPLITS)]].append(ev)
    return out


def article(ev: dict) -> str:
    """The news article of one event: two prose sentences."""
    a, b = ev["templates"]
    return " ".join(t.format(**ev) for t in (OPENINGS[a], MIDDLES[b]))


def fact_sheets(evs: list[dict], pairs: int, seed: int, shuffles: int = 1) -> list[str]:
    """Every question / answer pair of the events (all question types), in `shuffles` seeded random orders,
    each order cut into texts of `pairs` lines "Question: q\\nAnswer: a" (one pair per line: a blank line
    separates texts in MUSE's raw files). Each text mixes events, as KnowMem's in-context prompt does."""
    lines = [f"Question: {q.format(**ev)}\nAnswer: {ev[k]}" for ev in evs for k, q in QUESTIONS.items()]
    rng, out = random.Random(seed), []
    for _ in range(shuffles):
        rng.shuffle(lines)
        out += ["\n".join(lines[i:i + pairs]) for i in range(0, len(lines), pairs)]
    return out


def qa(ev: dict, kind: str) -> dict:
    return {"question": QUESTIONS[kind].format(**ev), "answer": ev[kind]}


def _knowmem(evs: list[dict], n_icl: int) -> tuple[list[dict], list[dict]]:
    kinds = list(QUESTIONS)
    icl = [qa(ev, kinds[i % len(kinds)]) for i, ev in enumerate(evs[:n_icl])]
    asked = [qa(ev, kinds[i % len(kinds)]) for i, ev in enumerate(evs[n_icl:])]
    return asked, icl


def generate(cfg: MiniMuseConfig) -> dict[str, dict[str, list]]:
    """{config: {split: rows}} in MUSE's layout."""
    evs = events(cfg)
    texts = {s: [article(ev) for ev in evs[s]] for s in SPLITS}
    sheets = {s: fact_sheets(evs[s], cfg.sheet_pairs, cfg.seed * 101 + i, cfg.sheet_shuffles)
              for i, s in enumerate(SPLITS)}
    verbmem = []
    for t in texts["forget"]:
        words = t.split(" ")
        verbmem.append({"prompt": " ".join(words[:cfg.prompt_words]),
                        "gt": " ".join(words[cfg.prompt_words:cfg.prompt_words + cfg.gt_words])})
    forget_qa, forget_icl = _knowmem(evs["forget"], cfg.n_icl)
    retain_qa, retain_icl = _knowmem(evs["retain2"], cfg.n_icl)
    return {"raw": {s: texts[s] + sheets[s] for s in SPLITS},
            "verbmem": {"forget": verbmem},
            "knowmem": {"forget_qa": forget_qa, "retain_qa": retain_qa, "forget_qa_icl": forget_icl,
                        "retain_qa_icl": retain_icl},
            "privleak": {"forget": texts["forget"], "retain": texts["retain1"], "holdout": texts["holdout"]}}


def write(cfg: MiniMuseConfig, out_dir: str | Path) -> Path:
    """Write a mini-MUSE folder (MUSE's local layout, `paperlib.data.muse.write`) and its config."""
    out = muse.write(generate(cfg), out_dir)
    (out / "mini_muse.json").write_text(json.dumps(asdict(cfg), indent=1))
    return out
