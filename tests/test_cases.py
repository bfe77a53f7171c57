"""Cases in the database: one open case per person (also under a race), the queue's order, the
atomic claim, closing with an outcome, staffed hours. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.staffed_hours import StaffedHours
from bot.storage.cases import CaseStore, ClaimConflict, transcript_from_events
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import ConsoleUser, Escalation, utcnow
from tests.db import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
async def cases(request: pytest.FixtureRequest, tmp_path: Path):
    url = await fresh_database(request.param, tmp_path)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s:
        for name in ("op_one", "op_two"):
            s.add(ConsoleUser(username=name, role="operator", password_hash="x", active=True,
                              failed_logins=0))  # fmt: skip
        await s.commit()
    yield CaseStore(sessions), sessions
    await engine.dispose()


async def test_one_open_case_per_person_even_when_opened_at_once(cases) -> None:
    store, _ = cases
    opened = await asyncio.gather(
        *(store.open_case("u_race", "test", p, "az") for p in ("normal", "high", "urgent", "high"))
    )
    assert len({c.id for c in opened}) == 1
    current = await store.open_case_of("u_race")
    assert current is not None and current.priority == "urgent"
    assert current.code and len(current.code) == 6


async def test_queue_order_priority_then_wait(cases) -> None:
    store, sessions = cases
    normal_old = await store.open_case("u_a", "x", "normal", "en")
    high = await store.open_case("u_b", "x", "high", "ru")
    urgent = await store.open_case("u_c", "x", "urgent", "az")
    normal_new = await store.open_case("u_d", "x", "normal", "en")
    async with sessions() as s:
        await s.execute(
            update(Escalation)
            .where(Escalation.id == normal_old.id)
            .values(created_at=utcnow() - dt.timedelta(hours=1))
        )
        await s.commit()
    await store.claim(high.id, 1)
    order = [row.id for row in await store.queue()]
    assert order == [urgent.id, normal_old.id, normal_new.id, high.id]  # assigned last
    assert [row.id for row in await store.queue(include_assigned=False)] == order[:3]


async def test_claim_is_atomic(cases) -> None:
    store, _ = cases
    case = await store.open_case("u_claim", "x", "high", "en")
    results = await asyncio.gather(
        store.claim(case.id, 1), store.claim(case.id, 2), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1 and isinstance(
        next(r for r in results if isinstance(r, Exception)), ClaimConflict
    )
    assert (await store.get(case.id)).assigned_to == winners[0].assigned_to


async def test_waiting_case_is_alerted_by_one_replica_only(cases) -> None:
    """Every replica runs the alert round; the operators' chat hears of a case once."""
    store, _ = cases
    case = await store.open_case("u_alert", "x", "high", "en")
    claims = await asyncio.gather(*(store.claim_alert(case.id) for _ in range(4)))
    assert sorted(claims) == [False, False, False, True]
    await store.release_alert(case.id)  # sending failed: the next round may try again
    assert await store.claim_alert(case.id) is True


async def test_transcript_close_and_reopen(cases) -> None:
    store, _ = cases
    case = await store.open_case(
        "u_t", "operator_command", "high", "ru",
        transcript=[("person", "привет"), ("bot", "Здравствуйте")],
    )  # fmt: skip
    await store.claim(case.id, 1)
    await store.add_message(case.id, "u_t", "operator", "Добрый день", operator_id=1,
                            delivery="pending")  # fmt: skip
    lines = await store.transcript(case.id)
    assert [(m.author, m.text) for m in lines] == [
        ("person", "привет"), ("bot", "Здравствуйте"), ("operator", "Добрый день")
    ]  # fmt: skip
    assert (await store.get(case.id)).first_reply_at is not None
    with pytest.raises(ValueError):
        await store.close(case.id, "whatever")
    closed = await store.close(case.id, "referred_shelter")
    assert closed.status == "closed" and closed.outcome == "referred_shelter"
    with pytest.raises(ClaimConflict):
        await store.close(case.id, "duplicate")
    again = await store.open_case("u_t", "operator_command", "high", "ru")
    assert again.id != case.id and again.status == "queued"


async def test_erase_person_returns_the_open_case(cases) -> None:
    store, _ = cases
    case = await store.open_case("u_gone", "x", "normal", "en", transcript=[("person", "hi")])
    await store.claim(case.id, 2)
    erased = await store.erase_person("u_gone")
    assert [c.id for c in erased] == [case.id]
    assert await store.open_case_of("u_gone") is None
    assert await store.transcript(case.id) == []


def test_transcript_from_tracker_events() -> None:
    events = [
        {"event": "user", "text": "hello"},
        {"event": "bot", "text": "Hi!"},
        {"event": "user", "text": '/ask_shelter{"city": "Bakı"}'},
        {"event": "action", "name": "action_shelter"},
        {"event": "bot", "text": None},
    ]
    assert transcript_from_events(events) == [
        ("person", "hello"), ("bot", "Hi!"), ("person", "[button ask_shelter]")
    ]  # fmt: skip


def test_staffed_hours() -> None:
    hours = StaffedHours.parse("Mon-Fri 09:00-18:00", "Asia/Baku")
    baku = dt.timezone(dt.timedelta(hours=4))
    assert hours.staffed(dt.datetime(2026, 11, 30, 10, 0, tzinfo=baku))  # Monday 10:00
    assert not hours.staffed(dt.datetime(2026, 11, 30, 18, 0, tzinfo=baku))
    assert not hours.staffed(dt.datetime(2026, 11, 29, 12, 0, tzinfo=baku))  # Sunday
    assert hours.staffed(dt.datetime(2026, 11, 30, 6, 30, tzinfo=dt.UTC))  # 10:30 in Baku
    assert StaffedHours.parse("always").staffed()
    assert not StaffedHours.parse("never").staffed()
    assert StaffedHours.parse("Sat-Sun 10:00-14:00").staffed(
        dt.datetime(2026, 11, 29, 11, 0, tzinfo=baku)
    )
    with pytest.raises(ValueError):
        StaffedHours.parse("weekdays 9-5")
