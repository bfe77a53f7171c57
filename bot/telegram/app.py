"""Build, start and stop the PTB ``Application``; the webhook endpoint for webhook mode.

Long polling by default; ``TELEGRAM_WEBHOOK_URL`` switches to a webhook served by the bot
service's own aiohttp server (one server for the engine's endpoints, Telegram and the console),
so PTB's built-in tornado server is not used. ``TELEGRAM_API_BASE_URL`` points everything at
another Bot API server (the local emulator, a self-hosted telegram-bot-api).
"""

from __future__ import annotations

import hmac
import json
import logging

from aiohttp import web
from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot.config import Settings
from bot.engine import EngineClient
from bot.language import LANGUAGES
from bot.nlg import ResponseRenderer
from bot.staffed_hours import StaffedHours
from bot.storage.repo import Repository
from bot.telegram.adapter import TelegramAdapter
from bot.telegram.handlers import COMMANDS, register
from bot.telegram.processor import PerChatUpdateProcessor
from bot.telegram.state import ChatStore
from bot.tracker_eraser import TrackerEraser

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def api_base(url: str | None) -> tuple[str, str] | None:
    """``(base_url, base_file_url)`` for PTB from ``TELEGRAM_API_BASE_URL``.

    Accepts the server root (``http://127.0.0.1:8081``) or PTB's form ending in ``/bot``.
    """
    if not url:
        return None
    root = url.rstrip("/")
    root = root.removesuffix("/bot")
    return f"{root}/bot", f"{root}/file/bot"


def build_application(settings: Settings) -> Application:
    """A PTB application with Telegram's rate limits, retries on 429 and per-chat ordering."""
    if not settings.telegram_token:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .rate_limiter(AIORateLimiter(max_retries=3))
        .concurrent_updates(PerChatUpdateProcessor(256))
        .connection_pool_size(128)
        .connect_timeout(5)
        .read_timeout(15)
        .write_timeout(15)
        .pool_timeout(10)
    )
    bases = api_base(settings.telegram_api_base_url)
    if bases:
        builder = builder.base_url(bases[0]).base_file_url(bases[1])
    if settings.telegram_webhook_url:
        builder = builder.updater(None)
    return builder.build()


ID_LIMIT = 2**63  # ids are stored as BIGINT; Telegram's fit in 52 bits


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -ID_LIMIT < value < ID_LIMIT


def check_ids(update: Update) -> None:
    """Raise ValueError unless the ids the adapter keys on are integers that fit a BIGINT.

    PTB's ``de_json`` does not check types: ``"chat": {"id": [1]}`` gives a chat whose id is a
    list, which the per-chat processor cannot use as a key (a 500 before any handler runs), and
    an id past 64 bits fails in the database. Telegram never sends either; a forger might.
    """
    if not _is_id(update.update_id) or update.update_id < 0:
        raise ValueError("update_id is not a positive 64-bit integer")
    for holder in (update.effective_chat, update.effective_user):
        if holder is not None and not _is_id(holder.id):
            raise ValueError("a chat or user id is not a 64-bit integer")


class TelegramService:
    """The running Telegram side of the bot service."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: EngineClient,
        renderer: ResponseRenderer,
        repo: Repository,
        chats: ChatStore,
    ) -> None:
        self.settings = settings
        self.application = build_application(settings)
        eraser = TrackerEraser(settings.tracker_store_url) if settings.tracker_store_url else None
        self.adapter = TelegramAdapter(
            bot=self.application.bot,
            engine=engine,
            renderer=renderer,
            chats=chats,
            repo=repo,
            secret_key=settings.secret_key,
            eraser=eraser,
            retention_days=settings.retention_days,
            hours=StaffedHours.parse(settings.staffed_hours, settings.staffed_tz),
            alert_after_minutes=settings.alert_after_minutes,
            operators_chat_id=settings.operators_chat_id,
            console_url=settings.console_url,
        )
        register(self.application, self.adapter)

    @property
    def webhook_mode(self) -> bool:
        return bool(self.settings.telegram_webhook_url)

    async def start(self) -> None:
        app = self.application
        await app.initialize()
        await self.set_commands()
        if self.webhook_mode:
            await app.bot.set_webhook(
                url=self.settings.telegram_webhook_url or "",
                secret_token=self.settings.telegram_webhook_secret,
                allowed_updates=Update.ALL_TYPES,
            )
        else:
            await app.bot.delete_webhook(drop_pending_updates=False)
            assert app.updater is not None
            await app.updater.start_polling(
                allowed_updates=Update.ALL_TYPES, timeout=10, poll_interval=0.0
            )
        await app.start()
        self.adapter.start_background()
        log.info(
            "Telegram adapter started (%s) as @%s",
            "webhook" if self.webhook_mode else "polling",
            app.bot.username,
        )

    async def stop(self) -> None:
        app = self.application
        await self.adapter.stop_background()
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        if self.adapter.eraser is not None:
            await self.adapter.eraser.close()

    async def set_commands(self) -> None:
        """The command menu in each language (Telegram picks it by the user's app language)."""
        renderer = self.adapter.renderer
        for language in (None, *LANGUAGES):
            lang = language or "en"
            commands = [
                BotCommand(name, renderer.render(f"text_tg_cmd_{name}", lang)["text"])
                for name in COMMANDS
            ]
            try:
                await self.application.bot.set_my_commands(commands, language_code=language)
            except TelegramError as exc:
                log.warning("setMyCommands(%s) failed: %s", language, exc)

    async def webhook(self, request: web.Request) -> web.Response:
        """Telegram's POST of one update. Wrong secret → 403 and nothing processed.

        The update is processed before answering, so a crash mid-way means Telegram redelivers
        it; the persisted update ids make the redelivery count once.
        """
        expected = self.settings.telegram_webhook_secret or ""
        given = request.headers.get(SECRET_HEADER, "")
        if expected and not hmac.compare_digest(given.encode(), expected.encode()):
            return web.json_response({"ok": False, "error": "forbidden"}, status=403)
        if request.content_type != "application/json":  # Telegram always sends JSON
            return web.json_response({"ok": False, "error": "expected JSON"}, status=415)
        try:
            data = await request.json()  # over MAX_BODY: aiohttp answers 413 from here
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            # RecursionError: thousands of nested brackets; json gives up, and so do we.
            return web.json_response({"ok": False, "error": "invalid JSON"}, status=400)
        try:
            if not isinstance(data, dict):
                raise ValueError("an update is a JSON object")
            update = Update.de_json(data, self.application.bot)
            check_ids(update)
        except Exception as exc:  # malformed update: answering 200 stops Telegram retrying it
            log.warning("malformed update ignored: %s", type(exc).__name__)
            return web.json_response({"ok": True, "ignored": "malformed update"})
        app = self.application
        await app.update_processor.process_update(update, app.process_update(update))
        return web.json_response({"ok": True})
