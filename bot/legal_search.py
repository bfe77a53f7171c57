"""Retrieval over the law provisions for lawyers' questions (BM25, no model downloads).

Why BM25 over folded words and word prefixes: the corpus is a few dozen provisions in three
languages; questions arrive inflected (Azerbaijani suffixes, Russian cases) and often without
Azerbaijani letters. Folding plus 5-character prefixes matches ``cezasi``/``cəza``,
``торговлей``/``торговля``; article numbers ("144-1", "ст. 106") are matched as their own tokens
and weigh the most, because a lawyer who names an article wants that article.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from bot.textnorm import fold

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_ARTICLE = re.compile(r"(?<![\d.])(\d{2,3}(?:-\d{1,2})?)(?:\.\d{1,2})*(?![\d])")
PREFIX = 5
ARTICLE_WEIGHT = 3.0
OWN_ARTICLE_BONUS = 10.0

STOPWORDS = frozenset(
    fold(w)
    for w in [
        "the",
        "a",
        "an",
        "of",
        "in",
        "on",
        "for",
        "to",
        "and",
        "or",
        "is",
        "are",
        "what",
        "which",
        "how",
        "does",
        "do",
        "with",
        "under",
        "by",
        "from",
        "at",
        "as",
        "be",
        "can",
        "i",
        "my",
        "me",
        "article",
        "law",
        "code",
        "criminal",
        # Function words of lawyers' English questions: they carry no legal content but, being
        # rare in the provisions, used to outweigh the content words ("where", "was", "there").
        "there",
        "where",
        "when",
        "who",
        "whom",
        "whose",
        "why",
        "was",
        "were",
        "been",
        "being",
        "has",
        "have",
        "had",
        "did",
        "done",
        "will",
        "would",
        "should",
        "could",
        "may",
        "might",
        "must",
        "shall",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "they",
        "them",
        "their",
        "he",
        "him",
        "his",
        "she",
        "her",
        "herself",
        "himself",
        "we",
        "our",
        "you",
        "your",
        "if",
        "so",
        "but",
        "not",
        "no",
        "still",
        "any",
        "some",
        "about",
        "into",
        "than",
        "then",
        "also",
        "get",
        "gets",
        "apply",
        "applies",
        "azerbaijan",
        "azerbaijani",
        "və",
        "ya",
        "ilə",
        "üçün",
        "nə",
        "necə",
        "hansı",
        "bu",
        "o",
        "bir",
        "olan",
        "olur",
        "üzrə",
        "görə",
        "maddə",
        "maddəsi",
        "qanun",
        "məcəllə",
        "и",
        "в",
        "на",
        "по",
        "с",
        "о",
        "об",
        "что",
        "как",
        "какой",
        "какая",
        "какие",
        "ли",
        "для",
        "это",
        "к",
        "из",
        "у",
        "от",
        "же",
        "статья",
        "статье",
        "закон",
        "кодекс",
    ]
)


_LATIN = re.compile(r"[a-z]+")
# English inflections, longest first. Azerbaijani never inflects with these (its plural is
# -lar/-lər, its cases are vowel suffixes), so stripping them from any Latin word is safe: an
# Azerbaijani root that happens to end so (şəxs) is stripped alike in question and index.
_EN_SUFFIXES = (
    ("ies", "y"),
    ("ied", "y"),
    ("ing", ""),
    ("ion", ""),
    ("ed", ""),
    ("es", ""),
    ("s", ""),
)
_EN_KEEP = ("ss", "us", "is", "as", "os")


def stem(word: str) -> str:
    """Light English stemming: ``workers``→``worker``, ``forced``→``forc``, ``force``→``forc``.

    Only plural, past and -ing endings, and only when a stem of 3+ letters remains: enough to
    meet the question's inflection in the provision (the 5-letter prefix misses words of five
    letters or fewer, and it cannot tell ``punished`` from a different word sharing the start),
    without an algorithm that needs a word list.
    """
    if not _LATIN.fullmatch(word) or word.endswith(_EN_KEEP):
        return word
    for suffix, replacement in _EN_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + replacement
            break
    # "force"/"forced", "threat"/"threats", "pay"/"paid" differ only in a silent final e.
    return word[:-1] if word.endswith("e") and len(word) > 4 else word


# English legal words that name one notion: a question says "punished", the provision "penalty".
# Mapping them to one term also lets IDF see that nearly every provision has a penalty, so the
# word stops deciding the answer (it used to pull "non-punishment" to the top).
_EN_SYNONYM_GROUPS = {
    "penalty": "penalty penalties punish punished punishment punishable sanction sanctions "
    "sentence sentenced sentencing",
    "labour": "labour labor",
    "lawyer": "lawyer lawyers advocate advocates attorney counsel",
    "child": "child children minor minors underage juvenile",
}
SYNONYMS = {
    stem(fold(word)): canonical
    for canonical, words in _EN_SYNONYM_GROUPS.items()
    for word in words.split()
}


def tokens(text: str) -> list[str]:
    """Folded words (no stopwords, English inflection stripped), their 5-letter prefixes, and
    article tokens."""
    folded = fold(text)
    out: list[str] = []
    for word in _WORD.findall(folded):
        if word in STOPWORDS or word.isdigit():
            continue
        base = stem(word)
        if base in SYNONYMS:  # the notion, not the spelling: no prefix either
            out.append(SYNONYMS[base])
            continue
        out.append(base)
        if len(word) > PREFIX:
            out.append(word[:PREFIX] + "~")
    out += [f"art:{m}" for m in _ARTICLE.findall(folded)]
    return out


@dataclass(frozen=True)
class Hit:
    id: str
    score: float


class BM25Index:
    """Okapi BM25 over one language's documents."""

    def __init__(
        self,
        docs: dict[str, str],
        k1: float = 1.4,
        b: float = 0.6,
        articles: dict[str, str] | None = None,
    ) -> None:
        self.k1, self.b = k1, b
        # A document's own article number: naming it in the query is the strongest evidence.
        self.own = {d: f"art:{fold(a)}" for d, a in (articles or {}).items() if a and a != "—"}
        self.docs = {doc_id: Counter(tokens(text)) for doc_id, text in docs.items()}
        self.lengths = {doc_id: sum(c.values()) for doc_id, c in self.docs.items()}
        self.avg = sum(self.lengths.values()) / max(len(self.docs), 1)
        df: Counter[str] = Counter()
        for counts in self.docs.values():
            df.update(counts.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def search(self, query: str, k: int = 3, min_score: float = 1.5) -> list[Hit]:
        """Best ``k`` documents scoring at least ``min_score`` (none when nothing matches)."""
        q = Counter(tokens(query))
        scores: dict[str, float] = {}
        for doc_id, counts in self.docs.items():
            length = self.lengths[doc_id]
            score = 0.0
            for term, qtf in q.items():
                tf = counts.get(term, 0)
                if not tf:
                    continue
                weight = ARTICLE_WEIGHT if term.startswith("art:") else 1.0
                norm = (
                    tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * length / self.avg))
                )
                score += weight * self.idf[term] * norm * min(qtf, 2)
            if self.own.get(doc_id) in q:
                score += OWN_ARTICLE_BONUS
            if score >= min_score:
                scores[doc_id] = score
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Hit(doc_id, round(score, 3)) for doc_id, score in ranked]
