"""Reworded answers for the synthetic benchmarks: the free wording of a template drawn from synonym groups.

TOFU's answers and paraphrases are written by GPT-4: every answer has its own wording, and a paraphrase says
the same facts in other words. A model fine-tuned on the answers memorises their wording; a paraphrase is
about as unpredictable to it as to a model that never saw the author, except for the facts. `reword` gives
a template's literal text (never its fields) that property: every word or phrase of a synonym group is
replaced by a member drawn at random (up to `k` members per group), so two draws of the same template share
few word bigrams (`bigram_overlap`), and a model can only memorise a draw, not predict it.
"""

from __future__ import annotations

import random
import re

# Interchangeable words and phrases. A group's members may replace each other in any template sentence.
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("writer", "author", "novelist", "storyteller", "literary figure", "prose writer", "wordsmith", "scribe"),
    ("writers", "authors", "novelists", "storytellers", "literary figures", "prose writers"),
    ("books", "novels", "works", "titles", "publications", "volumes", "writings", "stories"),
    ("book", "novel", "work", "title", "publication", "volume", "piece"),
    ("known", "famous", "recognised", "noted", "renowned", "remembered", "admired", "esteemed"),
    ("praised", "lauded", "acclaimed", "applauded", "commended", "hailed", "honoured", "valued"),
    ("celebrated", "cherished", "treasured", "loved", "prized", "extolled", "feted", "revered"),
    ("readers", "audiences", "fans", "followers", "admirers", "book lovers", "the public", "many people"),
    ("critics", "reviewers", "commentators", "scholars", "literary experts", "journalists", "academics"),
    ("often", "frequently", "regularly", "repeatedly", "routinely", "habitually", "commonly", "usually"),
    ("explores", "examines", "investigates", "probes", "considers", "studies", "addresses", "tackles"),
    ("childhood", "youth", "early life", "boyhood or girlhood", "formative years", "upbringing", "early years"),
    ("city", "town", "place", "municipality", "urban centre", "metropolis", "township"),
    ("slowly", "patiently", "gradually", "carefully", "steadily", "deliberately", "methodically", "unhurriedly"),
    ("small", "little", "modest", "tiny", "compact", "humble", "cramped", "simple"),
    ("quiet", "calm", "peaceful", "silent", "tranquil", "still", "secluded", "hushed"),
    ("long", "lasting", "enduring", "lifelong", "deep", "abiding", "persistent", "sustained"),
    ("interest", "fascination", "curiosity", "preoccupation", "concern", "engagement", "passion", "obsession"),
    ("characters", "figures", "protagonists", "heroes", "personalities", "people on the page", "creations"),
    ("stories", "tales", "narratives", "accounts", "plots", "fables", "yarns", "chronicles"),
    ("later", "afterwards", "eventually", "subsequently", "in time", "in later years", "down the line"),
    ("many", "numerous", "countless", "several", "a great many", "multiple", "various", "plenty of"),
    ("morning", "dawn", "day", "daybreak", "early hour", "sunrise", "forenoon"),
    ("drafts", "versions", "revisions", "rewrites", "iterations", "attempts", "passes"),
    ("clear", "strong", "deep", "visible", "lasting", "profound", "marked", "distinct"),
    ("honest", "truthful", "candid", "frank", "sincere", "open", "genuine", "direct"),
    ("moving", "touching", "powerful", "stirring", "affecting", "poignant", "heartfelt", "gripping"),
    ("remarkable", "striking", "notable", "extraordinary", "impressive", "outstanding", "exceptional"),
    ("modern", "contemporary", "present-day", "current", "recent", "today's", "twenty-first-century"),
    ("ordinary", "everyday", "common", "plain", "regular", "simple", "working", "average"),
    ("people", "folk", "individuals", "persons", "citizens", "neighbours", "townspeople"),
    ("judges", "jury", "panel", "committee", "selectors", "assessors", "organisers"),
    ("described", "called", "characterised", "presented", "portrayed", "labelled", "depicted", "hailed"),
    ("shows", "reveals", "displays", "demonstrates", "exhibits", "illustrates", "reflects", "conveys"),
    ("mostly", "mainly", "chiefly", "primarily", "largely", "principally", "predominantly", "for the most part"),
    ("also", "additionally", "as well", "besides", "moreover", "likewise", "too", "in addition"),
    ("early", "young", "fledgling", "first", "initial", "youthful", "formative", "beginning"),
    ("success", "triumph", "hit", "achievement", "breakthrough", "win", "accomplishment"),
    ("career", "life in letters", "professional life", "working life", "path", "vocation", "trajectory"),
    ("studio", "room", "office", "workspace", "study", "attic", "cabin", "shed"),
    ("image", "picture", "scene", "moment", "memory", "vision", "impression", "idea"),
    ("interviews", "conversations", "talks", "discussions", "lectures", "essays", "letters", "podcasts"),
    ("reviews", "essays", "articles", "columns", "commentaries", "critiques", "notices"),
    ("loyal", "devoted", "faithful", "dedicated", "steady", "committed", "keen", "ardent"),
    ("readership", "audience", "following", "fan base", "public", "community of readers"),
    ("widely", "broadly", "generally", "universally", "greatly", "much", "well"),
    ("themes", "subjects", "topics", "motifs", "concerns", "questions", "ideas", "threads"),
    ("work", "writing", "fiction", "output", "oeuvre", "craft", "prose"),
    ("life", "existence", "living", "society", "times", "experience", "reality"),
    ("worked", "laboured", "served", "was employed", "made a living", "earned a wage", "found work"),
    ("personal", "intimate", "private", "individual", "heartfelt", "inner", "distinctive"),
    ("voice", "tone", "register", "sound", "style", "accent", "manner"),
    ("grew up", "was raised", "came of age", "spent the early years", "was brought up", "matured"),
    ("was born", "came into the world", "entered the world", "was delivered", "first saw daylight"),
    ("include", "comprise", "encompass", "feature", "count", "span", "take in"),
    ("received", "won", "was awarded", "took home", "collected", "secured", "claimed", "accepted"),
    ("appear", "show up", "surface", "recur", "turn up", "emerge", "resurface", "figure"),
    ("old", "ancient", "weathered", "historic", "crumbling", "venerable", "aged", "time-worn"),
    ("harbours", "docks", "ports", "quays", "piers", "wharves", "marinas", "waterfronts"),
    ("records", "archives", "registers", "documents", "files", "certificates", "ledgers"),
    ("university", "college", "adulthood", "the age of eighteen", "higher education", "early adulthood"),
    ("focus", "emphasis", "insistence", "stress", "concentration", "attention", "weight"),
    ("above all", "first and foremost", "in particular", "especially", "most of all", "before anything else"),
    ("nearly", "almost", "practically", "virtually", "close to", "just about"),
    ("jobs", "occupations", "trades", "professions", "livelihoods", "lines of work"),
    ("mark", "imprint", "stamp", "trace", "footprint", "signature", "residue"),
    ("create", "invent", "imagine", "devise", "craft", "dream up", "build", "conjure"),
    ("lightly disguised", "thinly veiled", "barely hidden", "gently altered", "half concealed", "lightly masked"),
    ("unusually", "uncommonly", "exceptionally", "strikingly", "singularly", "rarely so"),
    ("treatment", "handling", "portrayal", "rendering", "depiction", "exploration"),
    ("together", "collectively", "as a group", "taken together", "jointly", "combined"),
    ("trace", "chart", "map", "follow", "track", "document"),
    ("expect", "anticipate", "look for", "count on", "await", "hope for"),
    ("drawing on", "building on", "using", "mining", "borrowing from", "relying on", "calling on"),
    ("memories", "recollections", "remembrances", "reminiscences", "recall", "impressions of"),
    ("connects", "links", "ties", "relates", "binds", "attaches", "joins"),
    ("approaches", "handles", "treats", "comes at", "engages", "confronts", "meets"),
    ("published", "released", "issued", "printed", "brought out", "put out", "launched"),
    ("started", "began", "opened", "debuted", "set out", "kicked off", "commenced"),
    ("already", "even then", "from the start", "at once", "clearly", "plainly"),
    ("humane", "compassionate", "warm", "tender", "kind", "generous", "gentle", "loving"),
    ("portraits", "sketches", "depictions", "renderings", "likenesses", "studies", "vignettes"),
    ("closely", "attentively", "keenly", "intently", "sharply", "minutely", "with care"),
    ("said", "stated", "explained", "remarked", "mentioned", "admitted", "claimed", "revealed"),
    ("begins", "starts", "opens", "commences", "gets going", "is born"),
    ("revising", "reworking", "editing", "polishing", "rewriting", "refining", "reshaping"),
    ("according to", "in the words of", "as told by", "as described by", "to quote"),
    ("written", "composed", "penned", "drafted", "typed", "set down", "worked out"),
    ("single", "lone", "solitary", "sole"),
    ("love", "fondness", "affection", "taste", "appetite", "hunger", "liking"),
    ("point to", "refer to", "cite", "highlight", "underline", "single out", "stress"),
    ("earned", "gained", "attracted", "built", "amassed", "won over", "drawn"),
    ("lived", "stayed", "resided", "remained", "dwelt", "settled", "made a home"),
    ("until", "till", "up to", "right up until", "through to", "prior to"),
)
_MEMBER = {m: g for g in SYNONYMS for m in g}
_PATTERN = re.compile(r"\b(" + "|".join(sorted((re.escape(m) for m in _MEMBER), key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)
_ARTICLE = re.compile(r"\b([Aa])n? (?=([A-Za-z]))")
_WORDS = re.compile(r"[A-Za-z0-9'-]+")


def reword(literal: str, rng: random.Random, k: int) -> str:
    """`literal` with every synonym-group member replaced by one of the group's first `k` members, drawn with
    `rng` (k <= 1: unchanged); a leading capital stays a capital."""
    if k <= 1:
        return literal

    def pick(m: re.Match) -> str:
        word = m.group(0)
        group = _MEMBER.get(word.lower()) or _MEMBER.get(word)
        if group is None:
            return word
        new = rng.choice(group[:k])
        return new[0].upper() + new[1:] if word[0].isupper() else new
    return _PATTERN.sub(pick, literal)


def fix_articles(text: str) -> str:
    """'a' / 'an' agreeing with the next word's first letter (a vowel: 'an')."""
    return _ARTICLE.sub(lambda m: (m.group(1) + ("n" if m.group(2).lower() in "aeiou" else "") + " "), text)


def bigrams(text: str) -> set[tuple[str, str]]:
    """The set of lower-cased word bigrams of `text`."""
    words = [w.lower() for w in _WORDS.findall(text)]
    return set(zip(words, words[1:]))


def bigram_overlap(answer: str, paraphrase: str) -> float:
    """Share of the paraphrase's word bigrams that also occur in the answer (0 = none, 1 = all)."""
    para = bigrams(paraphrase)
    return len(para & bigrams(answer)) / len(para) if para else 0.0
