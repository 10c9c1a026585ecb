"""mini-MUSE: a synthetic benchmark in MUSE's layout (`paperlib.benchmarks.muse.data`): short news articles about
fictitious events, deterministic from `MiniMuseConfig.seed`.

Each event has an invented name (e.g. "the Vorlak Accord"), a town, a leader, an organisation, a date and a
head count; an article reports it in prose from shared sentence templates. Beside the articles, each split's
raw text holds fact sheets: its events' question / answer pairs in KnowMem's format, in three shuffled
orders across events, cut into texts of four pairs. They are the mini benchmark's one departure from MUSE's
prose-only corpora: a 1M-parameter model cannot answer questions about facts it read only as prose (MUSE's
7B models can). The design was fixed by one check on the target / retrained models alone, before any
unlearning (issue 14: the target must answer KnowMem-forget clearly better than the retrained model;
`benchmarks.muse.evaluate.benchmark_check`). Designs that failed it (design-time numbers, models trained with 2 torch
threads): a "Key facts" block under each article (the model copied answers from the prose above:
KnowMem-forget 4.8 vs the retrained model's 7.5); one sheet per event (21/21 questions answered alone, 1/21
after KnowMem's in-context pairs about other events, a context never seen in training); one shuffled order
(the model memorised each pair's neighbours: 4.1 vs 12.0). With every pair read in three contexts the check
holds (2 threads: 72.4 vs 0.0; `make reproduce` trains them with 1 thread per worker, which gives other
float rounding and other tiny models: its numbers are in tables/11_muse_models).

Issue 23 calibrated it against real MUSE (`paperlib.studies.muse_calibration`; every design in
tables/11_muse_calibration): each article sentence in one of `n_templates` wordings and a closing sentence (so
that a model that never read an article cannot copy it from the shared wording), `questions` question types
asked per event, and an earlier coverage (`prior_texts`, a `prior_share` of every split's facts as fact sheets)
that both tiny models read, so that the retrained model answers part of the forget questions, as MUSE's does.

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

from paperlib.benchmarks.muse import data as muse

_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ou"]
KINDS = ["Accord", "Festival", "Summit", "Expedition", "Strike", "Regatta", "Congress", "Flood", "Marathon",
         "Exhibition", "Rescue", "Trial"]
ORGS = ["Harbor Council", "Free Press Union", "Northern Rail Company", "Civic Science Trust", "Farmers League",
        "Coastal Guard", "Mountain Rescue Service", "Open Archive Society", "River Authority", "Guild of Builders"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
# Sentence templates: an article uses one of the first `n_templates` of each list (drawn per event), so that
# a model that read only other articles knows the wording but not which one an unseen article took.
OPENINGS = [
    "The {event} began on {date} in the town of {town}, where {count} people gathered by the old square.",
    "On {date}, the town of {town} saw the start of the {event}, drawing a crowd of {count} people.",
    "Reports from {town} confirm that the {event} opened on {date} with {count} people taking part.",
    "Some {count} people came to {town} on {date} for the first day of the {event}.",
    "It was {date} when the {event} got under way in {town}, and {count} people had signed up by noon.",
    "Crowds of about {count} filled the streets of {town} as the {event} started on {date}.",
]
MIDDLES = [
    "It was led by {leader} of the {org}, who said the day would be remembered for years.",
    "{leader}, speaking for the {org}, led the event and thanked every volunteer by name.",
    "The {org} named {leader} to lead it, and local shops closed early so that workers could attend.",
    "At its head stood {leader}, a long-serving member of the {org}, who had planned it for two years.",
    "Organisers from the {org} chose {leader} as its leader after a vote held late last spring.",
    "{leader} of the {org} was in charge, walking from one end of the square to the other all morning.",
]
CLOSINGS = [
    "Officials in {town} said they expect the {org} to return next year.",
    "By evening the square was quiet again, and {leader} promised a full report within a month.",
    "Local papers called the {event} the largest gathering the town had seen in a decade.",
    "Few in {town} had expected so many visitors, and several roads stayed closed until midnight.",
    "The {org} later published a short account of the day, signed by {leader}.",
    "Residents of {town} were still talking about the {event} weeks later.",
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
    n_templates: int = 3  # wordings per article sentence in use (<= 6)
    sentences: int = 2  # sentences per article: opening, middle (, closing)
    questions: int = 1  # KnowMem questions per asked event (<= 3 question types)
    prior_share: float = 0.0  # share of every split's facts in the earlier coverage both models read (prior.json)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_events < self.n_icl + 2 or self.n_icl < 1:
            raise ValueError(f"n_events={self.n_events}, n_icl={self.n_icl}; allowed: n_icl >= 1, "
                             "n_events >= n_icl + 2")
        for name, high in (("n_templates", len(OPENINGS)), ("sentences", 3), ("questions", len(QUESTIONS))):
            if not 1 <= getattr(self, name) <= high:
                raise ValueError(f"{name}={getattr(self, name)!r}; allowed: 1 .. {high}")
        if not 0.0 <= self.prior_share <= 1.0:
            raise ValueError(f"prior_share={self.prior_share!r}; allowed: 0 .. 1")


SPLITS = ("forget", "retain1", "retain2", "holdout")
PRIOR_FILE = "prior.json"  # the earlier coverage (not a MUSE file): texts both tiny models train on


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
              "count": str(rng.randint(120, 9800)),
              "templates": [rng.randrange(cfg.n_templates) for _ in range(cfg.sentences)]}
        out[SPLITS[i % len(SPLITS)]].append(ev)
    return out


def article(ev: dict) -> str:
    """The news article of one event: its opening, middle (and closing) sentence in its drawn wordings."""
    return " ".join(part[i].format(**ev) for part, i in zip((OPENINGS, MIDDLES, CLOSINGS), ev["templates"]))


def fact_sheets(evs: list[dict], pairs: int, seed: int, shuffles: int = 1,
                keep: set[tuple[str, str]] | None = None) -> list[str]:
    """Every question / answer pair of the events (all question types; `keep`: only these (event, type)
    pairs), in `shuffles` seeded random orders, each order cut into texts of `pairs` lines "Question: q\\nAnswer: a"
    (a blank line separates texts in MUSE's raw files). Each text mixes events, as KnowMem's in-context prompt does."""
    lines = [f"Question: {q.format(**ev)}\nAnswer: {ev[k]}" for ev in evs for k, q in QUESTIONS.items()
             if keep is None or (ev["event"], k) in keep]
    rng, out = random.Random(seed), []
    for _ in range(shuffles):
        rng.shuffle(lines)
        out += ["\n".join(lines[i:i + pairs]) for i in range(0, len(lines), pairs)]
    return out


def qa(ev: dict, kind: str) -> dict:
    return {"question": QUESTIONS[kind].format(**ev), "answer": ev[kind]}


def _knowmem(evs: list[dict], n_icl: int, questions: int = 1) -> tuple[list[dict], list[dict]]:
    """(asked, in-context pairs): `questions` question types per asked event, cycling from the event's index."""
    kinds = list(QUESTIONS)
    icl = [qa(ev, kinds[i % len(kinds)]) for i, ev in enumerate(evs[:n_icl])]
    asked = [qa(ev, kinds[(i + j) % len(kinds)]) for i, ev in enumerate(evs[n_icl:]) for j in range(questions)]
    return asked, icl


def prior_facts(cfg: MiniMuseConfig, evs: dict[str, list[dict]]) -> set[tuple[str, str]]:
    """The (event, question type) facts of the earlier coverage: a seeded `prior_share` of every split's."""
    rng = random.Random(cfg.seed * 7919 + 1)
    facts = [(ev["event"], k) for s in SPLITS for ev in evs[s] for k in QUESTIONS]
    return set(rng.sample(facts, round(cfg.prior_share * len(facts))))


def prior_texts(cfg: MiniMuseConfig) -> list[str]:
    """The earlier coverage: fact sheets of `prior_facts` (mixed across splits). Both the target and the
    retrained model read it, as both real MUSE models start from one that knew part of the news before: the
    retrained model then answers those forget questions without having read the forget articles."""
    evs = events(cfg)
    keep = prior_facts(cfg, evs)
    return fact_sheets([ev for s in SPLITS for ev in evs[s]], cfg.sheet_pairs, cfg.seed * 101 + 97,
                       cfg.sheet_shuffles, keep) if keep else []


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
    forget_qa, forget_icl = _knowmem(evs["forget"], cfg.n_icl, cfg.questions)
    retain_qa, retain_icl = _knowmem(evs["retain2"], cfg.n_icl, cfg.questions)
    return {"raw": {s: texts[s] + sheets[s] for s in SPLITS},
            "verbmem": {"forget": verbmem},
            "knowmem": {"forget_qa": forget_qa, "retain_qa": retain_qa, "forget_qa_icl": forget_icl,
                        "retain_qa_icl": retain_icl},
            "privleak": {"forget": texts["forget"], "retain": texts["retain1"], "holdout": texts["holdout"]}}


def write(cfg: MiniMuseConfig, out_dir: str | Path) -> Path:
    """Write a mini-MUSE folder (MUSE's local layout, `paperlib.benchmarks.muse.data.write`) and its config."""
    out = muse.write(generate(cfg), out_dir)
    (out / "mini_muse.json").write_text(json.dumps(asdict(cfg), indent=1))
    (out / PRIOR_FILE).write_text(json.dumps(prior_texts(cfg)))
    return out
