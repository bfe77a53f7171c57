"""The terminal chat (`make shell`) through the real engine."""

from __future__ import annotations

import io

import pytest

from bot.shell import chat

pytestmark = pytest.mark.engine


async def test_shell_chat_in_two_languages_with_buttons(stack, contacts) -> None:
    stdin = io.StringIO("salam\n2\nмне нужен номер горячей линии\n/quit\n")
    stdout = io.StringIO()
    await chat(stack.engine, stdin=stdin, stdout=stdout)
    out = stdout.getvalue()
    assert "Salam." in out  # Azerbaijani greeting
    assert "[2] Telefon nömrələri" in out
    # Pressing button 2 sends /ask_hotline: numbers, still in Azerbaijani.
    assert "Zəng edə biləcəyiniz nömrələr" in out
    # The next message is Russian, and so is the answer.
    assert "Куда можно позвонить" in out
    assert contacts["trafficking_hotline"].number in out


async def test_shell_gives_numbers_when_engine_is_down(contacts) -> None:
    from bot.engine import EngineClient
    from bot.stack import free_port

    engine = EngineClient(f"http://127.0.0.1:{free_port()}", timeout=1.0)
    stdout = io.StringIO()
    try:
        await chat(engine, stdin=io.StringIO("меня заперли\n"), stdout=stdout)
    finally:
        await engine.close()
    out = stdout.getvalue()
    assert "Извините" in out
    assert contacts["trafficking_hotline"].number in out and contacts["police"].number in out
