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
    ("each", "every", "any single", "every single"),
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
