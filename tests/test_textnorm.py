"""Turkic-aware lowercasing and folding (DESIGN.md §7: Azerbaijani case folding)."""

import pytest

from bot.textnorm import fold, turkic_lower


def test_turkic_lower_handles_dotted_and_dotless_i() -> None:
    assert turkic_lower("İŞ") == "iş"
    assert turkic_lower("IŞIQ") == "ışıq"
    assert len(turkic_lower("İ")) == 1  # Python's own lower() gives two code points


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Şəhərdə", "seherde"),
        ("sheherde", "seherde"),
        ("seherde", "seherde"),
        ("İŞDƏN ÇIXA BİLMİRƏM", "isden cixa bilmirem"),
        ("ishden chixa bilmirem", "isden cixa bilmirem"),
        ("Gəncəyə", "genceye"),
        ("Всё ещё", "все еще"),
        ("ПОМОГИТЕЕЕЕЕ", "помогитее"),
        ("  many   spaces ", "many spaces"),
    ],
)
def test_fold_makes_spellings_meet(typed: str, expected: str) -> None:
    assert fold(typed) == expected


def test_fold_keeps_english_readable() -> None:
    assert fold("My boss took my passport") == "my boss took my passport"
