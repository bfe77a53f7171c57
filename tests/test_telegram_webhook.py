"""Webhook mode: Telegram POSTs updates to the bot service; the secret header is checked, a
redelivered update counts once — also after the service restarted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from actions import context as actions_context
from bot.devtools.emulator import running_emulator
from bot.server import create_app, start_site
from bot.stack import free_port
from bot.telegram.app import SECRET_HEADER, WEBHOOK_PATH
from tests.telegram_helpers import bot_messages, new_user_id, say, texts

pytestmark = pytest.mark.engine
SECRET = "made-up-webhook-secret"


@asynccontextmanager
async def webhook_service(settings, emulator_url: str, port: int) -> AsyncIterator[str]:
    """A second bot service in webhook mode on ``port`` (same engine, its own database)."""
    app = create_app(
        replace(
            settings,
            bot_port=port,
            telegram_token="515151001:webhook-token",
            telegram_api_base_url=emulator_url,
            telegram_webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
            telegram_webhook_secret=SECRET,
        )
    )
    saved = actions_context.get()  # the second app re-points the actions; restore them after
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    finally:
        await runner.cleanup()
        actions_context.configure(saved.repo, saved.renderer, saved.hours)


async def test_webhook_secret_redelivery_and_restart(stack, tmp_path: Path) -> None:
    settings = replace(stack.settings, database_url=f"sqlite:///{tmp_path / 'wh.db'}")
    port = free_port()
    user = new_user_id()
    async with running_emulator() as emu:
        client = emu.client
        async with webhook_service(settings, emu.url, port) as url:
            info = await client.webhook_info()
            assert info["url"] == url
            replies = await say(client, user, "where can I find a shelter in Baku?")
            assert "Baku" in texts(replies)
            update = {
                "update_id": 990001,
                "message": {
                    "message_id": 1, "date": 1767225600, "text": "hello",
                    "chat": {"id": user, "type": "private"},
                    "from": {"id": user, "is_bot": False, "first_name": "Test"},
                },
            }  # fmt: skip
            outs_before = await _bot_count(client, user)
            async with aiohttp.ClientSession() as http:
                async with http.post(url, json=update, headers={SECRET_HEADER: "wrong"}) as r:
                    assert r.status == 403
                async with http.post(url, json=update) as r:
                    assert r.status == 403
                json_headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
                async with http.post(url, data=b"{not json", headers=json_headers) as r:
                    assert r.status == 400
                async with http.post(url, json=[1, 2], headers={SECRET_HEADER: SECRET}) as r:
                    assert r.status == 200  # malformed update: acknowledged, ignored
            await asyncio.sleep(1.5)
            assert await _bot_count(client, user) == outs_before  # nothing was processed
            transcript = await client.transcript(user)
            sent = await client.send_text(user, "hello", language_code="en")
            await bot_messages(client, user, max(e["seq"] for e in transcript))
        # The service restarts; Telegram redelivers the last update: it must not count twice.
        async with webhook_service(settings, emu.url, port):
            await client.redeliver(sent["update_id"])
            after_restart = await client.transcript(user)
            outs = [e for e in after_restart if e["direction"] == "out"]
            await asyncio.sleep(2.0)
            assert await _bot_count(client, user) == len(outs) > outs_before
            stats = (await client.webhook_info()).get("stats") or {}
            assert stats.get("delivered", 1) >= 1


async def _bot_count(client, user: int) -> int:
    return len([e for e in await client.transcript(user) if e["direction"] == "out"])
