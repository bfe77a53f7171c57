"""Which language to answer in: az, ru or en.

Order of evidence (DESIGN.md §4): an explicit choice wins (handled by the caller, which passes it
as the conversation's ``language`` slot); otherwise the message itself. Script and letters decide
most messages for free (Cyrillic → ru, ə/ğ/ı/ş → az); the rest go to lingua, restricted to our
three languages. For one- or two-word Latin texts lingua is a coin toss ("ok", "salam"), so a
prior — the conversation's previous language or Telegram's ``language_code`` — wins unless lingua
is confident.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from bot.textnorm import fold

LANGUAGES: tuple[str, ...] = ("az", "ru", "en")
DEFAULT_LANGUAGE = "en"

_LINGUA_TO_CODE = {Language.AZERBAIJANI: "az", Language.RUSSIAN: "ru", Language.ENGLISH: "en"}
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z\u00C0-\u024F\u0259\u018F]")
_AZ_LETTERS = re.compile(r"[əƏğĞıİşŞ]")
_WORD = re.compile(r"\w+", re.UNICODE)

# Frequent Azerbaijani words that have no English reading; in folded form, so they also catch
# text typed without Azerbaijani letters ("komek edin", "men isleyirem").
_AZ_MARKERS = frozenset(
    [
        "salam",
        "sagol",
        "sag",
        "ol",
        "men",
        "sen",
        "biz",
        "siz",
        "menim",
        "meni",
        "mene",
        "bu",
        "ne",
        "nece",
        "niye",
        "harda",
        "hara",
        "var",
        "yox",
        "xeyr",
        "beli",
        "he",
        "komek",
        "edin",
        "elimden",
        "isde",
        "is",
        "isleyirem",
        "pul",
        "maas",
        "pasport",
        "vesiqe",
        "bilmirem",
        "istyirem",
        "isteyirem",
        "lazimdir",
        "lazim",
        "olar",
        "zehmet",
        "olmasa",
        "tesekkur",
        "tesekkurler",
        "cox",
        "gorusmek",
        "kimi",
        "ucun",
        "amma",
        "yaxsi",
        "indi",
        "tez",
        "polis",
        "qacmisam",
        "baglayiblar",
        "doyurler",
    ]
)
# Russian typed in Latin letters ("pomogite menya zaperli"): lingua has no model for it.
_RU_TRANSLIT_MARKERS = frozenset(
    [
        "menya",
        "mne",
        "menja",
        "ya",
        "ty",
        "vy",
        "on",
        "ona",
        "my",
        "oni",
        "pomogite",
        "pomogi",
        "pozhaluysta",
        "pozhalujsta",
        "spasibo",
        "privet",
        "poka",
        "net",
        "da",
        "gde",
        "kak",
        "chto",
        "cto",
        "eto",
        "ne",
        "nado",
        "nuzhno",
        "nuzhna",
        "hochu",
        "hoçu",
        "rabota",
        "rabotu",
        "rabotat",
        "zarplatu",
        "zarplata",
        "dengi",
        "den'gi",
        "ubezhishe",
        "ubezhische",
        "zaperli",
        "zakryli",
        "b'yut",
        "byut",
        "bjut",
        "izbili",
        "srochno",
        "pomosh",
        "pomoshch",
        "advokat",
        "yurist",
        "prava",
        "telefon",
        "nomer",
    ]
)
_EN_MARKERS = frozenset(
    [
        "hi",
        "hello",
        "hey",
        "thanks",
        "thank",
        "you",
        "yes",
        "no",
        "ok",
        "okay",
        "please",
        "help",
        "my",
        "the",
        "is",
        "are",
        "i",
        "me",
        "need",
        "want",
        "what",
        "where",
        "how",
        "who",
        "bye",
        "sure",
    ]
)


def normalize_code(code: str | None) -> str | None:
    """Map a Telegram ``language_code`` such as ``ru-RU`` or ``az`` to one of ours, else None."""
    if not code:
        return None
    base = code.split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else None


@lru_cache(maxsize=1)
def _detector() -> LanguageDetector:
    """Build the lingua detector once; preloading keeps the first message fast."""
    return (
        LanguageDetectorBuilder.from_languages(*_LINGUA_TO_CODE)
        .with_preloaded_language_models()
        .build()
    )


def warm_up() -> None:
    """Load lingua's models now rather than on the first person's message."""
    _detector()


def detect(text: str, prior: str | None = None) -> str | None:
    """Return the language of ``text`` or ``prior`` when the text cannot tell.

    Returns None only when there is no evidence at all and no prior (e.g. a bare button payload
    with nothing known about the person); the caller then uses its default.
    """
    prior = normalize_code(prior)
    stripped = text.strip()
    if not stripped or stripped.startswith("/"):
        return prior
    cyr = len(_CYRILLIC.findall(stripped))
    lat = len(_LATIN.findall(stripped))
    if cyr == 0 and lat == 0:
        return prior  # digits, emoji, punctuation only
    if cyr > lat:
        return "ru"
    if _AZ_LETTERS.search(stripped):
        return "az"
    words = _WORD.findall(fold(stripped))
    az_hits = sum(w in _AZ_MARKERS for w in words)
    en_hits = sum(w in _EN_MARKERS for w in words)
    ru_hits = sum(w in _RU_TRANSLIT_MARKERS for w in words)
    if len(words) <= 2:
        if prior:
            return prior
        if az_hits > max(en_hits, ru_hits):
            return "az"
        if en_hits > max(az_hits, ru_hits):
            return "en"
    if ru_hits >= 2 and ru_hits > az_hits and ru_hits > en_hits:
        return "ru"
    values = _detector().compute_language_confidence_values(stripped)
    best = values[0]
    code = _LINGUA_TO_CODE[best.language]
    if az_hits >= 2 and code == "en" and best.value < 0.9:
        return "az"
    return code
