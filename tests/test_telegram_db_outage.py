"""The database restarted or down while people write, end to end: the real engine, the bot
service on a private PostgreSQL cluster this test stops and restarts, the emulator as Telegram.

Promise: every message is answered exactly once; while the database is away the person still
gets the hotline numbers (and the emergency answer at once when in danger), and the message is
answered properly when the database is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from actions import context as actions_context
from bot.config import Settings
from bot.devtools.emulator import Emulator, EmulatorClient, running_emulator
from bot.privacy import pseudonymise
from bot.server import create_app, start_site
from bot.stack import free_port
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import Escalation, TelegramUpdate
from bot.telegram.adapter import message_key_for
from bot.telegram.app import WEBHOOK_PATH
from tests.pgcluster import PrivateCluster, private_cluster
from tests.telegram_helpers import bot_messages, engine_paused, last_seq, say, texts

pytestmark = pytest.mark.engine
_users = iter(range(7_300_000_001, 7_300_001_000))


def outage_emulator() -> Emulator:
    """An emulator that keeps redelivering what was not acknowledged, as Telegram does."""
    return Emulator(
        webhook_retries=400, webhook_backoff=0.2, webhook_backoff_max=0.5, webhook_timeout=60
    )


@asynccontextmanager
async def bot_service(
    settings: Settings,
    cluster: PrivateCluster,
    emulator_url: str,
    *,
    webhook: bool,
    port: int,
    var_dir: Path,
    engine_timeout: float = 15.0,
) -> AsyncIterator[None]:
    """The bot service (polling or webhook) on the private cluster; ``var_dir`` holds its
    spool of kept updates, so a second service on the same port and directory finds them."""
    app = create_app(
        replace(
            settings,
            bot_port=port,
            spool_dir=var_dir / "spool",
            database_url=cluster.url,
            telegram_token="727272001:outage-token",
            telegram_api_base_url=emulator_url,
            telegram_webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}" if webhook else None,
            telegram_webhook_secret="made-up-outage-secret" if webhook else None,
            engine_timeout=engine_timeout,
        )
    )
    saved = actions_context.get()  # this app re-points the actions; restore them after
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield
    finally:
        await runner.cleanup()
        actions_context.configure(saved.repo, saved.renderer, saved.hours)


@asynccontextmanager
async def service_on(
    settings: Settings,
    cluster: PrivateCluster,
    var_dir: Path,
    *,
    webhook: bool,
    engine_timeout: float = 15.0,
) -> AsyncIterator[EmulatorClient]:
    """One bot service with its own emulator."""
    async with (
        running_emulator(emulator=outage_emulator()) as emu,
        bot_service(
            settings,
            cluster,
            emu.url,
            webhook=webhook,
            port=free_port(),
            var_dir=var_dir,
            engine_timeout=engine_timeout,
        ),
    ):
        yield emu.client


def _tries(info: dict, update_id: int) -> list[int]:
    """The statuses the bot service answered to each delivery of one update."""
    return [d["status"] for d in info["deliveries"] if d["update_id"] == update_id]


async def _outs(client: EmulatorClient, user: int, after: int) -> list[dict]:
    return [e for e in await client.transcript(user, after=after) if e["direction"] == "out"]


async def _user_turns(stack, user: int, update_id: int) -> int:
    """How many times the engine got this update's message (1: answered once, not re-run)."""
    tracker = await stack.engine.tracker(pseudonymise(user, stack.settings.secret_key))
    key = message_key_for(update_id)
    return sum(
        1
        for e in tracker.get("events") or []
        if e.get("event") == "user" and (e.get("metadata") or {}).get("message_key") == key
    )


