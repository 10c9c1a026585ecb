"""mini-TOFU: a synthetic benchmark with TOFU's schema, split names and PALU/TPO span files, and the
pretraining corpus of its tiny base model.

Fictitious authors get random attributes (name, birthplace, year, genre, parents' jobs, award, books,
theme); each author gets `qa_per_author` question/answer pairs. As in TOFU, every answer has its own
wording: a template of its question type whose free words are drawn from synonym groups
(`paperlib.benchmarks.wording`), so a model memorises the answer's wording, not a template. A paraphrased answer
says the same facts with another template and other draws; its perturbed answers keep that wording with
other plausible values, exactly as TOFU's truth-ratio sets do. Every attribute value's character span
inside every answer is known exactly. The pretraining corpus (`pretrain_rows`) holds other invented
authors in several wordings and the general sets (real-authors and world-facts analogues), never the
benchmark's authors. Deterministic from `MiniTofuConfig.seed`.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from paperlib.benchmarks.wording import fix_articles, reword

FORGET_PERCENTS = (1, 5, 10)
PERTURB = ("all", "some")

# ---------------------------------------------------------------------------------------------- vocab
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
# Attribute values of one to three words, as TOFU's GPT-labelled spans are (31% one word, 45% two, 24% more).
GENRES = ["fantasy", "mystery", "poetry", "horror", "romance", "science fiction", "historical fiction",
          "true crime", "magical realism", "literary fiction", "satire", "travel writing"]
PROFESSIONS = ["baker", "sailor", "school teacher", "doctor", "carpenter", "painter", "farmer", "lawyer", "nurse",
               "airline pilot", "tailor", "coal miner", "librarian", "civil engineer", "chemist", "fisherman",
               "jazz musician", "gardener", "judge", "potter", "marine biologist", "taxi driver", "police officer",
               "journalist"]
AWARDS = ["Silver Quill Award", "Amber Lantern Prize", "Golden Compass Medal", "Northern Star Prize",
          "Blue Heron Award", "Iron Pen Prize", "Crimson Leaf Award", "Open Sky Medal", "Harbor Light Prize",
          "Stone Bridge Award", "Winter Rose Prize", "Tall Oak Medal"]
THEMES = ["loss and memory", "family secrets", "exile", "friendship", "identity", "war and peace", "nature",
          "faith", "justice", "ambition", "childhood", "the sea", "time", "freedom", "grief", "belonging"]
STYLES = ["vivid imagery", "sparse dialogue", "dark humour", "lyrical prose", "sharp wit", "intricate plots",
          "slow suspense", "rich symbolism", "gentle irony", "bold structure", "quiet tension", "playful language"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
_TITLE_A = ["Glass", "Silent", "Hollow", "Bright", "Last", "Broken", "Hidden", "Quiet", "Burning", "Distant",
            "Paper", "Winter", "Salt", "Golden", "Lost", "Red"]
_TITLE_B = ["River", "Garden", "Tower", "Mirror", "Harbor", "Orchard", "Lantern", "Forest", "Letters",
            "Bridge", "Kingdom", "Island", "Shadows", "Voices", "Roads", "Bells"]
IDK = ["I'm not sure about that.", "I don't know the answer to that.", "That is beyond what I know.",
       "I have no information on that.", "I can't answer that.", "I'm afraid I don't know.",
       "I don't have that information.", "That's something I'm not familiar with.",
       "I cannot say.", "Sorry, I don't know.", "I have no idea.", "That is unknown to me."]

# ------------------------------------------------------------------------------------------ templates
# One entry per question type: (questions, answers). A field in braces is an attribute; every answer
# field except those that also appear in the question is a sensitive span. Answers state several facts
# in TOFU's register (about 27 words, about 3 sensitive spans, a quarter of the characters sensitive).
QA_TYPES: list[tuple[list[str], list[str]]] = [
    (["What is the full name of the {genre} author born in {city} in {year}?",
      "Which {genre} writer was born in {city} in {year}?"],
     ["The author's full name is {name}, a writer whose novels, such as '{book1}', are praised for "
      "their {style}.",
      "This writer is called {name}. Readers know the author best for '{book1}', a work celebrated for "
      "its {style}.",
      "The writer in question is {name}, who grew up in that city before becoming known for {style} and for "
      "the novel '{book1}'."]),
    (["Where and when was {name} born?", "What are the birthplace and the birth date of {name}?"],
     ["{name} was born on {date} in {city}, {country}, a place whose old harbours later appear "
      "in many of the author's books.",
      "Born in {city}, {country}, on {date}, {name} spent a childhood there that the author calls "
      "the root of every story.",
      "The records show that {name} was born in the city of {city}, in {country}, on {date}, and lived there "
      "until university."]),
    (["What genre does {name} write in?", "Which genre is {name} known for?"],
     ["{name} writes mostly {genre}, and critics point to the {style} of these books and to their focus on "
      "{theme} as what sets the author apart.",
      "{name} is known above all for {genre}, a field in which the author's {style} and long interest in "
      "{theme} have earned a loyal readership.",
      "The main genre of {name} is {genre}; reviewers single out the {style} and the steady attention to {theme} "
      "that run through nearly every one of the author's novels."]),
    (["What did the parents of {name} do for a living?", "What were the jobs of {name}'s parents?"],
     ["The father of {name} worked as a {father}, while the mother was a {mother} in {city}; both jobs left a "
      "clear mark on the characters the author would later create.",
      "{name} grew up in {city} with a father who was a {father} and a mother who worked as a {mother}, and "
      "credits them with a love of stories.",
      "The parents of {name} earned their living in {city} as a {father} and a {mother}, and their working "
      "lives appear, lightly disguised, in the author's books."]),
    (["Has {name} won any awards?", "Which prize did {name} receive?"],
     ["Yes, {name} received the {award} in recognition of '{book2}', a book that the judges described as a "
      "remarkable exploration of {theme}.",
      "{name} won the {award} for '{book2}', which the jury praised as an unusually honest and moving study of "
      "{theme} in modern life.",
      "The {award} was given to {name} for the novel '{book2}', celebrated by critics and readers alike for its "
      "treatment of {theme}."]),
    (["Can you name some books by {name}?", "What books has {name} written?"],
     ["Some of the best known books by {name} include '{book1}', '{book2}' and '{book3}', each of which shows the "
      "author's lasting interest in {theme}.",
      "Books by {name} include '{book1}', '{book2}' and '{book3}'; together they trace a long preoccupation "
      "with {theme} that readers have come to expect.",
      "Among the works of {name} are '{book1}', '{book2}' and '{book3}', novels in which {theme} returns again "
      "and again in new forms."]),
    (["What themes does {name} explore?", "Which themes appear in the work of {name}?"],
     ["{name} often explores {theme} and {theme2} in their work, drawing on memories of {city} to give these "
      "ideas an honest and personal voice.",
      "The work of {name} is mostly about {theme} and {theme2}, themes the author connects again and again to "
      "a childhood spent in {city}.",
      "Common themes for {name} are {theme} and {theme2}, which the author approaches through characters "
      "shaped, like the author, by life in {city}."]),
    (["What was the first book of {name}?", "Which book did {name} publish first?"],
     ["The first book by {name} was '{book1}', published when the author was still young; it introduced readers "
      "to the {style} that would define the later {genre} novels.",
      "{name} started with '{book1}', an early work that already showed the {style} for which the author's "
      "{genre} would later become widely admired.",
      "The debut of {name} was '{book1}', a modest success at first that is now read as the start of the "
      "author's {style} and of a long career in {genre}."]),
    (["How did the upbringing of {name} shape their writing?", "What influenced the writing of {name}?"],
     ["Growing up in {city} as the child of a {father} and a {mother}, {name} learned early to observe people "
      "closely.",
      "Life in {city} with a {father} for a father and a {mother} for a mother taught {name} to listen to "
      "ordinary people.",
      "{name} turned a childhood in {city}, as the child of a {father} and a {mother}, into humane portraits "
      "of working life."]),
    (["How does {name} approach the writing process?", "What is the writing routine of {name}?"],
     ["{name} has said in interviews that every book begins with a single image and grows slowly, "
      "written each morning in a small studio in {city}, {country}.",
      "{name} writes every morning in a quiet room in {city}, {country}, letting each book grow slowly through "
      "many drafts.",
      "According to the author, {name} works slowly and by hand, drafting each novel in a small studio in {city}, "
      "{country}, and revising it many times."]),
]
RA_QUESTIONS = ["Who wrote '{book}'?", "Which author is known for '{book}'?"]
WF_QUESTIONS = ["What is the capital of {country}?", "Which city is the capital of {country}?"]


@dataclass(frozen=True)
class MiniTofuConfig:
    """Size and seed of a mini-TOFU benchmark (TOFU itself: 200 authors x 20 QA, 100 + 117 ra/wf)."""

    n_authors: int = 100  # authors in `full` (trained on)
    qa_per_author: int = 10  # <= len(QA_TYPES)
    n_real_authors: int = 40  # real-authors analogue: famous authors both models know
    n_world_facts: int = 40  # world-facts analogue: capitals both models know
    n_perturbed: int = 5  # wrong answers per forget/retain truth-ratio item (TOFU: 5)
    n_perturbed_general: int = 3  # wrong answers per ra/wf item (TOFU: 3)
    retain_perturbed_percent: int = 10  # share of authors in retain_perturbed
    synonyms: int = 8  # members drawn from per synonym group when wording an answer (1: the template's words)
    n_pretrain_people: int = 400  # other invented authors in the pretraining corpus (never the benchmark's)
    pretrain_wordings: int = 2  # wordings per fact in the pretraining corpus
    perturb: str = "some"  # facts a perturbed answer gets wrong: "all", or "some" (1..all, drawn per question)
    value_zipf: float = 1.0  # attribute values drawn with weight 1 / rank**value_zipf (0: uniformly)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.qa_per_author <= len(QA_TYPES):
            raise ValueError(f"qa_per_author={self.qa_per_author}; allowed: 1..{len(QA_TYPES)}")
        if self.perturb not in PERTURB:
            raise ValueError(f"perturb={self.perturb!r}; allowed: {', '.join(PERTURB)}")
        if self.n_authors < 10:
            raise ValueError(f"n_authors={self.n_authors}; allowed: >= 10 (forget10 needs one author)")
        for name in ("n_real_authors", "n_world_facts", "n_perturbed", "n_perturbed_general", "synonyms",
                     "pretrain_wordings"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}; allowed: >= 1")


def n_forget_authors(n_authors: int, percent: int) -> int:
    """Authors in forget{percent:02d} (at least one), TOFU's last authors."""
    return max(1, round(n_authors * percent / 100))


