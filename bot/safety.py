"""The safety net: words that mean immediate danger get the emergency answer without the engine.

Why: the engine can be slow, down or wrong; a person who writes "they are beating me" must get the
police and hotline numbers anyway, in microseconds. The net matches folded text (see
``bot.textnorm.fold``) against short phrases of immediate danger in az/ru/en. It is deliberately
narrower than the emergency intent: it fires on unambiguous present-tense danger and cries for
help, not on every mention of violence (a lawyer asking about kidnapping penalties must not get it).
The Telegram adapter calls it before the engine; ``make eval`` style figures are in the tests.
"""

from __future__ import annotations

import re

from bot.textnorm import fold

# Folded forms: ə→e, ı→i, ş/sh→s, ç/ch→c, ğ/gh→g, ö→o, ü→u, ё→е; runs of 3+ letters → 2.
_PHRASES = {
    "az": [
        r"xilas\s*edin",
        r"qurtarin",
        r"doyurler",
        r"doyur(?:\s|$)",
        r"vururlar",
        r"olduru?ce[yk]",
        r"olduruler",
        r"baglayiblar",
        r"bagliyiblar",
        r"qapini\s*bagla",
        r"icer[di]e\s*saxlayirlar",
        r"qacirdilar",
        r"qacirirlar",
        r"qacirib",
        r"aparirlar",
        r"arxamca\s*gelirler",
        r"tecili\s*komek",
        r"tehlukedeyem",
        r"imdad",
    ],
    "ru": [
        r"спасите",
        r"бьют",
        r"избивают",
        r"избили\s*меня",
        r"убь[её]т",
        r"убьют",
        r"убить\s*меня",
        r"заперли",
        r"запер(?:ли|т)\s*меня",
        r"держат\s*(?:силой|взаперти)",
        r"похитили",
        r"увоз[яи]т",
        r"везут\s*куда",
        r"гонятся",
        r"насилуют",
        r"срочно\s*помо",
        r"я\s*в\s*опасности",
        r"spasite",
        r"b'?yut",
        r"zaperli",
        r"ub'?yut",
    ],
    "en": [
        r"save\s*me",
        r"sos",
        r"they\s*are\s*(?:beating|hitting|hurting)",
        r"(?:beating|hitting|hurting)\s*me",
        r"kill\s*me",
        r"going\s*to\s*kill",
        r"locked\s*(?:me|us)\s*in",
        r"locked\s*in",
        r"kidnapped",
        r"they\s*are\s*taking\s*(?:me|us)",
        r"chasing\s*me",
        r"i\s*am\s*in\s*danger",
        r"i'?m\s*in\s*danger",
        r"help\s*now",
        r"call\s*police",
    ],
}
_PATTERN = re.compile(
    "|".join(rf"(?:(?<!\w){p})" for phrases in _PHRASES.values() for p in phrases),
    re.IGNORECASE,
)
# Questions about the law or about the past are not emergencies, even with danger words.
_NOT_NOW = re.compile(
    r"(?<!\w)(?:article|statya|статья|ст\.|madde|maddesi|penalty|наказани|санкци|ceza|cezasi|"
    r"years?\s*ago|(?:лет|года?)\s*назад|ил\s*evvel|il\s*once|last\s*year|в\s*прошлом\s*году)",
    re.IGNORECASE,
)


def is_emergency(text: str) -> bool:
    """True when ``text`` reads as immediate danger in any of our three languages."""
    folded = fold(text)
    return bool(_PATTERN.search(folded)) and not _NOT_NOW.search(folded)
