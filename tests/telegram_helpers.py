"""Helpers for the Telegram integration tests: made-up people chatting through the emulator."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ids = itertools.count(7_100_000_001)


def new_user_id() -> int:
    """A fresh made-up Telegram user id per test (tests share one emulator and database)."""
    return next(_ids)


async def bot_messages(
    client: Any,
    chat_id: int,
    after: int,
    *,
    quiet: float = 0.6,
    timeout: float = 20.0,
    count: int = 1,
) -> list[dict]:
    """Wait for at least ``count`` bot messages after ``after``, then until the chat is quiet."""
    got = await client.wait_for(chat_id, count=count, after=after, timeout=timeout)
    while True:
        last = max(e["seq"] for e in got)
        try:
            more = await client.wait_for(chat_id, count=1, after=last, timeout=quiet)
        except TimeoutError:
            return got
        got += [e for e in more if e not in got]


async def last_seq(client: Any, chat_id: int) -> int:
    events = await client.transcript(chat_id)
    return max((e["seq"] for e in events), default=0)


async def say(
    client: Any,
    user_id: int,
    text: str,
    *,
    language_code: str = "en",
    count: int = 1,
    quiet: float = 0.6,
) -> list[dict]:
    """Send ``text`` as the user; return the bot's messages that answer it."""
    after = await last_seq(client, user_id)
    if text.startswith("/"):
        await client.send_command(user_id, text, language_code=language_code)
    else:
        await client.send_text(user_id, text, language_code=language_code)
    return await bot_messages(client, user_id, after, count=count, quiet=quiet)


def texts(events: list[dict]) -> str:
    return "\n".join(e.get("plain_text") or e.get("text") or "" for e in events)


def buttons(event: dict) -> list[dict]:
    markup = event.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


@contextmanager
def engine_paused(pid: int) -> Iterator[None]:
    """Freeze the real engine process (SIGSTOP): it stops answering, like a hung engine."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.2) -> Any:
    """Poll an async ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
