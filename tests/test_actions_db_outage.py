"""Custom actions through a database outage, on a private PostgreSQL cluster the tests stop.

A restart is ridden out (the lookup retried); through a longer outage the person still gets the
action's answer, and the case or screening it records is written when the database is back
(``actions.records``), not lost, and only once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import func, select

from actions import context, records
from actions.contacts import ActionContacts
from actions.handoff import ActionHandoff
from actions.screening import INDICATORS, STRONG, ActionScreeningResult
from bot.nlg import ResponseRenderer
from bot.storage.models import Escalation, Screening
from bot.storage.repo import Repository
from bot.storage.transient import RETRY_DELAYS
from tests.db import loaded_repository
from tests.pgcluster import PrivateCluster


@pytest.fixture
async def repo(
    cluster: PrivateCluster, root: Path, responses: dict, contacts: dict
) -> AsyncIterator[Repository]:
    repository, engine = await loaded_repository(cluster.url, root / "knowledge")
    context.configure(repository, ResponseRenderer(responses, contacts))
    yield repository
    records.abandon()
    await engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def quick_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Background attempts every half second, so a test need not wait minutes."""
    monkeypatch.setattr(records, "LATER_DELAYS", (0.5,) * 120)


def tracker(intent: str, sender: str, slots: dict[str, Any] | None = None) -> Tracker:
    events = [  # what a transcript is made of: the person's words and the bot's
        {"event": "user", "text": "made-up words of a made-up person", "parse_data": {
            "intent": {"name": intent, "confidence": 0.95}}},
        {"event": "bot", "text": "the emergency answer"},
    ]  # fmt: skip
    return Tracker(
        sender_id=sender,
        slots={"language": "en", **(slots or {})},
        latest_message={"text": "…", "intent": {"name": intent, "confidence": 0.95},
                        "entities": [], "metadata": {"language": "en"}},
        events=events, paused=False, followup_action=None, active_loop={},
        latest_action_name="action_listen",
    )  # fmt: skip


async def run(action: Any, t: Tracker) -> list[dict[str, Any]]:
    dispatcher = CollectingDispatcher()
    await action.run(dispatcher, t, {})
    return dispatcher.messages


async def count(repo: Repository, model: Any, sender: str) -> int:
    async with repo.sessions() as s:
        return int(
            await s.scalar(select(func.count()).select_from(model).where(model.user_key == sender))
        )


async def test_a_restart_during_a_lookup_is_ridden_out(
    cluster: PrivateCluster, repo: Repository, contacts: dict
) -> None:
    await asyncio.to_thread(cluster.stop)

    async def back_soon() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.start)

    restarting = asyncio.create_task(back_soon())
    messages = await run(ActionContacts(), tracker("ask_hotline", "u_lookup"))
    await restarting
    assert contacts["trafficking_hotline"].number in messages[0]["text"]


async def test_an_emergency_case_is_recorded_when_the_database_is_back(
    cluster: PrivateCluster, repo: Repository, quick_later: None
) -> None:
    """action_handoff after an emergency the NLU recognised: the answer was already sent, so the
    case is all that is left to do — it must not be lost with the outage."""
    await asyncio.to_thread(cluster.stop)
    started = time.monotonic()
    messages = await run(ActionHandoff(), tracker("emergency", "u_outage_emergency"))
    assert time.monotonic() - started < sum(RETRY_DELAYS) + 4  # not held for the outage
    assert messages == []  # after an emergency the action says nothing more
    assert records.waiting() == 1
    await asyncio.sleep(1.2)  # a couple of background attempts fail too
    assert records.waiting() == 1
    await asyncio.to_thread(cluster.start)
    assert await records.settle(timeout=30) == 0
    async with repo.sessions() as s:
        cases = list(
            await s.scalars(select(Escalation).where(Escalation.user_key == "u_outage_emergency"))
        )
    assert len(cases) == 1  # written once, by the background attempt
    assert (cases[0].priority, cases[0].status, cases[0].reason) == (
        "urgent",
        "queued",
        "emergency",
    )
    assert "danger" in (cases[0].risk_flags or [])


async def test_a_high_risk_screening_is_answered_and_recorded_after_the_outage(
    cluster: PrivateCluster, repo: Repository, quick_later: None
) -> None:
    answers = {k: k in STRONG for k in INDICATORS}  # every strong indicator: high risk
    sender = "u_outage_screening"
    await asyncio.to_thread(cluster.stop)
    messages = await run(ActionScreeningResult(), tracker("deny", sender, answers))
    # The result reaches the person at once: before, the action failed and said nothing.
    expected = context.get().renderer.render("utter_screening_high", "en", {"score": len(STRONG)})
    assert messages[0]["text"] == expected["text"]
    assert records.waiting() == 2  # the screening and the case
    await asyncio.to_thread(cluster.start)
    assert await records.settle(timeout=30) == 0
    assert await count(repo, Screening, sender) == 1
    assert await count(repo, Escalation, sender) == 1


async def test_real_errors_are_not_deferred(repo: Repository) -> None:
    """Only an unreachable database waits; a wrong write is a bug and goes through at once."""

    async def wrong() -> None:
        await repo.record_escalation("u_wrong", "emergency", "not-a-priority", "en")

    with pytest.raises(ValueError):
        await records.keep("a case", wrong)
    assert records.waiting() == 0