async def test_webhook_database_restarted_and_down(stack, contacts, tmp_path: Path) -> None:
    hotline, police = contacts["trafficking_hotline"].number, contacts["police"].number
    with private_cluster() as cluster:
        async with service_on(stack.settings, cluster, tmp_path, webhook=True) as client:
            user = next(_users)
            assert await say(client, user, "hello")

            # Restarted mid-conversation: under a turn in progress, then between turns.
            before = await last_seq(client, user)
            with engine_paused(stack.engine_proc.pid):
                sent = await client.send_text(user, "I need a lawyer")
                await asyncio.sleep(1.0)  # claimed; the turn waits for the engine
                await asyncio.to_thread(cluster.restart)  # every pooled connection dies
            answered = await bot_messages(client, user, before, timeout=30, quiet=1.5)
            assert "saved your message" not in texts(answered)  # the restart was ridden out
            assert await _user_turns(stack, user, sent["update_id"]) == 1
            await asyncio.to_thread(cluster.restart)
            for text in ("what are my rights?", "thank you"):
                assert await say(client, user, text, quiet=1.0)

            # Down for a while: the hotline numbers now, the answer when it is back.
            before = await last_seq(client, user)
            await asyncio.to_thread(cluster.stop)
            started = time.monotonic()
            sent = await client.send_text(user, "where can I find a shelter in Baku?")
            fallback = await bot_messages(client, user, before, timeout=20, quiet=0.5)
            assert hotline in texts(fallback) and "saved your message" in texts(fallback)
            assert time.monotonic() - started < 10
            # Acknowledged and kept on disk: an error would make Telegram slow down delivery of
            # every update, and the next person in danger would wait for their numbers.
            assert _tries(await client.webhook_info(), sent["update_id"]) == [200]
            assert [p.name for p in (tmp_path / "spool").rglob("*.json")] == [
                f"{sent['update_id']}.json"
            ]
            seen = max(e["seq"] for e in fallback)
            started = time.monotonic()
            await client.send_text(user, "help, they locked me in and are beating me")
            danger = await bot_messages(client, user, seen, timeout=10, quiet=0.5)
            assert police in texts(danger)
            assert time.monotonic() - started < 2.0  # not kept waiting for the database
            seen = max(e["seq"] for e in danger)
            await asyncio.sleep(3.0)  # replays fail meanwhile: nothing is repeated
            assert not await _outs(client, user, seen)
            await asyncio.to_thread(cluster.start)
            answer = await bot_messages(client, user, seen, timeout=60, quiet=2.0)
            assert "Baku" in texts(answer) and "Sorry for the wait" in texts(answer)
            assert police not in texts(answer)  # the emergency answer is not sent twice
            assert await _user_turns(stack, user, sent["update_id"]) == 1
            assert not list((tmp_path / "spool").rglob("*.json"))  # processed: nothing kept
            later = await say(client, user, "thank you", quiet=1.5)
            assert later and "Baku" not in texts(later)
            await asyncio.sleep(1.5)  # nothing else arrives: nothing answered twice
            all_out = fallback + danger + answer + later
            assert len(await _outs(client, user, before)) == len(all_out)


async def test_webhook_kept_update_survives_a_service_restart_during_the_outage(
    stack, contacts, tmp_path: Path
) -> None:
    """Kept on disk, not only in memory: the service restarted while the database is still down
    processes the kept message once the database is back."""
    hotline = contacts["trafficking_hotline"].number
    port = free_port()
    with private_cluster() as cluster:
        async with running_emulator(emulator=outage_emulator()) as emu:
            client = emu.client
            user = next(_users)
            service = bot_service(
                stack.settings, cluster, emu.url, webhook=True, port=port, var_dir=tmp_path
            )
            async with service:
                assert await say(client, user, "hello")
                before = await last_seq(client, user)
                await asyncio.to_thread(cluster.stop)
                sent = await client.send_text(user, "where can I find a shelter in Baku?")
                fallback = await bot_messages(client, user, before, timeout=20, quiet=0.5)
                assert hotline in texts(fallback)
            assert list((tmp_path / "spool").rglob("*.json"))  # kept while nobody runs
            await asyncio.to_thread(cluster.start)
            seen = max(e["seq"] for e in fallback)
            service = bot_service(
                stack.settings, cluster, emu.url, webhook=True, port=port, var_dir=tmp_path
            )
            async with service:
                answer = await bot_messages(client, user, seen, timeout=60, quiet=2.0)
                assert "Baku" in texts(answer) and "Sorry for the wait" not in texts(answer)
                assert await _user_turns(stack, user, sent["update_id"]) == 1
                assert not list((tmp_path / "spool").rglob("*.json"))
                assert _tries(await client.webhook_info(), sent["update_id"]) == [200]


