"""Start the emulator: the aiohttp app and ``running_emulator`` for tests and the demo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from bot.devtools.emulator import botapi, control
from bot.devtools.emulator.client import EmulatorClient
from bot.devtools.emulator.state import EMULATOR_KEY, Emulator


def create_app(emulator: Emulator | None = None) -> web.Application:
    """The Bot API (``/bot{token}/{method}``), control API and chat page on one app."""
    app = web.Application(client_max_size=50 * 1024 * 1024)
    app[EMULATOR_KEY] = emulator or Emulator()
    botapi.add_routes(app)
    control.add_routes(app)

    async def _close(app: web.Application) -> None:
        await app[EMULATOR_KEY].aclose()

    app.on_cleanup.append(_close)
    return app


class RunningEmulator:
    """Handles to a started emulator (see ``running_emulator``)."""

    def __init__(self, url: str, state: Emulator, client: EmulatorClient) -> None:
        self.url = url
        self.state = state
        self.client = client

    @property
    def bot_api_base(self) -> str:
        """What python-telegram-bot's ``base_url`` takes (it appends the token itself)."""
        return self.url + "/bot"


@asynccontextmanager
async def running_emulator(
    host: str = "127.0.0.1", port: int = 0, emulator: Emulator | None = None
) -> AsyncIterator[RunningEmulator]:
    """Serve the emulator on ``host:port`` (0 = a free port) for the duration of the block."""
    app = create_app(emulator)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the bound port when 0 was asked for
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    url = f"http://{host}:{bound}"
    client = EmulatorClient(url)
    try:
        yield RunningEmulator(url, app[EMULATOR_KEY], client)
    finally:
        await client.close()
        await runner.cleanup()
