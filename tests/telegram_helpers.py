"""Helpers for the Telegram integration tests: made-up people chatting through the emulator."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
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


WEBHOOK_SECRET = "made-up-webhook-secret"


@asynccontextmanager
async def webhook_service(
    settings: Any,
    emulator_url: str,
    *,
    database_url: str,
    port: int | None = None,
    secret: str = WEBHOOK_SECRET,
    token: str = "515151002:hostile-webhook-token",
) -> AsyncIterator[tuple[str, Any]]:
    """A second bot service in webhook mode (the session's engine, its own database and
    emulator); yields the webhook URL and the aiohttp app. The engine's actions follow the
    newest service's database, so they are pointed back at the session's one afterwards."""
    from dataclasses import replace

    from actions import context as actions_context
    from bot.server import create_app, start_site
    from bot.stack import free_port
    from bot.telegram.app import WEBHOOK_PATH

    port = port or free_port()
    app = create_app(
        replace(
            settings,
            bot_port=port,
            database_url=database_url,
            telegram_token=token,
            telegram_api_base_url=emulator_url,
            telegram_webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
            telegram_webhook_secret=secret,
        )
    )
    saved = actions_context.get()
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}", app
    finally:
        await runner.cleanup()
        actions_context.configure(saved.repo, saved.renderer, saved.hours)
