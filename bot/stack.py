"""Run the whole assistant — bot service and Rasa engine — as one unit.

Used by ``make run``, ``make shell``, ``make eval``, ``make bench`` and the test session, so that
each starts the engine the same way, waits for the model the same way, and always stops it.
"""

from __future__ import annotations

import logging
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from aiohttp import web

from bot.config import Settings
from bot.engine import EngineClient
from bot.engine_process import MODEL_PATH, start_engine, stop_engine, wait_ready, write_endpoints
from bot.server import create_app, start_site

log = logging.getLogger(__name__)


def free_port() -> int:
    """An unused loopback port (for tests and benchmarks that must not clash with `make run`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


class RunningStack:
    """Handles to a started stack: settings, the aiohttp app and an engine client."""

    def __init__(
        self,
        settings: Settings,
        app: web.Application,
        engine: EngineClient,
        engine_proc: subprocess.Popen[bytes],
    ) -> None:
        self.settings = settings
        self.app = app
        self.engine = engine
        self.engine_proc = engine_proc

    @property
    def bot_url(self) -> str:
        return f"http://{self.settings.bot_host}:{self.settings.bot_port}"


@asynccontextmanager
async def running_stack(
    settings: Settings,
    *,
    engine_port: int,
    work_dir: Path,
    load_timeout: float = 300.0,
    model: Path = MODEL_PATH,
) -> AsyncIterator[RunningStack]:
    """Start the bot service, then the engine wired to it; stop both on exit."""
    settings = replace(settings, engine_url=f"http://127.0.0.1:{engine_port}")
    if settings.tracker_store_url is None:
        settings = replace(settings, tracker_store_url=f"sqlite:///{work_dir / 'tracker.db'}")
    app = create_app(settings)
    runner = await start_site(app, settings.bot_host, settings.bot_port)
    bot_url = f"http://{settings.bot_host}:{settings.bot_port}"
    endpoints = write_endpoints(work_dir / "endpoints.yml", bot_url, work_dir / "tracker.db")
    log_file = work_dir / "engine.log"
    log.info("starting the Rasa engine on 127.0.0.1:%s (log: %s)", engine_port, log_file)
    proc = start_engine(
        endpoints=endpoints,
        port=engine_port,
        model=model,
        token=settings.rasa_token,
        log_file=log_file,
    )
    engine = EngineClient(settings.engine_url, settings.rasa_token, settings.engine_timeout)
    try:
        await wait_ready(engine, proc, load_timeout)
        log.info("engine ready")
        yield RunningStack(settings, app, engine, proc)
    finally:
        await engine.close()
        stop_engine(proc)
        await runner.cleanup()
