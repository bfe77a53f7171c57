"""The engine killed (SIGKILL) in the middle of a conversation, then restarted on the same port.

The person is mid-screening (ten of eleven questions answered, kept by the engine's tracker
store on disk) when their last answer's turn is in flight and the engine dies. What must hold:
the hotline numbers come at once, messages written while the engine is down get them too and are
kept, and after the restart every kept message is answered in order, exactly once, from the
state the conversation had — then the bot answers normally again.

This test restarts the session's only engine (one model load, ~30-80 s); the ``engine_restored``
fixture brings it back whatever happens, because every later test needs it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.config import ROOT
from bot.nlg import ResponseRenderer
from bot.privacy import pseudonymise
from bot.responses import load_contacts, load_responses
from bot.server import DB
from bot.storage.db import make_sessionmaker
from bot.storage.models import Screening
from tests.fault_helpers import (
    count_containing,
    pending_count,
    screening_up_to_the_last_question,
)
from tests.telegram_helpers import bot_messages, eventually, last_seq, new_user_id, say, texts

pytestmark = pytest.mark.engine
RENDER = ResponseRenderer(load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge"))
FALLBACK = RENDER.render("text_tg_engine_down", "en")["text"]
LATE = RENDER.render("text_tg_late_reply", "en")["text"]
SCREENING_HIGH = RENDER.render("utter_screening_high", "en", {"score": 10})["text"]


@pytest.fixture
def client(stack, emulator):
    return emulator.client


@pytest.fixture
async def engine_restored(stack) -> AsyncIterator[None]:
    """Leave the session's engine and action proxy as they were, even if the test fails."""
    yield
    await stack.action_proxy.set_mode("pass")
    if stack.engine_proc.poll() is not None or not await stack.engine.ready():
        await stack.restart_engine()


async def test_engine_killed_mid_conversation_and_restarted(stack, client, engine_restored) -> None:
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    proxy = stack.action_proxy
    loop = asyncio.get_running_loop()

    # Mid-conversation: a screening with ten of its eleven questions answered.
    replies = await screening_up_to_the_last_question(client, user)

    # The last answer's turn is in flight (its action held at the proxy) when the engine dies.
    await proxy.set_mode("hold")
    seen = proxy.seen
    message = next(r for r in reversed(replies) if r.get("reply_markup"))
    after = await last_seq(client, user)
    await client.press(user, message["message_id"], "/affirm")
    await proxy.wait_seen(seen + 1)
    killed_at = loop.time()
    stack.kill_engine()
    fallback = await bot_messages(client, user, after, quiet=0.3)
    assert texts(fallback) == FALLBACK
    assert loop.time() - killed_at < stack.settings.engine_timeout, "numbers at once, no timeout"
    await proxy.set_mode("pass")  # the held call's engine is gone: it is dropped, not run

    # Written while the engine is down: the numbers again, and kept.
    for question in ("where can I find a shelter in Baku?", "is there a shelter in Lankaran"):
        assert texts(await say(client, user, question, quiet=0.3)) == FALLBACK
    assert await pending_count(stack, key) == 3

    after = await last_seq(client, user)
    load_seconds = await stack.restart_engine()
    ready_at = loop.time()
    await client.wait_for(user, count=1, after=after, timeout=30)
    waited = loop.time() - ready_at
    # The retry loop probes every 2 s while messages wait: no one waits minutes after a restart.
    assert waited < 10, f"first kept message answered {waited:.1f} s after the engine was ready"
    late = await bot_messages(client, user, after, count=6, timeout=60, quiet=1.0)
    body = texts(late)
    assert body.count(LATE) == 3
    # In order, and the screening resumed from the answers given before the crash.
    assert (
        body.index(SCREENING_HIGH) < body.index("Help near Baku") < body.index("Help near Lankaran")
    )
    await eventually(lambda: _drained(stack, key), timeout=20)

    # Normal service, conversation state intact, nothing twice.
    replies = await say(client, user, "thank you")
    assert texts(replies) == RENDER.render("utter_thank", "en")["text"]
    transcript = await client.transcript(user)
    for needle in (SCREENING_HIGH, "Help near Baku", "Help near Lankaran"):
        assert count_containing(transcript, needle) == 1, needle
    async with make_sessionmaker(stack.app[DB])() as s:
        screenings = (await s.scalars(select(Screening).where(Screening.user_key == key))).all()
    assert [(x.score, x.completed) for x in screenings] == [(10, True)], "the result ran once"
    print(f"engine reload {load_seconds:.0f} s; first kept message answered {waited:.1f} s later")


async def _drained(stack, key: str) -> bool:
    return await pending_count(stack, key) == 0
