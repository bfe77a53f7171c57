"""The bot service killed (SIGKILL) with an update in flight, in webhook mode.

The real engine, the real service as a `ctip serve` child process, the emulator as Telegram
(it keeps redelivering what was not acknowledged). The person must get exactly one answer to
the message the dead process was on, and the engine must not run that turn twice.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.devtools.emulator import Emulator, running_emulator
from bot.privacy import pseudonymise
from bot.stack import free_port
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import TelegramUpdate
from bot.telegram.adapter import IN_PROGRESS, message_key_for, outgoing, replies_in_tracker
from bot.telegram.app import WEBHOOK_PATH
from tests.service_process import ServiceProcess
from tests.telegram_helpers import bot_messages, engine_paused, eventually, new_user_id, say, texts

pytestmark = pytest.mark.engine

SECRET_KEY = "made-up-secret-for-the-crash-test"
CLAIM_TIMEOUT = 10.0  # seconds; production default 120


def _user_turns(tracker: dict, message_key: str) -> int:
    return sum(
        1
        for e in tracker.get("events") or []
        if e.get("event") == "user" and (e.get("metadata") or {}).get("message_key") == message_key
    )


async def test_update_in_flight_when_the_service_is_killed(stack, tmp_path: Path) -> None:
    port = free_port()
    database_url = f"sqlite:///{tmp_path / 'crash.db'}"
    # Telegram keeps trying an unacknowledged update for a long time; so does this emulator.
    telegram = Emulator(
        webhook_retries=400, webhook_backoff=0.2, webhook_backoff_max=0.5, webhook_timeout=60
    )
    async with running_emulator(emulator=telegram) as emu:
        client = emu.client
        env = {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SECRET_KEY,
            "TELEGRAM_BOT_TOKEN": "626262001:crash-token",
            "TELEGRAM_API_BASE_URL": emu.url,
            "TELEGRAM_WEBHOOK_URL": f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
            "TELEGRAM_WEBHOOK_SECRET": "made-up-crash-webhook-secret",
            "RASA_URL": stack.settings.engine_url,
            "ENGINE_TIMEOUT": "30",  # the frozen engine must not time out: the kill comes first
            "TELEGRAM_CLAIM_TIMEOUT": str(CLAIM_TIMEOUT),
            "STAFFED_HOURS": "always",
        }
        first = await ServiceProcess(env, port, tmp_path / "first.log").start()
        second = ServiceProcess(env, port, tmp_path / "second.log")
        db = make_engine(database_url)
        sessions = make_sessionmaker(db)

        async def claim_status(update_id: int) -> str | None:
            async with sessions() as s:
                return await s.scalar(
                    select(TelegramUpdate.status).where(TelegramUpdate.update_id == update_id)
                )

        try:
            user = new_user_id()
            key = pseudonymise(user, SECRET_KEY)
            assert await say(client, user, "hello")  # the service answers normally
            before = max(e["seq"] for e in await client.transcript(user))

            # The update in flight: the engine is frozen while the service waits for it …
            with engine_paused(stack.engine_proc.pid):
                sent = await client.send_text(user, "where can I find a shelter in Baku?")
                update_id = sent["update_id"]
                message_key = message_key_for(update_id)
                await eventually(lambda: _is(claim_status(update_id), "processing"))
                await asyncio.sleep(1.0)  # the request is in the engine's socket
                first.pause()  # … then the service freezes, and the engine finishes the turn
            claimed_at = time.monotonic()

            async def finished() -> bool:
                found = replies_in_tracker(await stack.engine.tracker(key), message_key)
                return found is not None and found is not IN_PROGRESS

            await eventually(finished, timeout=30)
            first.kill()  # died with the engine's answer unread: nothing was delivered
            assert await claim_status(update_id) == "processing"
            assert not await _outs(client, user, before)

            await second.start()
            answers = await bot_messages(client, user, before, timeout=90, quiet=3.0)
            answered_after = time.monotonic() - claimed_at

            tracker = await stack.engine.tracker(key)
            assert _user_turns(tracker, message_key) == 1  # the engine ran the turn once
            turn = outgoing(replies_in_tracker(tracker, message_key))
            assert turn and len(answers) == len(turn), texts(answers)  # exactly one answer
            assert "Baku" in texts(answers)
            assert await claim_status(update_id) == "done"
            # The live claim was not taken over early: Telegram heard 503 until it went stale.
            statuses = [
                d["status"]
                for d in (await client.webhook_info())["deliveries"]
                if d["update_id"] == update_id
            ]
            assert 503 in statuses and statuses[-1] == 200, statuses
            assert answered_after >= CLAIM_TIMEOUT - 2.0
            assert "turn of a taken-over update found" in second.log()

            later = await say(client, user, "thank you")  # and the conversation goes on
            assert later and "Baku" not in texts(later)
            await asyncio.sleep(2.0)  # nothing else arrives: no duplicate, no late fallback
            assert len(await _outs(client, user, before)) == len(answers) + len(later)
        finally:
            first.kill()
            second.stop()
            await db.dispose()


async def _is(value, expected: object) -> bool:
    return await value == expected


async def _outs(client, user: int, after: int) -> list[dict]:
    return [e for e in await client.transcript(user, after=after) if e["direction"] == "out"]