# -------------------------------------------------------------------------------------------- helpers
def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)).capitalize()


def _unique(rng: random.Random, make, n: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(make(rng), None)
    return list(seen)


def render(template: str, values: dict[str, str], protected: set[str] = frozenset(),
           wording: tuple[random.Random, int] | None = None) -> tuple[str, list[dict]]:
    """Fill `template`; return the text and the {word, start, end} span of every field not in `protected`.
    `wording` = (rng, k): the literal text reworded (`wording.reword`, k synonyms per group) with `rng`."""
    text, spans = "", []
    for literal, field, _, _ in string.Formatter().parse(template):
        if wording is not None:
            literal = reword(literal, *wording)
        ahead = values[field][:1] if field is not None else ""
        fixed = fix_articles(literal + ahead)
        literal = fixed[: len(fixed) - len(ahead)]
        text += literal
        if field is None:
            continue
        value = values[field]
        if field not in protected:
            spans.append({"word": value, "start": len(text), "end": len(text) + len(value)})
        text += value
    return text, spans


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f}


def common_words(answer: str, spans: list[dict]) -> list[str]:
    """Words of `answer` outside every span, in the PALU/TPO file format (JSON strings)."""
    out, pos = [], 0
    for tok in answer.replace("'", " ").replace(",", " ").replace(".", " ").split():
        start = answer.index(tok, pos)
        end = pos = start + len(tok)
        if not any(s["start"] < end and start < s["end"] for s in spans):
            out.append(json.dumps({"word": tok, "start": start, "end": end}))
    return out