async def test_polling_database_down_danger_answered_at_once(
    stack, contacts, tmp_path: Path
) -> None:
    police = contacts["police"].number
    with private_cluster() as cluster:
        async with service_on(stack.settings, cluster, tmp_path, webhook=False) as client:
            user = next(_users)
            assert await say(client, user, "hello")
            before = await last_seq(client, user)
            await asyncio.to_thread(cluster.stop)
            asked = await client.send_text(user, "where can I find a shelter in Baku?")
            fallback = await bot_messages(client, user, before, timeout=20, quiet=0.5)
            assert "saved your message" in texts(fallback)
            seen = max(e["seq"] for e in fallback)
            started = time.monotonic()
            await client.send_text(user, "help, they locked me in and are beating me")
            danger = await bot_messages(client, user, seen, timeout=10, quiet=0.5)
            assert police in texts(danger)
            assert time.monotonic() - started < 2.0  # not kept waiting for the database
            seen = max(e["seq"] for e in danger)
            await asyncio.sleep(4.0)  # the updates are retried meanwhile: nothing is repeated
            assert not await _outs(client, user, seen)
            await asyncio.to_thread(cluster.start)
            answer = await bot_messages(client, user, seen, timeout=60, quiet=3.0)
            assert "Baku" in texts(answer) and "Sorry for the wait" in texts(answer)
            assert police not in texts(answer)  # the emergency answer is not sent twice
            assert await _user_turns(stack, user, asked["update_id"]) == 1
            engine = make_engine(cluster.url)
            try:
                async with make_sessionmaker(engine)() as s:
                    key = pseudonymise(user, stack.settings.secret_key)
                    urgent = await s.scalars(
                        select(Escalation.priority).where(Escalation.user_key == key)
                    )
                    assert "urgent" in list(urgent)  # the case is recorded once it can be
                    stuck = await s.scalars(
                        select(TelegramUpdate.update_id).where(
                            TelegramUpdate.status == "processing"
                        )
                    )
                    assert not list(stuck)
            finally:
                await engine.dispose()
            later = await say(client, user, "thank you", quiet=1.5)
            assert later


async def test_database_lost_mid_turn_reaches_the_error_handler(
    stack, contacts, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The engine times out and the message cannot be kept in the database (gone): the error
    handler, without the database, gives the hotline numbers; the update is kept on disk, and
    once the database is back its replay delivers the turn the engine finished meanwhile."""
    hotline = contacts["trafficking_hotline"].number
    with private_cluster() as cluster:
        async with service_on(
            stack.settings, cluster, tmp_path, webhook=True, engine_timeout=3.0
        ) as client:
            user = next(_users)
            assert await say(client, user, "hello")
            before = await last_seq(client, user)
            with engine_paused(stack.engine_proc.pid):
                sent = await client.send_text(user, "where can I find a shelter in Baku?")
                await asyncio.sleep(1.0)  # claimed; the turn waits for the engine
                await asyncio.to_thread(cluster.stop)
                fallback = await bot_messages(client, user, before, timeout=20, quiet=0.5)
            assert hotline in texts(fallback) and "saved your message" in texts(fallback)
            kept = [
                r.args
                for r in caplog.records
                if r.name == "bot.telegram.handlers" and "kept for later" in r.getMessage()
            ]
            assert (sent["update_id"], "ConnectionRefusedError") in kept  # via the error handler
            await asyncio.sleep(4.0)  # replayed meanwhile: no second hotline message
            assert len(await _outs(client, user, before)) == len(fallback)
            await asyncio.to_thread(cluster.start)
            seen = max(e["seq"] for e in fallback)
            answer = await bot_messages(client, user, seen, timeout=60, quiet=2.0)
            assert "Baku" in texts(answer) and "Sorry for the wait" in texts(answer)
            assert await _user_turns(stack, user, sent["update_id"]) == 1  # not run twice
            assert _tries(await client.webhook_info(), sent["update_id"]) == [200]
            later = await say(client, user, "thank you", quiet=1.5)
            assert later and "Baku" not in texts(later)
