"""The dev/test load balancer: round robin, a dead replica skipped, requests passed unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web

from bot.devtools.balancer import running_balancer
from bot.stack import free_port


@asynccontextmanager
async def backend(name: str) -> AsyncIterator[str]:
    """A replica stand-in that echoes who it is and what it got."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": name,
                "path": request.path_qs,
                "body": (await request.read()).decode(),
                "secret": request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
            },
            status=201,
            headers={"X-Replica": name},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_round_robin_failover_and_pass_through() -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with (
        backend("a") as a,
        backend("b") as b,
        running_balancer([a, b, dead]) as (url, served),
        aiohttp.ClientSession() as http,
    ):
        names = []
        for i in range(6):
            async with http.post(
                f"{url}/telegram/webhook?x={i}",
                data=f"update {i}",
                headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"},
            ) as r:
                assert r.status == 201 and r.headers["X-Replica"] in ("a", "b")
                got = await r.json()
                assert got["path"] == f"/telegram/webhook?x={i}"
                assert (got["body"], got["secret"]) == (f"update {i}", "s3cret")
                names.append(got["name"])
    # Turns go a, b, dead, a, b, dead; the dead one's turn is passed to the next in line (a).
    assert names == ["a", "b", "a", "a", "b", "a"]
    assert [s[0] for s in served] == [{"a": a, "b": b}[n] for n in names]


async def test_no_backend_reachable_is_a_502() -> None:
    async with (
        running_balancer([f"http://127.0.0.1:{free_port()}"]) as (url, _),
        aiohttp.ClientSession() as http,
        http.get(f"{url}/healthz") as r,
    ):
        assert r.status == 502
