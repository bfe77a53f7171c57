"""Adapter parts without a network: splitting, escaping, keyboards, and the tg_* tables
(idempotency, message ids, pending messages, erasure, retention) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Escalation, Screening, TelegramMessage, TelegramUpdate, utcnow
from bot.storage.repo import Repository
from bot.telegram.delivery import (
    CALLBACK_LIMIT,
    PayloadTokens,
    escape,
    keyboard,
    split_text,
)
from bot.telegram.state import ChatStore, Claim
from tests.db import fresh_database


def test_split_keeps_every_character_and_respects_the_limit() -> None:
    text = ("Paragraph one is here.\n\n" + "word " * 1500 + "\nlast line").strip()
    parts = split_text(text, 4096)
    assert len(parts) > 1
    assert all(0 < len(p) <= 4096 for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", ""
    )
    assert not any(p.endswith("wor") for p in parts)  # cut at spaces, not inside words


def test_split_hard_cuts_text_without_spaces() -> None:
    parts = split_text("x" * 9000, 4096)
    assert [len(p) for p in parts] == [4096, 4096, 808]


def test_escape_makes_markup_literal() -> None:
    assert escape("<script>alert('x')</script> & <b>") == (
        "&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;"
    )


def test_long_payloads_travel_as_tokens() -> None:
    tokens = PayloadTokens(capacity=2)
    short = '/ask_rights{"right_id": "shelter"}'
    assert tokens.encode(short) == short
    long = '/ask_shelter{"city": "' + "Şəki" * 20 + '"}'
    token = tokens.encode(long)
    assert len(token.encode()) <= CALLBACK_LIMIT
    assert tokens.decode(token) == long
    tokens.encode("/a" + "x" * 80)
    tokens.encode("/b" + "x" * 80)
    assert tokens.decode(token) is None  # evicted: the button says "ask again"


def test_keyboard_rows() -> None:
    buttons = [
        {"title": "Yes", "payload": "/affirm"},
        {"title": "No", "payload": "/deny"},
        {"title": "Stop the questions now please", "payload": "/stop_screening"},
    ]
    markup = keyboard(buttons, PayloadTokens())
    assert markup is not None
    rows = markup.inline_keyboard
    assert [[b.text for b in row] for row in rows] == [
        ["Yes", "No"],
        ["Stop the questions now please"],
    ]
    assert rows[0][0].callback_data == "/affirm"
    assert keyboard([], PayloadTokens()) is None


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    url = await fresh_database(request.param, tmp_path)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    yield ChatStore(sessions), Repository(sessions), sessions
    await engine.dispose()


async def test_update_is_claimed_once_and_stale_claims_are_taken_over(store) -> None:
    chats, _, sessions = store
    assert await chats.claim_update(1001) is Claim.NEW
    assert await chats.claim_update(1001) is Claim.BUSY  # in flight elsewhere: not acknowledged
    async with sessions() as s:  # the replica that claimed it died three minutes ago
        await s.execute(
            update(TelegramUpdate)
            .where(TelegramUpdate.update_id == 1001)
            .values(claimed_at=utcnow() - dt.timedelta(minutes=3))
        )
        await s.commit()
    assert await chats.claim_update(1001) is Claim.RETAKEN
    await chats.finish_update(1001)
    async with sessions() as s:
        await s.execute(
            update(TelegramUpdate).values(claimed_at=utcnow() - dt.timedelta(minutes=3))
        )
        await s.commit()
    assert await chats.claim_update(1001) is Claim.DONE  # finished: never again
    assert await chats.claim_update(1001, mine=True) is Claim.DONE  # not even by its owner


async def test_claim_timeout_is_configurable_and_own_claims_are_retaken_at_once(store) -> None:
    _, _, sessions = store
    chats = ChatStore(sessions, claim_timeout=dt.timedelta(seconds=0.3))
    assert await chats.claim_update(1101) is Claim.NEW
    assert await chats.claim_update(1101) is Claim.BUSY
    await asyncio.sleep(0.4)
    assert await chats.claim_update(1101) is Claim.RETAKEN  # its holder went quiet
    assert await chats.claim_update(1101) is Claim.BUSY  # the taker-over holds it now
    assert await chats.claim_update(1101, mine=True) is Claim.RETAKEN  # our own failed attempt
    claim, state = await chats.claim_and_read(1101, "u_claims", 93, mine=True)
    assert claim is Claim.RETAKEN and state is not None and state.chat_id == 93


async def test_pending_is_kept_once_per_message_key(store) -> None:
    chats, _, _ = store
    first = await chats.add_pending("u_pend", "a made-up message", "en", "tg77")
    assert await chats.add_pending("u_pend", "a made-up message", "en", "tg77") == first
    await chats.add_pending("u_pend", "another one", "en", "tg78")
    assert [p.message_key for p in await chats.pending("u_pend")] == ["tg77", "tg78"]


async def test_a_kept_message_is_leased_to_one_replica_at_a_time(store) -> None:
    """Every replica runs the retry loop: only the lease holder answers a kept message."""
    chats, _, sessions = store
    other_replica = ChatStore(sessions)
    pending_id = await chats.add_pending("u_lease", "a made-up message", "en", "tg90")
    leases = await asyncio.gather(
        chats.lease_pending(pending_id, 60), other_replica.lease_pending(pending_id, 60)
    )
    assert sorted(leases) == [False, True]
    await chats.release_pending(pending_id)  # the attempt failed: anybody may try next
    assert await other_replica.lease_pending(pending_id, 0.2) is True
    assert await chats.lease_pending(pending_id, 60) is False
    await asyncio.sleep(0.3)  # the holder died: its lease runs out
    assert await chats.lease_pending(pending_id, 60) is True


async def test_chat_state_language_and_blocking(store) -> None:
    chats, _, _ = store
    state, detected = await chats.touch("u_test1", 555, lambda last: "ru", message_id=3)
    assert (state.chat_id, state.language, state.last_language, detected) == (555, None, "ru", "ru")
    await chats.set_language("u_test1", "az")
    seen: list[str | None] = []
    state, _ = await chats.touch("u_test1", 555, lambda last: seen.append(last) or "en")
    assert seen == ["az"]  # the detector gets the last language as its prior
    assert (state.language, state.last_language) == ("az", "en")
    await chats.set_blocked("u_test1", True)
    assert (await chats.get("u_test1")).blocked
    state, _ = await chats.touch("u_test1", 555)
    assert not state.blocked  # wrote again: unblocked
    assert await chats.deletable("u_test1") == [(555, 3)]


async def test_forget_leaves_nothing_of_the_person(store) -> None:
    chats, repo, sessions = store
    await chats.touch("u_gone", 77)
    await chats.touch("u_stays", 78)
    await chats.track("u_gone", 77, [1, 2, 3])
    await chats.track("u_stays", 78, [9])
    await chats.add_pending("u_gone", "a made-up message", "en")
    await repo.record_escalation("u_gone", "test", "high", "en")
    await repo.record_screening("u_gone", {"ind_violence": True}, 3, "medium", True)
    assert [m for _, m in await chats.deletable("u_gone")] == [1, 2, 3]
    counts = await chats.forget("u_gone")
    assert counts["tg_messages"] == 3 and counts["escalations"] == 1 and counts["tg_chats"] == 1
    assert await chats.get("u_gone") is None
    assert await chats.pending("u_gone") == []
    assert await chats.deletable("u_gone") == []
    assert await chats.get("u_stays") is not None
    assert await chats.deletable("u_stays") == [(78, 9)]


async def test_retention_purge(store) -> None:
    from bot.storage.cases import CaseStore
    from bot.storage.models import CaseMessage

    chats, repo, sessions = store
    cases = CaseStore(sessions)
    await chats.track("u_old", 5, [1, 2])
    await repo.record_screening("u_old", {}, 0, "low", True)
    old_case = await cases.open_case("u_old", "test", "normal", "en", transcript=[("person", "hi")])
    held = await cases.open_case("u_held", "test", "normal", "en", transcript=[("person", "kept")])
    await cases.set_hold(held.id, True)
    fresh = await cases.open_case("u_new", "test", "normal", "en", transcript=[("person", "new")])
    for c in (old_case, held, fresh):
        await cases.close(c.id, "information_given")
    old = utcnow() - dt.timedelta(days=31)
    async with sessions() as s:
        await s.execute(update(TelegramMessage).values(sent_at=utcnow() - dt.timedelta(hours=49)))
        await s.execute(update(Screening).values(created_at=old))
        await s.execute(
            update(Escalation)
            .where(Escalation.id.in_((old_case.id, held.id)))
            .values(closed_at=old)
        )
        await s.commit()
    await chats.track("u_old", 5, [3])
    await chats.purge(retention_days=30)
    assert await cases.purge_texts(retention_days=30) == 1
    assert [m for _, m in await chats.deletable("u_old")] == [3]
    assert [m.text for m in await cases.transcript(old_case.id)] == [None]  # text gone, row kept
    assert [m.text for m in await cases.transcript(held.id)] == ["kept"]  # legal hold
    assert [m.text for m in await cases.transcript(fresh.id)] == ["new"]  # not old enough
    async with sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Screening)) == 0
        assert await s.scalar(select(func.count()).select_from(Escalation)) == 3
        assert await s.scalar(select(func.count()).select_from(CaseMessage)) == 3


def test_replies_of_a_turn_the_engine_finished_after_our_timeout() -> None:
    from bot.telegram.adapter import IN_PROGRESS, replies_in_tracker

    def user(key: str) -> dict:
        return {"event": "user", "text": "x", "metadata": {"message_key": key}}

    listen = {"event": "action", "name": "action_listen"}
    bot = {"event": "bot", "text": "answer", "data": {"buttons": [{"title": "A", "payload": "/a"}]}}
    tracker = {"events": [user("k1"), {"event": "action", "name": "utter_x"}, bot, listen]}
    assert replies_in_tracker(tracker, "k1") == [
        {"text": "answer", "buttons": [{"title": "A", "payload": "/a"}]}
    ]
    assert replies_in_tracker(tracker, "k2") is None  # never reached the engine
    assert replies_in_tracker({"events": [user("k3"), bot]}, "k3") is IN_PROGRESS
    assert replies_in_tracker(tracker, "") is None


async def test_claim_and_read_then_remember(store) -> None:
    chats, repo, _ = store
    claim, first = await chats.claim_and_read(2001, "u_one", 91)
    assert claim is Claim.NEW
    assert first is not None and (first.chat_id, first.last_language, first.case_id) == (
        91,
        None,
        None,
    )
    assert await chats.claim_and_read(2001, "u_one", 91) == (Claim.BUSY, None)  # in flight
    await chats.remember(2001, "u_one", 91, "az", 5)
    assert await chats.claim_and_read(2001, "u_one", 91) == (Claim.DONE, None)  # duplicate
    assert await chats.claim_update(2001) is Claim.DONE  # done: never again
    await chats.add_pending("u_one", "a made-up message", "az")
    case = await repo.record_escalation("u_one", "test", "high", "az")
    _, again = await chats.claim_and_read(2002, "u_one", 91)
    assert again is not None and again.last_language == "az"
    assert (again.case_id, again.case_status, again.has_pending) == (case.id, "queued", True)
    await chats.remember(2002, "u_one", 91, None, 6)  # no detection: the language stays
    assert (await chats.get("u_one")).last_language == "az"
    assert [m for _, m in await chats.deletable("u_one")] == [5, 6]


def test_flood_guard_window_and_one_warning() -> None:
    from bot.telegram.flood import LocalWindow

    guard = LocalWindow(limit=3, window=60)
    assert [guard.allow("u_f", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert guard.allow("u_other", now=3)  # others are not affected
    assert guard.should_warn("u_f", now=3) and not guard.should_warn("u_f", now=10)
    assert guard.allow("u_f", now=61)  # the first message left the window
