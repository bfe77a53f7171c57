"""Text normalisation shared by the engine's tokenizer and the bot's safety net.

Why this exists: Python's ``str.lower()`` is not Turkic-aware (``"İ".lower()`` gives two
code points and ``"I".lower()`` gives ``i`` where Azerbaijani needs ``ı``), and people type
Azerbaijani without its letters (``ə``→``e``, ``ş``→``s``/``sh`` …). Training data and
incoming messages are folded to one ASCII-ish form so that both spellings meet in the same
features. Standard library only: the engine's Python 3.10 imports this module too.
"""

from __future__ import annotations

import re
import unicodedata

_TURKIC_UPPER = str.maketrans({"İ": "i", "I": "ı"})

# Letters folded to what people type when the keyboard lacks them.
_FOLD = str.maketrans(
    {
        "ə": "e",
        "ı": "i",
        "ş": "s",
        "ç": "c",
        "ğ": "g",
        "ö": "o",
        "ü": "u",
        "ё": "е",
        # Latin lookalikes sometimes typed instead of ə
        "ä": "e",
    }
)
_DIGRAPHS = (("sh", "s"), ("ch", "c"), ("gh", "g"))
_REPEATS = re.compile(r"(.)\1{2,}")
_SPACES = re.compile(r"\s+")


def turkic_lower(text: str, *, turkic: bool = True) -> str:
    """Lowercase ``text``; with ``turkic`` the dotted/dotless I follow Azerbaijani rules.

    Cyrillic and other scripts are unaffected by the Turkic mapping, so it is safe to apply to
    Russian and English too; for English it only changes capital ``I`` to ``ı``, which folding
    turns back into ``i``.
    """
    if turkic:
        text = text.translate(_TURKIC_UPPER)
    return unicodedata.normalize("NFC", text).lower()


def fold(text: str) -> str:
    """Return the lowercased form without Azerbaijani letters, digraphs or long letter runs.

    ``"Şəhərdə"``, ``"sheherde"`` and ``"seherde"`` all become ``"seherde"``;
    ``"ПОМОГИТЕЕЕЕ"`` becomes ``"помогитее"`` (runs of 3+ collapse to 2).
    """
    text = turkic_lower(text).translate(_FOLD)
    # Remove combining marks left over from decomposed input (e.g. "i̇").
    text = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    for digraph, single in _DIGRAPHS:
        text = text.replace(digraph, single)
    text = _REPEATS.sub(r"\1\1", text)
    return _SPACES.sub(" ", text).strip()
