"""A small round-robin HTTP load balancer, for tests and local trials of several replicas.

Production puts nginx (deploy/nginx.conf) in front of the bot replicas; this stands in for it
where nginx is not installed: the production-profile test sends Telegram's webhook and the
engines' NLG and action calls through it. It does what that test needs from nginx and no more:
each request goes to the next backend in turn; a backend that refuses the connection is skipped
for that request (nginx's ``proxy_next_upstream error``); bodies stream both ways, so the
console's Server-Sent Events work through it too. ``served`` records which backend answered
what, so a test can prove that turns alternated between replicas.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

# Headers that describe one hop, not the request (RFC 9110 §7.6.1), plus those aiohttp sets.
HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
}  # fmt: skip
SERVED = web.AppKey("balancer_served", deque)
HTTP = web.AppKey("balancer_http", aiohttp.ClientSession)


def create_balancer(backends: list[str], timeout: float = 120.0) -> web.Application:
    """An app forwarding every request to ``backends`` (base URLs) in round-robin order."""
    if not backends:
        raise ValueError("at least one backend")
    bases = [b.rstrip("/") for b in backends]
    turn = itertools.cycle(range(len(bases)))
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[SERVED] = deque(maxlen=10_000)  # (backend, method, path) of each answered request
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=2.0)

    async def open_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=client_timeout, auto_decompress=False) as http:
            app[HTTP] = http
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        headers["X-Forwarded-Proto"] = request.scheme
        first = next(turn)
        for i in range(len(bases)):
            base = bases[(first + i) % len(bases)]
            try:
                upstream = await app[HTTP].request(
                    request.method,
                    base + request.rel_url.raw_path_qs,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                )
            except aiohttp.ClientConnectorError:
                continue  # that replica is down: the request was not sent, try the next
            async with upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for name, value in upstream.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        response.headers.add(name, value)
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            app[SERVED].append((base, request.method, request.path))
            return response
        return web.json_response({"error": "no backend reachable"}, status=502)

    app.cleanup_ctx.append(open_session)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@asynccontextmanager
async def running_balancer(
    backends: list[str], host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[tuple[str, deque]]:
    """Serve a balancer on ``host:port`` (0 = a free port); yields its URL and ``served``."""
    app = create_balancer(backends)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    try:
        yield f"http://{host}:{bound}", app[SERVED]
    finally:
        await runner.cleanup()


def main() -> None:
    """``python -m bot.devtools.balancer --port 8000 http://127.0.0.1:8080 http://…:8081``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backends", nargs="+", help="base URLs of the replicas")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()

    async def serve() -> None:
        async with running_balancer(args.backends, args.host, args.port) as (url, _):
            print(f"balancing {url} over {', '.join(args.backends)}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
