"""Language detection: script rules, lingua for Latin text, the prior for short texts."""

from pathlib import Path

import pytest

from bot.devtools.nlu_eval import read_examples
from bot.language import detect, normalize_code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Pasportumu əlimdən aldılar", "az"),
        ("pasportumu elimden aldilar", "az"),
        ("ishden chixa bilmirem, pul vermirler", "az"),
        ("maasimi 3 aydir vermirler", "az"),
        ("меня заперли, помогите", "ru"),
        ("у меня забрали паспорт", "ru"),
        ("pomogite menya zaperli", "ru"),
        ("my boss took my passport and I cannot leave", "en"),
        ("where can I find a shelter in Baku", "en"),
    ],
)
def test_detects_each_language(text: str, expected: str) -> None:
    assert detect(text) == expected


def test_short_texts_keep_the_prior() -> None:
    assert detect("ok", prior="az") == "az"
    assert detect("yes", prior="ru") == "ru"
    assert detect("salam") == "az"


def test_payloads_and_symbols_keep_the_prior() -> None:
    assert detect("/ask_hotline", prior="ru") == "ru"
    assert detect("123 !!!", prior="az") == "az"
    assert detect("", prior=None) is None


def test_normalize_telegram_codes() -> None:
    assert normalize_code("ru-RU") == "ru"
    assert normalize_code("az") == "az"
    assert normalize_code("de") is None
    assert normalize_code(None) is None


@pytest.mark.parametrize("lang", ["az", "ru", "en"])
def test_heldout_messages_are_detected(root: Path, lang: str) -> None:
    """On held-out messages nobody tuned the detector on, ≥95% get the right language."""
    examples = read_examples(root / "eval" / "heldout" / f"{lang}.yml")
    assert len(examples) >= 180
    right = sum(detect(text) == lang for text, _ in examples)
    assert right / len(examples) >= 0.95, f"{lang}: {right}/{len(examples)}"
