"""One person (or a script) flooding the bot: through the emulator, PTB's polling, the adapter
and the real engine — the brake as a person meets it, not the class on its own.

Why it matters: the engine is shared; one sender's hundreds of messages must not take it from
a person in trouble writing at the same moment. Everyone here is made up.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from bot.config import ROOT
from bot.nlg import ResponseRenderer
from bot.privacy import pseudonymise
from bot.responses import load_contacts, load_responses
from tests.telegram_helpers import bot_messages, last_seq, new_user_id, texts

pytestmark = pytest.mark.engine
FLOOD_LIMIT = 20  # docs/telegram.md: more than 20 messages within 60 s are not processed
FLOOD = 60
QUESTIONS = [
    "where can I find a shelter in Baku?",
    "my employer took my passport",
    "what are my rights?",
    "I need a lawyer",
]


async def answer_seconds(client, user: int, text: str) -> float:
    """Seconds from sending ``text`` until the bot's first message back."""
    after = await last_seq(client, user)
    started = time.perf_counter()
    await client.send_text(user, text, language_code="en")
    await client.wait_for(user, count=1, after=after, timeout=30)
    seconds = time.perf_counter() - started
    await bot_messages(client, user, after, quiet=0.3)  # let the turn finish
    return seconds


async def test_one_flooding_person_reaches_the_engine_at_most_the_limit_with_one_note_and_others_stay_fast(  # noqa: E501
    stack, emulator
) -> None:
    client = emulator.client
    slow_down = ResponseRenderer(
        load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge")
    ).render("text_tg_slow_down", "en")["text"]
    flooder, other = new_user_id(), new_user_id()
    key = pseudonymise(flooder, stack.settings.secret_key)

    quiet = [await answer_seconds(client, other, q) for q in QUESTIONS]

    async def flood() -> None:
        for i in range(FLOOD):
            await client.send_text(flooder, f"hello again, message {i}", language_code="en")

    flooding = asyncio.create_task(flood())
    await asyncio.sleep(0.2)  # the flood is under way
    during = [await answer_seconds(client, other, q) for q in QUESTIONS]
    await flooding

    replies = await bot_messages(client, flooder, 0, count=FLOOD_LIMIT + 1, quiet=2.0, timeout=60)
    notes = [r for r in replies if r["plain_text"] == slow_down]
    assert len(notes) == 1, f"{len(notes)} slow-down notes"
    tracker = await stack.engine.tracker(key)
    reached = [e for e in tracker["events"] if e.get("event") == "user"]
    assert 1 <= len(reached) <= FLOOD_LIMIT, f"{len(reached)} messages reached the engine"
    answered = [r for r in replies if r["plain_text"] != slow_down]
    assert answered, "the messages within the limit are answered"

    # The other person noticed nothing: answers as fast as without the flood (a generous bound:
    # two cores shared with the engine and the emulator), and never the flooder's note.
    bound = max(3 * max(quiet), max(quiet) + 2.0)
    assert max(during) <= bound, f"during the flood {during}, without {quiet}"
    assert statistics.median(during) <= max(3 * statistics.median(quiet), 1.5)
    assert slow_down not in texts(await client.transcript(other))
