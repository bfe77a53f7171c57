"""Run the whole assistant — bot service and Rasa engine — as one unit.

Used by ``make run``, ``make shell``, ``make eval``, ``make bench`` and the test session, so that
each starts the engine the same way, waits for the model the same way, and always stops it.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from bot.config import Settings
from bot.engine import EngineClient
from bot.engine_process import (
    MODEL_PATH,
    kill_engine,
    start_engine,
    stop_engine,
    wait_ready,
    write_endpoints,
)
from bot.server import create_app, start_site

if TYPE_CHECKING:
    from bot.devtools.faultproxy import FaultProxy

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
    """Handles to a started stack: settings, the aiohttp app and an engine client.

    ``kill_engine`` and ``restart_engine`` let fault tests crash the engine and bring it back
    on the same port with the same tracker store, as a supervisor would.
    """

    def __init__(
        self,
        settings: Settings,
        app: web.Application,
        engine: EngineClient,
        engine_proc: subprocess.Popen[bytes],
        *,
        spawn_engine: Callable[[], subprocess.Popen[bytes]] | None = None,
        load_timeout: float = 300.0,
        action_proxy: FaultProxy | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.engine = engine
        self.engine_proc = engine_proc
        self.action_proxy = action_proxy  # between the engine and /webhook, when asked for
        self._spawn_engine = spawn_engine
        self._load_timeout = load_timeout

    @property
    def bot_url(self) -> str:
        return f"http://{self.settings.bot_host}:{self.settings.bot_port}"

    def kill_engine(self) -> None:
        """SIGKILL the engine (no clean shutdown), as a crash or the OOM killer would."""
        kill_engine(self.engine_proc)
        log.info("engine killed (pid %s)", self.engine_proc.pid)

    async def restart_engine(self) -> float:
        """Start the engine again on the same port and wait for its model; returns seconds.

        Kills the current process first if it still runs.
        """
        if self._spawn_engine is None:
            raise RuntimeError("this stack cannot restart its engine")
        kill_engine(self.engine_proc)
        started = time.monotonic()
        self.engine_proc = self._spawn_engine()
        await wait_ready(self.engine, self.engine_proc, self._load_timeout)
        seconds = time.monotonic() - started
        log.info("engine restarted and ready in %.0f s", seconds)
        return seconds


@asynccontextmanager
async def running_stack(
    settings: Settings,
    *,
    engine_port: int,
    work_dir: Path,
    load_timeout: float = 300.0,
    model: Path = MODEL_PATH,
    action_proxy: bool = False,
) -> AsyncIterator[RunningStack]:
    """Start the bot service, then the engine wired to it; stop both on exit.

    ``action_proxy=True`` routes the engine's action calls through a ``FaultProxy`` (fault
    tests); ``make run`` and the benchmarks call actions directly.
    """
    settings = replace(settings, engine_url=f"http://127.0.0.1:{engine_port}")
    if settings.tracker_store_url is None:
        settings = replace(settings, tracker_store_url=f"sqlite:///{work_dir / 'tracker.db'}")
    # Before the service starts: its retention purge and /forget open the engine's tracker file
    # there, and SQLite cannot create a file in a folder that does not exist yet.
    work_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as cleanup:
        app = create_app(settings)
        runner = await start_site(app, settings.bot_host, settings.bot_port)
        cleanup.push_async_callback(runner.cleanup)
        bot_url = f"http://{settings.bot_host}:{settings.bot_port}"
        proxy = None
        if action_proxy:
            # Tests only: `make run` never imports the proxy.
            from bot.devtools.faultproxy import running_proxy

            proxy = await cleanup.enter_async_context(running_proxy(bot_url))
        endpoints = write_endpoints(
            work_dir / "endpoints.yml",
            bot_url,
            work_dir / "tracker.db",
            action_url=f"{proxy.url}/webhook" if proxy else None,
        )
        log_file = work_dir / "engine.log"

        def spawn() -> subprocess.Popen[bytes]:
            log.info("starting the Rasa engine on 127.0.0.1:%s (log: %s)", engine_port, log_file)
            return start_engine(
                endpoints=endpoints,
                port=engine_port,
                model=model,
                token=settings.rasa_token,
                log_file=log_file,
            )

        stack = RunningStack(
            settings,
            app,
            EngineClient(settings.engine_url, settings.rasa_token, settings.engine_timeout),
            spawn(),
            spawn_engine=spawn,
            load_timeout=load_timeout,
            action_proxy=proxy,
        )
        cleanup.callback(lambda: stop_engine(stack.engine_proc))  # the current one, after restarts
        cleanup.push_async_callback(stack.engine.close)
        await wait_ready(stack.engine, stack.engine_proc, load_timeout)
        log.info("engine ready")
        yield stack
