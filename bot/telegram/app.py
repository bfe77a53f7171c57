"""Build, start and stop the PTB ``Application``; the webhook endpoint for webhook mode.

Long polling by default; ``TELEGRAM_WEBHOOK_URL`` switches to a webhook served by the bot
service's own aiohttp server (one server for the engine's endpoints, Telegram and the console),
so PTB's built-in tornado server is not used. ``TELEGRAM_API_BASE_URL`` points everything at
another Bot API server (the local emulator, a self-hosted telegram-bot-api).
"""

from __future__ import annotations

import asyncio
import contextlib
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
from bot.telegram.flood import FloodGuard
from bot.telegram.handlers import COMMANDS, register
from bot.telegram.ledger import Outcome, UpdateLedger
from bot.telegram.processor import PerChatUpdateProcessor, chat_key
from bot.telegram.spool import UpdateSpool
from bot.telegram.state import ChatStore
from bot.tracker_eraser import TrackerEraser

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
RETRY_AFTER = 5  # seconds: what a 503 asks Telegram to wait before delivering an update again
# Polling: pauses between attempts at the updates kept because the database was unreachable.
REPLAY_FIRST, REPLAY_MAX = 0.5, 10.0


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
            flood=FloodGuard(settings.flood_limit, settings.flood_window, settings.redis_url),
        )
        self.ledger = UpdateLedger()
        register(self.application, self.adapter, self.ledger)
        # Updates that could not be processed yet, to replay (see _replay_loop); on disk too.
        self._parked: dict[int, Update] = {}
        spool_dir = settings.spool_dir or settings.var_dir / "spool"
        self.spool = UpdateSpool(spool_dir / str(settings.bot_port))  # one per replica
        self._settled: dict[int, Outcome] = {}  # webhook: how the attempt just made ended
        self._replay_failing = False  # the last replay could not process a kept update
        self._replay_wake: asyncio.Event | None = None
        self._replay_task: asyncio.Task[None] | None = None
        processor = self.application.update_processor
        if isinstance(processor, PerChatUpdateProcessor):
            processor.settle = self._settle

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
        self._replay_wake = asyncio.Event()
        self._replay_task = asyncio.create_task(self._replay_loop(), name="ctip-replay")
        for data in self.spool.load():  # kept before a restart: processed now, oldest first
            try:
                update = Update.de_json(data, app.bot)
            except Exception as exc:  # a damaged file must not keep the service from starting
                log.warning("kept update unreadable: %s", type(exc).__name__)
                continue
            self._parked[update.update_id] = update
        if self._parked:
            log.info("%d kept update(s) to process", len(self._parked))
            self._replay_wake.set()
        log.info(
            "Telegram adapter started (%s) as @%s",
            "webhook" if self.webhook_mode else "polling",
            app.bot.username,
        )

    async def stop(self) -> None:
        app = self.application
        if self._replay_task is not None:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
            self._replay_task = None
        await self.adapter.stop_background()
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()
        await self.adapter.flood.close()
        if self.adapter.eraser is not None:
            await self.adapter.eraser.close()

    def _settle(self, update: Update) -> None:
        """After each update (in its chat's turn): keep one that could not be processed yet.

        Polling: whatever was not processed (Telegram counts it delivered once fetched).
        Webhook: the database was unreachable — acknowledged and kept, see ``bot.telegram.spool``;
        an update another process holds is left to Telegram's redelivery (503, see ``webhook``).
        """
        uid = update.update_id
        outcome = self.ledger.pop_outcome(uid)
        if self.webhook_mode:
            self._settled[uid] = outcome
        if outcome.acknowledged:
            self._unpark(uid)
        elif outcome is Outcome.UNAVAILABLE or not self.webhook_mode:
            self._park(update)

    def _park(self, update: Update) -> None:
        uid = update.update_id
        if uid not in self._parked:
            log.info("update %s kept to be processed again", uid)
            self._parked[uid] = update
            try:
                self.spool.put(uid, update.to_dict())
            except OSError as exc:  # still kept in memory
                log.warning("update %s not written to the spool: %s", uid, type(exc).__name__)
        if self._replay_wake is not None:
            self._replay_wake.set()

    def _unpark(self, uid: int) -> None:
        if self._parked.pop(uid, None) is not None:
            self.spool.drop(uid)

    async def _replay(self, chat: int | None = None) -> bool:
        """Process kept updates again, oldest first (of one chat when given); False when one
        still cannot be processed (the rest would fail the same way, and order matters)."""
        processor, app = self.application.update_processor, self.application
        for uid, update in sorted(self._parked.items()):
            if chat is not None and chat_key(update) != chat:
                continue
            try:
                await processor.process_update(update, app.process_update(update))
            except Exception:
                log.exception("replay of update %s failed", uid)
            self._settled.pop(uid, None)
            if uid in self._parked:
                self._replay_failing = True
                return False
        self._replay_failing = False
        return True

    async def _replay_loop(self) -> None:
        """Kept updates are processed again with growing pauses until done. Each update's
        claim in the database makes a replay of an update already processed a no-op."""
        assert self._replay_wake is not None
        while True:
            await self._replay_wake.wait()
            self._replay_wake.clear()
            delay = REPLAY_FIRST
            while self._parked:
                await asyncio.sleep(delay)
                await self._replay()
                delay = min(delay * 2, REPLAY_MAX)

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
        it; the persisted update ids make the redelivery count once. An update that could not be
        processed yet — its claim is held by another (live or dead) process, or the database is
        unreachable — is answered 503 with Retry-After, so Telegram delivers it again.
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
        chat = chat_key(update)
        if self._parked and chat is not None and not self._replay_failing:
            # This person's kept messages first, so the answers keep their order. Not while
            # replays fail (the database is still down): the new message — perhaps a cry for
            # help — gets its answer at once and is kept behind the older ones.
            await self._replay(chat)
        await app.update_processor.process_update(update, app.process_update(update))
        outcome = self._settled.pop(update.update_id, Outcome.DONE)
        if outcome is Outcome.BUSY:
            return web.json_response(
                {"ok": False, "error": "being processed elsewhere; send it again"},
                status=503,
                headers={"Retry-After": str(RETRY_AFTER)},
            )
        return web.json_response({"ok": True})