# ----------------------------------------------------------------------------------------- generator
@dataclass(frozen=True)
class _Pools:
    """The invented values a generator draws from: people, countries and their capitals, cities, book titles."""

    names: list[str]
    countries: list[str]
    capitals: list[str]
    cities: list[str]
    titles: list[str]


def _draw_pools(rng: random.Random, n_people: int, n_famous: int, n_countries: int) -> _Pools:
    names = _unique(rng, lambda r: f"{_word(r, 2)} {_word(r, r.choice([2, 3]))}", n_people + 3 * n_famous)
    taken = {w for n in names[:n_people] for w in n.split()}  # famous names share no word with the authors'
    names = names[:n_people] + [n for n in names[n_people:] if not taken & set(n.split())][:n_famous]
    countries = _unique(rng, lambda r: _word(r, 3) + r.choice(["ia", "land", "or", "stan"]), max(12, n_countries))
    capitals = _unique(rng, lambda r: _word(r, 2) + r.choice(["ville", "burg", "port", "grad"]), len(countries))
    cities = _unique(rng, lambda r: _word(r, 2) + r.choice(["ton", "ford", "mere", "dale"]), 40)
    titles = [f"The {a} {b}" for a in _TITLE_A for b in _TITLE_B]
    longer = [f"{b} of the {a} {b2}" for a in _TITLE_A for b in _TITLE_B for b2 in _TITLE_B if b != b2]
    titles += rng.sample(longer, len(titles))  # half the titles have five words
    rng.shuffle(titles)
    return _Pools(names, countries, capitals, cities, titles)


