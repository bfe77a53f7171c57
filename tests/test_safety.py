"""The safety net (bot/safety.py): narrow, immediate, no false alarms on ordinary messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.devtools.nlu_eval import read_examples
from bot.safety import is_emergency


@pytest.mark.parametrize(
    "text",
    [
        "MƏNİ DÖYÜRLƏR", "meni otaqda baglayiblar", "qaçmışam arxamca gəlirlər",
        "меня заперли в подвале", "ОНИ МЕНЯ БЬЮТ", "spasite",
        "they are beating me", "I'm locked in the room", "SOS",
    ],
)  # fmt: skip
def test_immediate_danger_is_caught(text: str) -> None:
    assert is_emergency(text)


@pytest.mark.parametrize(
    "text",
    [
        "what is the penalty for kidnapping under article 144",
        "два года назад меня похитили, какие у меня права",
        "my friend was beaten last year",
        "pasportumu aldılar", "salam", "где найти адвоката",
    ],
)  # fmt: skip
def test_questions_and_the_past_are_not_alarms(text: str) -> None:
    assert not is_emergency(text)


def test_on_unseen_messages(root: Path) -> None:
    """On both evaluation splits: no false alarm in ~1,100 ordinary messages; a third of the
    emergencies caught without any model (the engine's classifier catches the rest)."""
    hits = total = false = ordinary = 0
    for split in ("heldout", "fresh"):
        for lang in ("az", "ru", "en"):
            for text, intent in read_examples(root / "eval" / split / f"{lang}.yml"):
                if intent == "emergency":
                    total += 1
                    hits += is_emergency(text)
                else:
                    ordinary += 1
                    false += is_emergency(text)
    assert false / ordinary <= 0.005, false
    assert hits / total >= 0.3, f"{hits}/{total}"
