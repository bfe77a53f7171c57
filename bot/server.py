"""The bot service's HTTP side: ``/nlg`` and ``/webhook`` for the engine, ``/healthz``.

aiohttp because python-telegram-bot's webhook mode and the operator console (later issues)
share this server; rasa-sdk's own Sanic server would be a second one to run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os

from aiohttp import web
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sqlalchemy.ext.asyncio import AsyncEngine

from actions import context as actions_context
from actions import records as action_records
from bot import metrics
from bot.config import Settings
from bot.console.routes import setup_console
from bot.engine import EngineClient
from bot.knowledge import load_into, read_knowledge
from bot.nlg import ResponseRenderer
from bot.responses import load_contacts, load_responses
from bot.staffed_hours import StaffedHours
from bot.storage.db import make_engine, make_sessionmaker, startup_lock
from bot.storage.repo import Repository
from bot.storage.schema import upgrade

log = logging.getLogger(__name__)

RENDERER = web.AppKey("renderer", ResponseRenderer)
EXECUTOR = web.AppKey("executor", ActionExecutor)
ENGINE = web.AppKey("engine", EngineClient)
SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", AsyncEngine)
TELEGRAM = web.AppKey("telegram", object)  # bot.telegram.app.TelegramService when a token is set

MAX_BODY = 4 * 1024 * 1024  # trackers grow with the conversation; 4 MiB is generous


def build_renderer(settings: Settings) -> ResponseRenderer:
    return ResponseRenderer(
        load_responses(settings.responses_dir), load_contacts(settings.knowledge_dir)
    )


async def nlg(request: web.Request) -> web.Response:
    """Render one response for the engine in the conversation's language."""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"error": "invalid JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "expected an object"}, status=400)
    return web.json_response(request.app[RENDERER].render_for_engine(body))


async def action_webhook(request: web.Request) -> web.Response:
    """Run a custom action with rasa-sdk's executor (same wire format as ``rasa run actions``)."""
    try:
        body = await request.json()
    except json.JSONDecodeError:
        return web.json_response({"error": "invalid JSON"}, status=400)
    executor = request.app[EXECUTOR]
    try:
        result = await executor.run(body)
    except ActionExecutionRejection as exc:
        return web.json_response({"error": exc.message, "action_name": exc.action_name}, status=400)
    except ActionNotFoundException as exc:
        return web.json_response({"error": exc.message, "action_name": exc.action_name}, status=404)
    except Exception:
        log.exception("action %s failed", body.get("next_action"))
        return web.json_response({"error": "action failed"}, status=500)
    if result is None:
        return web.json_response({"events": [], "responses": []})
    return web.json_response(result.model_dump())


async def healthz(request: web.Request) -> web.Response:
    """Liveness of this service plus whether the engine is ready (for operators and tests)."""
    engine_ready = await request.app[ENGINE].ready()
    return web.json_response({"status": "ok", "engine": "ready" if engine_ready else "down"})


async def metrics_page(request: web.Request) -> web.Response:
    """Latency summaries (Prometheus text format); loopback only like the rest of the service.
    ``?last=N`` computes the quantiles over the last N samples only (benchmarks)."""
    last = request.query.get("last", "")
    # isdecimal, not isdigit: "²" is a digit to isdigit() and a ValueError (a 500) to int().
    window = int(last) if last.isdecimal() and int(last) > 0 else None
    return web.Response(text=metrics.exposition(window), content_type="text/plain")


async def telegram_webhook(request: web.Request) -> web.Response:
    """Telegram's webhook (only in webhook mode; see bot.telegram.app)."""
    service = request.app.get(TELEGRAM)
    if service is None or not service.webhook_mode:
        return web.json_response({"error": "webhook mode is off"}, status=404)
    return await service.webhook(request)


def make_executor() -> ActionExecutor:
    executor = ActionExecutor()
    executor.register_package("actions")
    return executor


async def prepare_database(settings: Settings) -> AsyncEngine:
    """Migrate the schema and (re)load knowledge/ so the database matches the files.

    Loading is idempotent and takes milliseconds; doing it at start-up means `make run` needs no
    separate step. ``KB_AUTOLOAD=0`` leaves loading to ``ctip kb load``. On PostgreSQL replicas
    starting together take turns (``startup_lock``), so they cannot race each other.
    """
    engine = make_engine(settings.database_url)
    async with startup_lock(settings.database_url):
        await asyncio.to_thread(upgrade, settings.database_url)
        if os.environ.get("KB_AUTOLOAD", "1") != "0":
            kb = read_knowledge(settings.knowledge_dir)
            async with make_sessionmaker(engine)() as session:
                counts = await load_into(session, kb)
            log.info("knowledge loaded: %s", counts)
    return engine


def create_app(settings: Settings) -> web.Application:
    """Build the aiohttp application; the caller runs it (runner, tests)."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[RENDERER] = build_renderer(settings)
    app[EXECUTOR] = make_executor()
    app[ENGINE] = EngineClient(settings.engine_url, settings.rasa_token, settings.engine_timeout)

    async def open_database(app: web.Application) -> None:
        engine = await prepare_database(settings)
        app[DB] = engine
        sessions = make_sessionmaker(engine)
        repo = Repository(sessions)
        actions_context.configure(
            repo, app[RENDERER], StaffedHours.parse(settings.staffed_hours, settings.staffed_tz)
        )
        if settings.telegram_token:
            from bot.telegram.app import TelegramService
            from bot.telegram.state import ChatStore

            service = TelegramService(
                settings,
                engine=app[ENGINE],
                renderer=app[RENDERER],
                repo=repo,
                chats=ChatStore(
                    sessions, claim_timeout=dt.timedelta(seconds=settings.telegram_claim_timeout)
                ),
            )
            await service.start()
            app[TELEGRAM] = service

    async def close_resources(app: web.Application) -> None:
        if TELEGRAM in app:
            await app[TELEGRAM].stop()
        lost = await action_records.settle(timeout=2.0)
        if lost:  # kept in memory only (actions/records.py): say so, without ids or text
            log.warning("%d record(s) deferred during a database outage were not written", lost)
            action_records.abandon()
        await app[ENGINE].close()
        if DB in app:
            await app[DB].dispose()

    app.on_startup.append(open_database)
    app.on_cleanup.append(close_resources)
    app.router.add_post("/nlg", nlg)
    app.router.add_post("/webhook", action_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/telegram/webhook", telegram_webhook)
    setup_console(app, settings)  # its sessionmaker comes from DB at start-up (after open_database)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start ``app`` on host:port and return its runner (call ``cleanup()`` to stop)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