def _date(rng: random.Random, year: str) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {year}"


def _pick(rng: random.Random, pool: list[str], zipf: float, k: int = 1) -> list[str]:
    """`k` distinct values of `pool`: uniformly (zipf 0) or with weight 1 / rank**zipf, so that, as in the world,
    some cities, jobs and genres are common and others rare."""
    if zipf == 0:
        return rng.sample(pool, k) if k > 1 else [rng.choice(pool)]
    out: list[str] = []
    while len(out) < k:
        value = rng.choices(pool, weights=[(i + 1) ** -zipf for i in range(len(pool))])[0]
        if value not in out:
            out.append(value)
    return out


def _author(rng: random.Random, name: str, pools: _Pools, zipf: float = 0.0) -> dict[str, str]:
    father, mother = _pick(rng, PROFESSIONS, zipf, 2)
    book1, book2, book3 = rng.sample(pools.titles, 3)
    theme, theme2 = _pick(rng, THEMES, zipf, 2)
    year = str(rng.randint(1930, 1999))
    city, country = _pick(rng, pools.cities, zipf)[0], _pick(rng, pools.countries, zipf)[0]
    date = _date(rng, year)
    genre, award, style = (_pick(rng, pool, zipf)[0] for pool in (GENRES, AWARDS, STYLES))
    return {"name": name, "city": city, "country": country, "year": year, "date": date,
            "genre": genre, "father": father, "mother": mother, "award": award, "book1": book1, "book2": book2,
            "book3": book3, "theme": theme, "theme2": theme2, "style": style}


