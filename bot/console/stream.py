"""Server-Sent Events for the console's live views (queue, case page).

Why SSE and not WebSocket: the views only listen; SSE is plain HTTP (the session cookie, the
CSP's ``connect-src 'self'`` and any reverse proxy just work) and ``EventSource`` reconnects on
its own.

Why two wake-up sources: :data:`bot.storage.cases.CHANGES` wakes a view at once when a case
changes in this process; a cheap database *fingerprint*, compared every ``POLL`` seconds, catches
what other replicas changed. A view re-reads and sends only when one of them moved, so an idle
stream costs one small query every two seconds and a keep-alive comment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import Any

from aiohttp import web

from bot.storage.cases import CHANGES, ChangeFeed

POLL = 2.0  # seconds between database fingerprints (other replicas' changes)
STREAMS_CLOSING = web.AppKey("console_streams_closing", asyncio.Event)


def setup_streams(app: web.Application) -> None:
    """End open streams when the service shuts down, so shutdown does not wait for browsers."""
    app[STREAMS_CLOSING] = asyncio.Event()

    async def closing(app: web.Application) -> None:
        app[STREAMS_CLOSING].set()

    app.on_shutdown.append(closing)


class EventStream:
    """One open ``text/event-stream`` response."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self.request = request
        self.response = response

    @classmethod
    async def open(cls, request: web.Request) -> EventStream:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
            }
        )
        await response.prepare(request)
        return cls(request, response)

    @property
    def connected(self) -> bool:
        transport = self.request.transport
        closing = self.request.config_dict.get(STREAMS_CLOSING)
        return (
            transport is not None
            and not transport.is_closing()
            and not (closing is not None and closing.is_set())
        )

    async def send(self, event: str, data: Any) -> None:
        """One event; ``data`` as JSON on one line (JSON never contains a raw newline)."""
        payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
        await self.response.write(f"event: {event}\ndata: {payload}\n\n".encode())

    async def keep_alive(self) -> None:
        """A comment line: ignored by EventSource; a failed write tells us the client left."""
        await self.response.write(b": ok\n\n")


async def changes(
    stream: EventStream,
    fingerprint: Callable[[], Awaitable[Hashable]],
    feed: ChangeFeed = CHANGES,
    poll: float = POLL,
) -> AsyncIterator[None]:
    """Yield once at once (send the initial state), then each time something the view shows may
    have changed, until the client leaves (write fails, transport closes) or at shutdown.

    The version and fingerprint are taken *before* each yield, so a change that lands while the
    caller reads is seen at the next check rather than lost.
    """
    version = feed.version
    last = await fingerprint()
    yield
    while stream.connected:
        seen = await feed.wait(version, poll)
        if not stream.connected:
            return
        now = await fingerprint()
        if seen != version or now != last:
            version, last = seen, now
            yield
        else:
            try:
                await stream.keep_alive()
            except (ConnectionResetError, RuntimeError):
                return
