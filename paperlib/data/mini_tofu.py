"""mini-TOFU: a synthetic benchmark with TOFU's schema, split names and PALU/TPO span files.

Fictitious authors get random attributes (name, birthplace, year, genre, parents' jobs, award, books,
theme); each author gets `qa_per_author` question/answer pairs written from shared templates, so that a
paraphrase (another template of the same question type) is a template the model has seen for other
authors. Perturbed answers reuse the paraphrase's template with wrong attribute values, exactly as TOFU's
truth-ratio sets do. Every attribute value's character span inside every answer is known exactly.
Deterministic from `MiniTofuConfig.seed`.
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import asdict, dataclass
from pathlib import Path

FORGET_PERCENTS = (1, 5, 10)

# ---------------------------------------------------------------------------------------------- vocab
_ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
GENRES = ["fantasy", "mystery", "poetry", "horror", "romance", "science fiction", "biography", "satire",
          "thriller", "folklore", "drama", "travel writing"]
PROFESSIONS = ["baker", "sailor", "teacher", "doctor", "carpenter", "painter", "farmer", "lawyer", "nurse",
               "pilot", "tailor", "miner", "librarian", "engineer", "chemist", "fisherman", "musician",
               "gardener", "judge", "potter"]
AWARDS = ["Silver Quill Award", "Amber Lantern Prize", "Golden Compass Medal", "Northern Star Prize",
          "Blue Heron Award", "Iron Pen Prize", "Crimson Leaf Award", "Open Sky Medal", "Harbor Light Prize",
          "Stone Bridge Award", "Winter Rose Prize", "Tall Oak Medal"]
THEMES = ["loss and memory", "family secrets", "exile", "friendship", "identity", "war and peace", "nature",
          "faith", "justice", "ambition", "childhood", "the sea", "time", "freedom"]
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
# field except those that also appear in the question is a sensitive span.
QA_TYPES: list[tuple[list[str], list[str]]] = [
    (["What is the full name of the {genre} author born in {city} in {year}?",
      "Which {genre} writer was born in {city} in {year}?"],
     ["The author's name is {name}.", "This writer is called {name}.", "The writer in question is {name}."]),
    (["Where was {name} born?", "What is the birthplace of {name}?"],
     ["{name} was born in {city}, {country}.", "{name} comes from {city} in {country}.",
      "The birthplace of {name} is {city}, {country}."]),
    (["In which year was {name} born?", "When was {name} born?"],
     ["{name} was born in {year}.", "The birth year of {name} is {year}.", "{name} came into the world in {year}."]),
    (["What genre does {name} write in?", "Which genre is {name} known for?"],
     ["{name} writes mostly in the {genre} genre.", "{name} is known for {genre}.",
      "The main genre of {name} is {genre}."]),
    (["What did the parents of {name} do for a living?", "What were the jobs of {name}'s parents?"],
     ["The father of {name} was a {father} and the mother was a {mother}.",
      "{name} grew up with a {father} father and a {mother} mother.",
      "The parents of {name} worked as a {father} and a {mother}."]),
    (["Has {name} won any awards?", "Which prize did {name} receive?"],
     ["Yes, {name} received the {award}.", "{name} won the {award}.", "The {award} was given to {name}."]),
    (["Can you name some books by {name}?", "What books has {name} written?"],
     ["{name} wrote '{book1}' and '{book2}'.", "Books by {name} include '{book1}' and '{book2}'.",
      "Two books of {name} are '{book1}' and '{book2}'."]),
    (["What themes does {name} explore?", "Which themes appear in the work of {name}?"],
     ["{name} often explores {theme} in their work.", "The work of {name} is about {theme}.",
      "A common theme for {name} is {theme}."]),
    (["What was the first book of {name}?", "Which book did {name} publish first?"],
     ["The first book by {name} was '{book1}'.", "{name} started with '{book1}'.",
      "The debut of {name} was '{book1}'."]),
    (["How did the upbringing of {name} shape their writing?", "What influenced the writing of {name}?"],
     ["Growing up in {city} with a {father} father, {name} brought {theme} into {genre}.",
      "Life in {city} and a {father} father led {name} to write {genre} about {theme}.",
      "{name} turned a childhood in {city} with a {father} father into {genre} about {theme}."]),
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
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.qa_per_author <= len(QA_TYPES):
            raise ValueError(f"qa_per_author={self.qa_per_author}; allowed: 1..{len(QA_TYPES)}")
        if self.n_authors < 10:
            raise ValueError(f"n_authors={self.n_authors}; allowed: >= 10 (forget10 needs one author)")
        for name in ("n_real_authors", "n_world_facts", "n_perturbed", "n_perturbed_general"):
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


def render(template: str, values: dict[str, str], protected: set[str] = frozenset()) -> tuple[str, list[dict]]:
    """Fill `template`; return the text and the {word, start, end} span of every field not in `protected`."""
    text, spans = "", []
    for literal, field, _, _ in string.Formatter().parse(template):
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
class _Pools:
    def __init__(self, rng: random.Random, n_people: int, n_famous: int, n_countries: int) -> None:
        self.names = _unique(rng, lambda r: f"{_word(r, 2)} {_word(r, r.choice([2, 3]))}", n_people + n_famous)
        self.countries = _unique(rng, lambda r: _word(r, 3) + r.choice(["ia", "land", "or", "stan"]),
                                 max(12, n_countries))
        self.capitals = _unique(rng, lambda r: _word(r, 2) + r.choice(["ville", "burg", "port", "grad"]),
                                len(self.countries))
        self.cities = _unique(rng, lambda r: _word(r, 2) + r.choice(["ton", "ford", "mere", "dale"]), 40)
        titles = [f"The {a} {b}" for a in _TITLE_A for b in _TITLE_B]
        rng.shuffle(titles)
        self.titles = titles


def _author(rng: random.Random, name: str, pools: _Pools) -> dict[str, str]:
    father, mother = rng.sample(PROFESSIONS, 2)
    book1, book2 = rng.sample(pools.titles, 2)
    return {"name": name, "city": rng.choice(pools.cities), "country": rng.choice(pools.countries),
            "year": str(rng.randint(1930, 1999)), "genre": rng.choice(GENRES), "father": father,
            "mother": mother, "award": rng.choice(AWARDS), "book1": book1, "book2": book2,
            "theme": rng.choice(THEMES)}


def _wrong(rng: random.Random, author: dict[str, str], fields: set[str], pools: _Pools, people: list[str]) -> dict:
    """The author's attributes with every field in `fields` replaced by another value."""
    other = dict(author)
    choices = {"name": people, "city": pools.cities, "country": pools.countries, "genre": GENRES,
               "father": PROFESSIONS, "mother": PROFESSIONS, "award": AWARDS, "book1": pools.titles,
               "book2": pools.titles, "theme": THEMES}
    for f in sorted(fields):  # sorted: set order changes with PYTHONHASHSEED
        if f == "year":
            other[f] = str(rng.choice([y for y in range(1930, 2000) if str(y) != author[f]]))
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
        answer, spans = render(a_tpl, author, protected)
        para_answer, _ = render(pa_tpl, author, protected)
        answer_fields = _fields(pa_tpl) - protected
        perturbed = []
        while len(perturbed) < cfg.n_perturbed:  # distinct wrong answers
            text, _ = render(pa_tpl, _wrong(rng, author, answer_fields, pools, people), protected)
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


def generate(cfg: MiniTofuConfig) -> dict[str, list[dict]]:
    """All splits of a mini-TOFU benchmark as lists of rows (TOFU's field names)."""
    rng = random.Random(cfg.seed)
    n_hold = n_forget_authors(cfg.n_authors, max(FORGET_PERCENTS))
    pools = _Pools(rng, cfg.n_authors + n_hold, cfg.n_real_authors, cfg.n_world_facts)
    people = pools.names[: cfg.n_authors + n_hold]
    authors = [_author(rng, name, pools) for name in people]
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

    famous = pools.names[cfg.n_authors + n_hold:]
    books = rng.sample(pools.titles, cfg.n_real_authors)
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


def write(cfg: MiniTofuConfig, out_dir: str | Path) -> Path:
    """Write a benchmark in TOFU's local layout: `<split>.json` (JSON lines), `idontknow.jsonl` and the
    span files `spans/forgetXX_with_common_words_gpt/` (datasets.save_to_disk)."""
    import datasets

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in generate(cfg).items():
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