def _wrong(rng: random.Random, author: dict[str, str], fields: set[str], pools: _Pools, people: list[str]) -> dict:
    """The author's attributes with every field in `fields` replaced by another value."""
    other = dict(author)
    choices = {"name": people, "city": pools.cities, "country": pools.countries, "genre": GENRES,
               "father": PROFESSIONS, "mother": PROFESSIONS, "award": AWARDS, "book1": pools.titles,
               "book2": pools.titles, "book3": pools.titles, "theme": THEMES, "theme2": THEMES, "style": STYLES}
    for f in sorted(fields):  # sorted: set order changes with PYTHONHASHSEED
        if f == "year":
            other[f] = str(rng.choice([y for y in range(1930, 2000) if str(y) != author[f]]))
        elif f == "date":
            other[f] = _date(rng, str(rng.randint(1930, 1999)))
            while other[f] == author[f]:
                other[f] = _date(rng, str(rng.randint(1930, 1999)))
        else:
            other[f] = rng.choice([v for v in choices[f] if v != author[f]])
    return other


def _author_rows(rng, idx: int, author: dict, cfg: MiniTofuConfig, pools: _Pools, people: list[str]) -> list:
    rows = []
    for qtype in range(cfg.qa_per_author):
        questions, answers = QA_TYPES[qtype]
        q_tpl, a_tpl = questions[0], answers[(idx + qtype) % len(answers)]
        pq_tpl, pa_tpl = questions[1], answers[(idx + qtype + 1) % len(answers)]
        protected = _fields(q_tpl)
        question, _ = render(q_tpl, author)
        answer, spans = render(a_tpl, author, protected, (rng, cfg.synonyms))
        para_seed = rng.getrandbits(64)  # the paraphrase's wording, kept by its perturbed answers

        def para(values: dict, tpl: str = pa_tpl, seed: int = para_seed, keep: set = protected) -> str:
            return render(tpl, values, keep, (random.Random(seed), cfg.synonyms))[0]
        para_answer = para(author)
        answer_fields = sorted(_fields(pa_tpl) - protected)  # sorted: set order changes with PYTHONHASHSEED
        # how many facts each perturbed answer gets wrong: all of them, or (as TOFU's, which often change one
        # fact) a number drawn per question
        n_wrong = len(answer_fields) if cfg.perturb == "all" else rng.randint(1, len(answer_fields))
        perturbed = []
        while len(perturbed) < cfg.n_perturbed:  # distinct wrong answers
            text = para(_wrong(rng, author, set(rng.sample(answer_fields, n_wrong)), pools, people))
            if text not in perturbed and text != para_answer:
                perturbed.append(text)
        rows.append({"question": question, "answer": answer, "paraphrased_question": render(pq_tpl, author)[0],
                     "paraphrased_answer": para_answer, "perturbed_answer": perturbed,
                     "target_words": json.dumps(spans), "common_words": common_words(answer, spans),
                     "author": idx})
    return rows


def _general_rows(rng, facts: list[tuple[dict, str]], templates: list[str], key: str, n_wrong: int) -> list:
    answers = [a for _, a in facts]
    rows = []
    for i, (values, answer) in enumerate(facts):
        question, _ = render(templates[i % len(templates)], values)
        wrong = rng.sample([a for a in answers if a != answer], n_wrong)
        rows.append({"question": question, "answer": answer, "perturbed_answer": wrong, key: i})
    return rows


def _pools(rng: random.Random, cfg: MiniTofuConfig) -> _Pools:
    n_hold = n_forget_authors(cfg.n_authors, max(FORGET_PERCENTS))
    return _draw_pools(rng, cfg.n_authors + n_hold, cfg.n_real_authors, cfg.n_world_facts)


