"""Faults at the action edge: the engine's calls to our custom actions are refused, fail with a
500 or are slower than ``ENGINE_TIMEOUT``. The engine itself keeps running.

Rasa 3.6 logs a failed custom action, drops its events and carries on (``processor._run_action``);
the turn then usually ends without a single message. What must hold: the person is never left
in silence (the hotline numbers come at once), the real answer follows once the actions are back,
it is delivered exactly once and the engine ran the turn to completion only once.

Real parts only: PTB ↔ the emulator ↔ the real engine ↔ ``bot.devtools.faultproxy`` ↔ /webhook.
"""

from __future__ import annotations

import asyncio

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
    press,
    screening_up_to_the_last_question,
    user_texts_in_tracker,
)
from tests.telegram_helpers import bot_messages, eventually, last_seq, new_user_id, say, texts

pytestmark = pytest.mark.engine
RENDER = ResponseRenderer(load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge"))
FALLBACK = RENDER.render("text_tg_engine_down", "en")["text"]
LATE = RENDER.render("text_tg_late_reply", "en")["text"]
SHELTER_BAKU = "where can I find a shelter in Baku?"
SCREENING_HIGH = RENDER.render("utter_screening_high", "en", {"score": 10})["text"]


@pytest.fixture
def client(stack, emulator):
    return emulator.client


@pytest.fixture
async def proxy(stack):
    """The fault proxy in front of /webhook; back to ``pass`` whatever the test did."""
    proxy = stack.action_proxy
    assert proxy is not None, "the session's engine must call actions through the fault proxy"
    await proxy.set_mode("pass")
    yield proxy
    await proxy.set_mode("pass")


async def _fallback_then_late_answer(stack, client, proxy, mode: str, **how) -> None:
    """Shared scenario: a normal turn, then ``mode`` at the action edge, then recovery."""
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    replies = await say(client, user, "is there a shelter in Lankaran")
    assert "Lankaran" in texts(replies)  # the path works before the fault

    await proxy.set_mode(mode, **how)
    seen = proxy.seen
    replies = await say(client, user, SHELTER_BAKU, quiet=0.5)
    assert texts(replies) == FALLBACK, "the person must get the hotline numbers, not silence"
    assert await pending_count(stack, key) == 1
    if mode != "refuse":
        assert proxy.seen > seen, "the engine did call the action (through the proxy)"
    after = await last_seq(client, user)

    await proxy.set_mode("pass")
    late = await bot_messages(client, user, after, count=2, timeout=60)
    assert texts(late).startswith(LATE) and "Baku" in texts(late)
    await eventually(lambda: _drained(stack, key), timeout=20)

    # Normal service: a new question gets its answer at once, without any fallback.
    replies = await say(client, user, "is there a shelter in Lankaran")
    assert "Lankaran" in texts(replies) and FALLBACK not in texts(replies)
    transcript = await client.transcript(user)
    assert count_containing(transcript, "Help near Baku") == 1, "the late answer came once"
    assert count_containing(transcript, FALLBACK.splitlines()[0]) == 1


async def _drained(stack, key: str) -> bool:
    return await pending_count(stack, key) == 0


async def test_actions_down_gives_numbers_then_the_answer(stack, client, proxy) -> None:
    await _fallback_then_late_answer(stack, client, proxy, "refuse")


async def test_actions_500_gives_numbers_then_the_answer(stack, client, proxy) -> None:
    await _fallback_then_late_answer(stack, client, proxy, "error", status=500)


async def test_slow_action_gives_numbers_now_and_the_answer_once_later(
    stack, client, proxy
) -> None:
    """An action slower than ENGINE_TIMEOUT: the person gets the numbers when the timeout
    passes, the engine's own answer when the action returns — and the turn is not run again."""
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    await say(client, user, "hello")
    delay = stack.settings.engine_timeout + 4.0
    await proxy.set_mode("delay", seconds=delay)
    loop = asyncio.get_running_loop()
    started = loop.time()
    replies = await say(client, user, SHELTER_BAKU, quiet=0.3)
    assert texts(replies) == FALLBACK
    assert loop.time() - started < delay, "the numbers must not wait for the slow action"
    after = await last_seq(client, user)
    late = await bot_messages(client, user, after, count=2, timeout=delay + 30)
    assert texts(late).startswith(LATE) and "Baku" in texts(late)
    await eventually(lambda: _drained(stack, key), timeout=20)

    await proxy.set_mode("pass")
    # The engine handles one conversation's turns in order, so a second run of the slow turn
    # (if any had been started) would have finished before this one is answered.
    replies = await say(client, user, "is there a shelter in Lankaran")
    assert "Lankaran" in texts(replies)
    tracker = await stack.engine.tracker(key)
    assert user_texts_in_tracker(tracker).count(SHELTER_BAKU) == 1, "the turn ran twice"
    assert count_containing(await client.transcript(user), "Help near Baku") == 1


async def test_slow_action_then_another_message_keeps_the_order(stack, client, proxy) -> None:
    """While the slow turn is still running the person writes again: both get the numbers,
    then both answers arrive, in the order they were asked, each once."""
    user = new_user_id()
    await say(client, user, "hello")
    await proxy.set_mode("hold")  # the action answers when the test says so
    assert texts(await say(client, user, SHELTER_BAKU, quiet=0.3)) == FALLBACK
    lankaran = "is there a shelter in Lankaran"
    assert texts(await say(client, user, lankaran, quiet=0.3)) == FALLBACK
    after = await last_seq(client, user)
    await proxy.set_mode("pass")
    late = await bot_messages(client, user, after, count=4, timeout=30)
    body = texts(late)
    assert body.count(LATE) == 2
    assert body.index("Baku") < body.index("Lankaran")
    transcript = await client.transcript(user)
    assert count_containing(transcript, "Help near Baku") == 1
    assert count_containing(transcript, "Help near Lankaran") == 1
    tracker = await stack.engine.tracker(pseudonymise(user, stack.settings.secret_key))
    assert user_texts_in_tracker(tracker).count(SHELTER_BAKU) == 1
    assert user_texts_in_tracker(tracker).count(lankaran) == 1


async def test_failed_action_in_a_form_is_run_again_from_the_same_step(
    stack, client, proxy
) -> None:
    """The screening's last answer: the form completes, then its result action is refused. The
    retry rewinds that turn and runs it again, so the person gets their result — not the reply
    to a bare "yes" outside the form — and the result is recorded once."""
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    replies = await screening_up_to_the_last_question(client, user)
    await proxy.set_mode("refuse")
    assert texts(await press(client, user, replies, "/affirm")) == FALLBACK
    after = await last_seq(client, user)
    await proxy.set_mode("pass")
    late = await bot_messages(client, user, after, count=2, timeout=60)
    assert texts(late) == LATE + "\n" + SCREENING_HIGH
    await eventually(lambda: _drained(stack, key), timeout=20)
    async with make_sessionmaker(stack.app[DB])() as s:
        rows = (await s.scalars(select(Screening).where(Screening.user_key == key))).all()
    assert [(r.score, r.completed) for r in rows] == [(10, True)]
