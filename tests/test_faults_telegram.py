"""Telegram answering 429 (flood control) and 502 (its proxy failing): every reply is retried and
arrives exactly once — on the normal path, on the fallback path (engine down) and for the late
answer; when Telegram fails past our retries the answer is kept and delivered later, once.

"Once" is counted in the emulator: the messages the chat received and the Bot API calls it logged
(a failed call delivers nothing there, as on Telegram).
"""

from __future__ import annotations

import pytest

from bot.config import ROOT
from bot.nlg import ResponseRenderer
from bot.privacy import pseudonymise
from bot.responses import load_contacts, load_responses
from tests.fault_helpers import count_containing, pending_count, sent_texts
from tests.telegram_helpers import (
    bot_messages,
    engine_paused,
    eventually,
    last_seq,
    new_user_id,
    say,
    texts,
)

pytestmark = pytest.mark.engine
RENDER = ResponseRenderer(load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge"))
FALLBACK = RENDER.render("text_tg_engine_down", "en")["text"]
LATE = RENDER.render("text_tg_late_reply", "en")["text"]
SHELTER_BAKU = "where can I find a shelter in Baku?"


@pytest.fixture
async def client(stack, emulator):
    await emulator.client.clear_faults()
    yield emulator.client
    await emulator.client.clear_faults()


async def send_calls(client, chat_id: int) -> list[tuple[int, bool]]:
    """(status, delivered) of every sendMessage to this chat, in order."""
    return [
        (c["status"], c["ok"])
        for c in await client.calls("sendMessage")
        if str(c["params"].get("chat_id")) == str(chat_id)
    ]


async def test_429_on_an_answer_is_retried_and_delivered_once(stack, client) -> None:
    user = new_user_id()
    await client.inject_fault("sendMessage", 429, count=1, retry_after=1)
    replies = await say(client, user, SHELTER_BAKU, quiet=1.5)
    assert len(replies) == 1 and "Help near Baku" in texts(replies)
    assert await send_calls(client, user) == [(429, False), (200, True)]
    assert count_containing(await client.transcript(user), "Help near Baku") == 1


async def test_502_on_an_answer_is_retried_and_delivered_once(stack, client) -> None:
    user = new_user_id()
    await client.inject_fault("sendMessage", 502, count=2)
    replies = await say(client, user, SHELTER_BAKU, quiet=1.5)
    assert len(replies) == 1 and "Help near Baku" in texts(replies)
    assert await send_calls(client, user) == [(502, False), (502, False), (200, True)]


async def test_502_on_the_fallback_and_on_the_late_answer(stack, client) -> None:
    """Engine frozen: the fallback meets two 502s, arrives once; the late answer meets two more
    when the engine is back, and arrives once too."""
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    with engine_paused(stack.engine_proc.pid):
        await client.inject_fault("sendMessage", 502, count=2)
        replies = await say(client, user, SHELTER_BAKU, quiet=1.5)
        assert texts(replies) == FALLBACK
        assert await send_calls(client, user) == [(502, False), (502, False), (200, True)]
        assert await pending_count(stack, key) == 1
        after = await last_seq(client, user)
        await client.inject_fault("sendMessage", 502, count=2)
    late = await bot_messages(client, user, after, count=2, timeout=40, quiet=1.5)
    assert texts(late).startswith(LATE) and "Help near Baku" in texts(late)
    await eventually(lambda: _drained(stack, key), timeout=20)
    assert sent_texts(await client.transcript(user)).count(FALLBACK) == 1
    assert count_containing(await client.transcript(user), "Help near Baku") == 1


async def test_telegram_failing_past_the_retries_keeps_the_answer_for_later(stack, client) -> None:
    """Four 502s in a row exhaust the sender's retries: the engine's answer is not lost — it is
    kept and delivered by the retry loop from the engine's tracker, once, without a second turn."""
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    after = await last_seq(client, user)
    await client.inject_fault("sendMessage", 502, count=4)
    await client.send_text(user, SHELTER_BAKU, language_code="en")
    late = await bot_messages(client, user, after, count=2, timeout=40, quiet=1.5)
    assert texts(late).startswith(LATE) and "Help near Baku" in texts(late)
    await eventually(lambda: _drained(stack, key), timeout=20)
    assert count_containing(await client.transcript(user), "Help near Baku") == 1
    tracker = await stack.engine.tracker(key)
    asked = [e for e in tracker["events"] if e.get("event") == "user"]
    assert len(asked) == 1, "the engine must not have run the turn again"


async def _drained(stack, key: str) -> bool:
    return await pending_count(stack, key) == 0
