"""A small HTTP proxy that can misbehave on purpose, for fault tests.

Why: the engine calls our custom actions over HTTP (``action_endpoint`` → the bot service's
``/webhook``). To prove what a person sees when that edge is slow, down or failing, the test
session's engine talks to the bot service through this proxy, and a test switches its mode:

- ``pass``: forward every request unchanged (the default);
- ``delay``: wait ``seconds`` before forwarding (a slow action server);
- ``hold``: keep requests waiting until the mode changes (a turn provably in flight);
- ``error``: answer ``status`` (500 by default) without forwarding (an action server that fails);
- ``refuse``: stop listening, so connections are refused (an action server that is down).

It runs in the caller's event loop, on loopback only; ``make run`` does not use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

log = logging.getLogger(__name__)

MODES = ("pass", "delay", "hold", "error", "refuse")
# Hop-by-hop and length headers are the proxy's own business, not forwarded either way.
_SKIP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


@dataclass(frozen=True)
class Mode:
    name: str = "pass"
    seconds: float = 0.0
    status: int = 500


class FaultProxy:
    """Forward ``POST``/``GET`` to ``upstream`` (a base URL) with a switchable fault mode."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.mode = Mode()
        self.seen = 0  # requests that reached the proxy (refused connections never do)
        self.forwarded = 0  # requests passed on to the upstream
        self.dropped = 0  # held or delayed requests whose caller went away meanwhile
        self._released = asyncio.Event()
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _listen(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        sockets = getattr(self._site._server, "sockets", None) or []
        if sockets:  # the bound port when 0 was asked for; kept for later restarts
            self.port = int(sockets[0].getsockname()[1])

    # -- modes -------------------------------------------------------------------------------
    async def set_mode(self, name: str, *, seconds: float = 0.0, status: int = 500) -> None:
        """Switch the fault mode; ``refuse`` closes the listening socket, leaving it reopens it.

        Leaving ``hold`` releases the held requests (they are then forwarded, unless their
        caller has gone away meanwhile).
        """
        if name not in MODES:
            raise ValueError(f"unknown mode {name!r}; one of {MODES}")
        previous = self.mode.name
        self.mode = Mode(name, seconds, status)
        if name == "refuse" and previous != "refuse" and self._site is not None:
            await self._site.stop()
            self._site = None
        elif name != "refuse" and self._site is None and self._runner is not None:
            await self._listen()
        if name == "hold":
            self._released.clear()
        else:
            self._released.set()
        log.info("fault proxy → %s", self.mode)

    async def wait_seen(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` requests in total have reached the proxy."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: self.seen >= count), timeout)

    # -- the proxy ---------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with self._arrived:
            self.seen += 1
            self._arrived.notify_all()
        mode = self.mode
        if mode.name == "refuse" and request.transport is not None:
            # A kept-alive connection from before the listener closed: drop it like a dead server.
            request.transport.abort()
            return web.Response(status=502)
        if mode.name == "error":
            return web.json_response({"error": "injected fault"}, status=mode.status)
        if mode.name == "delay":
            await asyncio.sleep(mode.seconds)
        elif mode.name == "hold":
            while not self._released.is_set() and not _gone(request):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), 0.1)
        if _gone(request):
            # The caller left (e.g. the engine was killed): nothing to answer, nothing to run.
            self.dropped += 1
            return web.Response(status=499)
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP_HEADERS}
        url = self.upstream + request.rel_url.path_qs
        self.forwarded += 1
        async with self._http.request(request.method, url, data=body, headers=headers) as resp:
            payload = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _SKIP_HEADERS}
            return web.Response(status=resp.status, body=payload, headers=out)


def _gone(request: web.Request) -> bool:
    """Whether the caller closed its connection while its request waited here."""
    return request.transport is None or request.transport.is_closing()


@asynccontextmanager
async def running_proxy(upstream: str, host: str = "127.0.0.1") -> AsyncIterator[FaultProxy]:
    """A started ``FaultProxy`` in front of ``upstream`` for the duration of the block."""
    proxy = FaultProxy(upstream, host)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
