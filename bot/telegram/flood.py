"""The flood brake: at most ``limit`` messages per person per ``window`` seconds reach the engine.

Why: one person (or a script) sending hundreds of messages would take the engine's time from
everybody else. Past the limit the person is told once per window to slow down; danger phrases
still get the emergency answer (the adapter checks the safety net first).

Why Redis: behind a load balancer a person's messages land on several replicas, and a count kept
in one replica's memory lets them through N times over. With ``REDIS_URL`` set (the server that
already holds the engines' lock store, under its own key prefix) every replica counts in the same
sliding window. Redis is a brake here, never a gate: when it is unreachable the replica falls back
to its own in-memory count for a while, so nobody is blocked or dropped because Redis is down.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

KEY_PREFIX = "ctip:flood:"
RETRY_REDIS_AFTER = 10.0  # seconds of in-memory counting after a Redis failure
REDIS_TIMEOUT = 0.5  # seconds: a person must never wait long for the brake

# One atomic step of the shared sliding window: drop entries older than the window, refuse when
# full, else add this message. Redis' own clock (TIME) keeps replicas with skewed clocks fair.
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""


class LocalWindow:
    """The per-replica count, in memory: the whole brake without Redis, the fallback with it."""

    def __init__(self, limit: int = 20, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._warned: dict[str, float] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        times = self._seen.setdefault(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._seen) > 10_000:  # forget people who went quiet
            for k in [k for k, t in self._seen.items() if not t or now - t[-1] > self.window]:
                self._seen.pop(k, None)
                self._warned.pop(k, None)
        return True

    def should_warn(self, key: str, now: float | None = None) -> bool:
        """True once per window for a person over the limit."""
        now = time.monotonic() if now is None else now
        if now - self._warned.get(key, -self.window - 1) > self.window:
            self._warned[key] = now
            return True
        return False


class FloodGuard:
    """What the adapter asks: ``await allow(key)``, and ``await should_warn(key)`` past it.

    Keys are the pseudonymous person keys, never Telegram ids. Without ``redis_url`` this is
    :class:`LocalWindow` (``make run``, tests); with it, the shared window in Redis.
    """

    def __init__(self, limit: int = 20, window: float = 60.0, redis_url: str | None = None) -> None:
        self.limit = limit
        self.window = window
        self.local = LocalWindow(limit, window)
        self._redis = None
        self._script = None
        self._redis_down_until = 0.0
        if redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(
                redis_url,
                socket_connect_timeout=REDIS_TIMEOUT,
                socket_timeout=REDIS_TIMEOUT,
                retry_on_timeout=False,
            )
            self._script = self._redis.register_script(_ALLOW)

    @property
    def shared(self) -> bool:
        """True while the count is shared through Redis (False: this replica's memory)."""
        return self._redis is not None and time.monotonic() >= self._redis_down_until

    async def allow(self, key: str) -> bool:
        if self.shared:
            assert self._script is not None
            try:
                window_ms = int(self.window * 1000)
                member = uuid.uuid4().hex  # two messages in the same millisecond both count
                allowed = await self._script(
                    keys=[f"{KEY_PREFIX}n:{key}"], args=[window_ms, self.limit, member]
                )
                return bool(allowed)
            except (RedisError, OSError, TimeoutError) as exc:  # count locally, never block
                self._fall_back(exc)
        return self.local.allow(key)

    async def should_warn(self, key: str) -> bool:
        """True once per window for a person over the limit — once across all replicas."""
        if self.shared:
            assert self._redis is not None
            try:
                first = await self._redis.set(
                    f"{KEY_PREFIX}w:{key}", b"1", nx=True, px=int(self.window * 1000)
                )
                return bool(first)
            except (RedisError, OSError, TimeoutError) as exc:
                self._fall_back(exc)
        return self.local.should_warn(key)

    def _fall_back(self, exc: Exception) -> None:
        if self.shared:  # log once per outage, not once per message
            log.warning(
                "Redis unreachable for the flood limit (%s); counting per replica for %.0f s",
                type(exc).__name__,
                RETRY_REDIS_AFTER,
            )
        self._redis_down_until = time.monotonic() + RETRY_REDIS_AFTER

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
