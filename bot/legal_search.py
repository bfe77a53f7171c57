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


def tokens(text: str) -> list[str]:
    """Folded words (no stopwords), their 5-letter prefixes, and article tokens."""
    folded = fold(text)
    out: list[str] = []
    for word in _WORD.findall(folded):
        if word in STOPWORDS or word.isdigit():
            continue
        out.append(word)
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
