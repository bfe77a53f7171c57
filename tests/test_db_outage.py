"""The adapter's tables through a database outage, on a private PostgreSQL cluster the tests
stop and restart: connection errors are retried briefly, a lasting outage is reported as
``DatabaseUnavailable``, and real errors are never retried."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import TelegramUpdate
from bot.storage.transient import RETRY_DELAYS, DatabaseUnavailable, is_transient, with_retries
from bot.telegram.state import ChatStore, Claim
from tests.pgcluster import PrivateCluster


@pytest.fixture
async def chats(cluster: PrivateCluster) -> AsyncIterator[ChatStore]:
    engine = make_engine(cluster.url)
    yield ChatStore(make_sessionmaker(engine))
    await engine.dispose()


async def test_a_stopped_server_is_transient_a_wrong_statement_is_not(
    cluster: PrivateCluster, chats: ChatStore
) -> None:
    async with chats.sessions() as s:
        with pytest.raises(Exception) as wrong:
            await s.execute(text("SELECT no_such_column FROM tg_updates"))
    assert not is_transient(wrong.value)
    await asyncio.to_thread(cluster.stop)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as down:
        await chats.claim_update(1)
    waited = time.monotonic() - started
    assert is_transient(down.value.__cause__)  # the socket's own error, as asyncpg raises it
    assert sum(RETRY_DELAYS) - 0.1 < waited < sum(RETRY_DELAYS) + 3  # retried, then gave up
    calls = 0

    async def duplicate() -> None:  # a real error is raised at once, not retried
        nonlocal calls
        calls += 1
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        await with_retries(duplicate)
    assert calls == 1


async def test_a_restart_mid_transaction_is_retried(
    cluster: PrivateCluster, chats: ChatStore
) -> None:
    assert await chats.claim_update(10) is Claim.NEW
    attempts = 0

    async def mark_done() -> None:
        nonlocal attempts
        attempts += 1
        async with chats.sessions() as s:
            await s.execute(text("SELECT 1"))  # the connection is checked out and alive
            if attempts == 1:  # the server restarts under this transaction
                await asyncio.to_thread(cluster.restart)
            row = await s.get(TelegramUpdate, 10)
            assert row is not None
            row.status = "done"
            await s.commit()

    await with_retries(mark_done)
    assert attempts == 2
    assert await chats.claim_update(10) is Claim.DONE
    await asyncio.to_thread(cluster.restart)  # between transactions: the pool's pre-ping
    assert await chats.claim_update(11) is Claim.NEW


async def test_a_short_outage_is_ridden_out(cluster: PrivateCluster, chats: ChatStore) -> None:
    await chats.touch("u_outage", 4242)
    await asyncio.to_thread(cluster.stop)

    async def back_soon() -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.start)

    restarting = asyncio.create_task(back_soon())
    claim, state = await chats.claim_and_read(20, "u_outage", 4242)
    await restarting
    assert claim is Claim.NEW and state is not None and state.chat_id == 4242
    # A lost commit acknowledgement: the retry finds the claim its first attempt made.
    assert await chats.claim_update(20, mine=True) is Claim.RETAKEN