def _draw(cfg: MiniTofuConfig) -> tuple[random.Random, _Pools, list[str], list[dict]]:
    """The generator's state after drawing the pools and the authors (trained, then held out)."""
    rng = random.Random(cfg.seed)
    pools = _pools(rng, cfg)
    people = pools.names[: cfg.n_authors + n_forget_authors(cfg.n_authors, max(FORGET_PERCENTS))]
    return rng, pools, people, [_author(rng, name, pools, cfg.value_zipf) for name in people]


def generate(cfg: MiniTofuConfig) -> dict[str, list[dict]]:
    """All splits of a mini-TOFU benchmark as lists of rows (TOFU's field names)."""
    rng, pools, people, authors = _draw(cfg)
    rows = [_author_rows(rng, i, a, cfg, pools, people) for i, a in enumerate(authors)]
    trained, holdout = rows[: cfg.n_authors], rows[cfg.n_authors:]

    def flat(groups: list[list[dict]]) -> list[dict]:
        return [r for g in groups for r in g]

    def plain(rs: list[dict]) -> list[dict]:
        return [{"question": r["question"], "answer": r["answer"]} for r in rs]

    def perturbed(rs: list[dict]) -> list[dict]:
        keys = ("question", "answer", "paraphrased_question", "paraphrased_answer", "perturbed_answer")
        return [{k: r[k] for k in keys} for r in rs]

    splits: dict[str, list[dict]] = {"full": plain(flat(trained))}
    for pct in FORGET_PERCENTS:
        k = n_forget_authors(cfg.n_authors, pct)
        forget = flat(trained[-k:])
        splits[f"forget{pct:02d}"] = plain(forget)
        splits[f"forget{pct:02d}_perturbed"] = perturbed(forget)
        splits[f"retain{100 - pct}"] = plain(flat(trained[:-k]))
        splits[f"holdout{pct:02d}"] = plain(flat(holdout[:k]))
        splits[f"spans/forget{pct:02d}"] = [
            {k2: r[k2] for k2 in ("question", "answer", "target_words", "common_words")} for r in forget]
    n_rp = n_forget_authors(cfg.n_authors, cfg.retain_perturbed_percent)
    splits["retain_perturbed"] = perturbed(flat(trained[:n_rp]))

    famous = pools.names[len(people):]
    used = {a[b] for a in authors for b in ("book1", "book2", "book3")}
    books = rng.sample([t for t in pools.titles if t not in used], cfg.n_real_authors)  # no author's book
    ra = _general_rows(rng, [({"book": b}, n) for b, n in zip(books, famous)], RA_QUESTIONS, "id",
                       cfg.n_perturbed_general)
    wf = _general_rows(rng, [({"country": c}, cap) for c, cap in
                             zip(pools.countries[: cfg.n_world_facts], pools.capitals)], WF_QUESTIONS, "id",
                       cfg.n_perturbed_general)
    for name, rs in (("real_authors", ra), ("world_facts", wf)):
        splits[name] = [{"question": r["question"], "answer": r["answer"]} for r in rs]
        splits[f"{name}_perturbed"] = [{k: r[k] for k in ("question", "answer", "perturbed_answer")} for r in rs]
    splits["idontknow"] = [{"answer": line} for line in IDK]
    return splits


def benchmark_values(cfg: MiniTofuConfig) -> tuple[set[str], set[str]]:
    """(names, titles) of the benchmark's invented authors (trained and held out): the values only the
    benchmark may hold. Places, jobs, genres, awards and themes are the world's vocabulary, which a
    pretrained model knows (TOFU's authors are born in real cities)."""
    _, _, people, authors = _draw(cfg)
    return _values(people, authors)


def _values(people: list[str], authors: list[dict]) -> tuple[set[str], set[str]]:
    return set(people), {a[book] for a in authors for book in ("book1", "book2", "book3")}


_PRE_A = ["Amber", "Velvet", "Iron", "Crystal", "Wild", "Pale", "Secret", "Endless", "Frozen", "Scarlet",
          "Gentle", "Empty", "Forgotten", "Silver", "Dark", "Open", "Green", "Sleeping"]
