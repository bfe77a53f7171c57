"""The fault proxy alone (no engine): each mode does what the fault tests rely on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.devtools.faultproxy import FaultProxy, running_proxy
from tests.telegram_helpers import eventually


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    calls: list[bytes] = []

    async def echo(request: web.Request) -> web.Response:
        calls.append(await request.read())
        return web.json_response({"echo": (await request.json())["n"]})

    app = web.Application()
    app.router.add_post("/webhook", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with running_proxy(f"http://127.0.0.1:{port}") as running:
        running.upstream_calls = calls  # type: ignore[attr-defined]
        yield running
    await runner.cleanup()


async def post(proxy: FaultProxy, n: int, timeout: float = 5.0) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
        http.post(f"{proxy.url}/webhook", json={"n": n}) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_pass_forwards_body_and_answer(proxy) -> None:
    assert await post(proxy, 1) == (200, {"echo": 1})
    assert proxy.forwarded == 1 and len(proxy.upstream_calls) == 1


async def test_error_answers_without_forwarding(proxy) -> None:
    await proxy.set_mode("error", status=503)
    status, _ = await post(proxy, 2)
    assert status == 503 and proxy.upstream_calls == []


async def test_refuse_closes_the_port_and_pass_reopens_it(proxy) -> None:
    await proxy.set_mode("refuse")
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(proxy, 3)
    await proxy.set_mode("pass")
    assert await post(proxy, 4) == (200, {"echo": 4})


async def test_delay_and_hold(proxy) -> None:
    await proxy.set_mode("delay", seconds=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await post(proxy, 5) == (200, {"echo": 5})
    assert loop.time() - started >= 0.5
    await proxy.set_mode("hold")
    held = asyncio.create_task(post(proxy, 6))
    await proxy.wait_seen(2, timeout=5)
    assert not held.done() and len(proxy.upstream_calls) == 1
    await proxy.set_mode("pass")
    assert await held == (200, {"echo": 6})


async def test_a_held_request_whose_caller_left_is_not_forwarded(proxy) -> None:
    await proxy.set_mode("hold")
    with pytest.raises(TimeoutError):
        await post(proxy, 7, timeout=0.5)
    await eventually(lambda: _true(proxy.dropped == 1), timeout=5)  # noticed while held
    await proxy.set_mode("pass")
    assert await post(proxy, 8) == (200, {"echo": 8})
    assert proxy.upstream_calls == [b'{"n": 8}']


async def _true(value: bool) -> bool:
    return value
