"""Pseudonymisation of Telegram ids."""

import pytest

from bot.privacy import pseudonymise


def test_stable_per_secret_and_unlinkable_across_secrets() -> None:
    a = pseudonymise(123456789, "secret-one")
    assert a == pseudonymise("123456789", "secret-one")
    assert a != pseudonymise(123456789, "secret-two")
    assert a != pseudonymise(123456780, "secret-one")
    assert a.startswith("u_") and len(a) == 34 and "123456789" not in a


def test_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError):
        pseudonymise(1, "")