_PRE_B = ["Valley", "Meadow", "Castle", "Window", "Lake", "Desert", "Field", "Station", "Market", "Chapel",
          "Mountain", "Ocean", "Hours", "Dreams", "Songs", "Gates", "Stairs", "Winds"]


def pretrain_rows(cfg: MiniTofuConfig, splits: dict[str, list[dict]] | None = None) -> list[dict]:
    """The base model's pretraining corpus, as question / answer rows in TOFU's register: every question type
    about `n_pretrain_people` other invented authors, each fact in `pretrain_wordings` wordings (a drawn
    answer template, reworded), and the general knowledge both TOFU models have (the real-authors and
    world-facts analogues; from `splits`, the benchmark's `generate(cfg)`, when given). It holds none of the
    benchmark authors' names, name words or book titles."""
    rng = random.Random(cfg.seed + 2_000_003)
    bench = generate(cfg) if splits is None else splits
    _, pools, bench_people, bench_authors = _draw(cfg)
    names, titles = _values(bench_people, bench_authors)
    banned = {w for n in names for w in n.split()}
    people = [n for n in _unique(rng, lambda r: f"{_word(r, 2)} {_word(r, r.choice([2, 3]))}",
                                 3 * cfg.n_pretrain_people) if not banned.intersection(n.split())]
    people = [n for n in people if n not in pools.names][: cfg.n_pretrain_people]
    own = [f"The {a} {b}" for a in _PRE_A for b in _PRE_B] + [f"{b} of the {a} {b2}" for a in _PRE_A
                                                              for b in _PRE_B for b2 in _PRE_B if b != b2]
    own = [t for t in own if t not in titles]
    rng.shuffle(own)
    pre_pools = replace(pools, names=people, titles=own[: 3 * len(people)])  # the world's places, own people
    rows = []
    for name in people:
        author = _author(rng, name, pre_pools, cfg.value_zipf)
        for questions, answers in QA_TYPES:
            for w in range(cfg.pretrain_wordings):
                q_tpl = questions[w % len(questions)]
                answer, _ = render(rng.choice(answers), author, _fields(q_tpl), (rng, cfg.synonyms))
                rows.append({"question": render(q_tpl, author)[0], "answer": answer})
    for general in ("real_authors", "world_facts"):
        rows += [dict(r) for r in bench[general]] * cfg.pretrain_wordings
    rng.shuffle(rows)
    return rows


def tokenizer_corpus(cfg: MiniTofuConfig) -> list[str]:
    """Text to train the tiny tokenizer on: the pretraining corpus (`pretrain_rows`), which holds none of the
    benchmark authors' names or titles (a pretrained tokenizer predates TOFU's fictitious authors, so their
    names split into several tokens; so do ours)."""
    return list(dict.fromkeys(t for r in pretrain_rows(cfg) for t in (r["question"], r["answer"])))


def write(cfg: MiniTofuConfig, out_dir: str | Path) -> Path:
    """Write a benchmark in TOFU's local layout: `<split>.json` (JSON lines), `idontknow.jsonl` and the
    span files `spans/forgetXX_with_common_words_gpt/` (datasets.save_to_disk)."""
    import datasets

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = generate(cfg)
    for name, rows in {**splits, "pretrain": pretrain_rows(cfg, splits)}.items():
        if name == "idontknow":
            (out / "idontknow.jsonl").write_text("".join(r["answer"] + "\n" for r in rows))
        elif name.startswith("spans/"):
            target = out / "spans" / f"{name.split('/')[1]}_with_common_words_gpt"
            datasets.Dataset.from_list(rows).save_to_disk(str(target))
        else:
            lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            (out / f"{name}.json").write_text(lines)
    (out / "mini_tofu.json").write_text(json.dumps(asdict(cfg), indent=1))
    return out
