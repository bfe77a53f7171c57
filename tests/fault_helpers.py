"""Helpers for the fault tests: what is waiting, what the engine saw, what the person saw."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bot.server import DB
from bot.storage.db import make_sessionmaker
from bot.storage.models import PendingMessage
from tests.telegram_helpers import bot_messages, buttons, last_seq, say


async def pending_count(stack: Any, key: str) -> int:
    """Messages of this person still waiting in ``tg_pending``."""
    async with make_sessionmaker(stack.app[DB])() as s:
        count = await s.scalar(
            select(func.count()).select_from(PendingMessage).where(PendingMessage.user_key == key)
        )
    return int(count or 0)


async def press(
    client: Any, user: int, replies: list[dict], payload: str, *, count: int = 1
) -> list[dict]:
    """Press the button carrying ``payload`` on the last of ``replies`` that has one."""
    message = next(
        r for r in reversed(replies) if payload in [b["callback_data"] for b in buttons(r)]
    )
    after = await last_seq(client, user)
    await client.press(user, message["message_id"], payload)
    return await bot_messages(client, user, after, count=count)


def user_texts_in_tracker(tracker: dict[str, Any]) -> list[str]:
    """Every user message the engine recorded, in order (reverted turns included)."""
    return [e.get("text") or "" for e in tracker.get("events") or [] if e.get("event") == "user"]


def sent_texts(transcript: list[dict]) -> list[str]:
    """What the bot delivered to the chat (successful sends only), in order."""
    return [e.get("plain_text") or "" for e in transcript if e["direction"] == "out"]


def count_containing(transcript: list[dict], needle: str) -> int:
    return sum(needle in text for text in sent_texts(transcript))


async def screening_up_to_the_last_question(client: Any, user: int) -> list[dict]:
    """Start the screening through its button and answer ten of its eleven questions (yes to
    nine); returns the replies carrying the last question. Its "yes" makes the score 10."""
    replies = await say(client, user, "my employer took my passport")
    replies = await press(client, user, replies, "/start_screening", count=2)
    for answer in ["/affirm", "/deny"] + ["/affirm"] * 8:
        replies = await press(client, user, replies, answer)
    assert "/stop_screening" in str(replies[-1].get("reply_markup")), "still in the screening"
    return replies
