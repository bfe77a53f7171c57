"""The flood brake shared through Redis: one count for a person across replicas, counters that
expire, and a replica that keeps counting on its own while Redis is down (never blocking anyone).

Real Redis: the server `.ci/run` starts (TEST_REDIS_URL, database 1), and a throwaway
``redis-server`` this module starts and kills to show the fall-back.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.stack import free_port
from bot.telegram.flood import KEY_PREFIX, FloodGuard
from tests.db import redis_url


def person() -> str:
    """A made-up pseudonymous key, fresh per test (the shared server keeps other tests' keys)."""
    return f"u_test_{uuid.uuid4().hex[:12]}"


async def test_two_replicas_share_one_count_and_one_warning() -> None:
    url = redis_url()
    first, second = FloodGuard(3, 60, url), FloodGuard(3, 60, url)
    try:
        key, other = person(), person()
        verdicts = [await (first, second)[i % 2].allow(key) for i in range(5)]
        assert verdicts == [True, True, True, False, False]
        assert await first.allow(other)  # another person is not affected
        warned = [await g.should_warn(key) for g in (second, first, second)]
        assert warned == [True, False, False]  # one note per window, whichever replica asks
        assert first.shared and second.shared
    finally:
        await first.close()
        await second.close()


async def test_counters_expire_with_the_window() -> None:
    url = redis_url()
    guard = FloodGuard(2, 1.0, url)
    raw = aioredis.Redis.from_url(url)
    try:
        key = person()
        assert [await guard.allow(key) for _ in range(3)] == [True, True, False]
        assert await guard.should_warn(key)
        ttl = await raw.pttl(f"{KEY_PREFIX}n:{key}")
        assert 0 < ttl <= 1000  # nothing stays in Redis past the window
        assert 0 < await raw.pttl(f"{KEY_PREFIX}w:{key}") <= 1000
        await asyncio.sleep(1.2)
        assert await guard.allow(key)  # the window moved on
        assert await guard.should_warn(key)  # a new window, a new note
    finally:
        await raw.aclose()
        await guard.close()


@pytest.fixture
def throwaway_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of our own on a free port, which the test may kill."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/start-redis.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        proc.kill()
        proc.wait()


async def _wait_up(url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        for _ in range(50):
            try:
                if await client.ping():
                    return
            except (OSError, RedisError):
                pass
            await asyncio.sleep(0.1)
        raise AssertionError("redis-server did not start")
    finally:
        await client.aclose()


async def test_redis_going_down_falls_back_to_the_replicas_own_count(
    throwaway_redis, caplog
) -> None:
    url, proc = throwaway_redis
    await _wait_up(url)
    guard = FloodGuard(3, 60, url)
    try:
        key = person()
        assert await guard.allow(key) and guard.shared
        proc.kill()
        proc.wait()
        caplog.set_level(logging.WARNING, logger="bot.telegram.flood")
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Redis is gone: the person is still served, counted in memory from here on.
        verdicts = [await guard.allow(key) for _ in range(4)]
        assert verdicts == [True, True, True, False]
        assert await guard.should_warn(key) and not await guard.should_warn(key)
        assert loop.time() - started < 2.0  # one short timeout at most, then no more waiting
        assert not guard.shared
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "Redis unreachable" in warnings[0]
        assert key not in warnings[0]
    finally:
        await guard.close()


async def test_unreachable_redis_from_the_start_never_blocks() -> None:
    guard = FloodGuard(2, 60, f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        key = person()
        assert [await guard.allow(key) for _ in range(3)] == [True, True, False]
    finally:
        await guard.close()


async def test_without_redis_the_count_is_per_replica() -> None:
    first, second = FloodGuard(2, 60), FloodGuard(2, 60)
    key = person()
    assert [await g.allow(key) for g in (first, second, first, second)] == [True] * 4
    assert not await first.allow(key)
    await first.close()
