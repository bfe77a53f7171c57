"""Telling a database that is briefly unreachable from a real error, and riding it out.

Why: a PostgreSQL restart (an upgrade, a failover, the OOM killer) takes a second or two. The
pool's pre-ping replaces connections that died *between* transactions, but a transaction that
runs while the server is away fails with a connection error. Each of the adapter's transactions
is short and safe to run again, so it is retried for a few seconds; after that the caller gets
``DatabaseUnavailable`` and answers the person without the database (docs/telegram.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

# Seconds between attempts: ~3.5 s in all, longer than a PostgreSQL restart takes here, short
# enough that a person whose message cannot be stored gets the hotline numbers quickly.
RETRY_DELAYS: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0, 1.5)

# SQLSTATEs that mean "the server is going away or not there yet", not "your statement is wrong":
# class 08 (connection exception), admin/crash shutdown, starting up, too many connections.
_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
_NOT_NETWORK = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database stayed unreachable through every retry; the cause is chained."""


def _sqlstate(error: BaseException) -> str:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return state if isinstance(state, str) else ""


def is_transient(error: BaseException) -> bool:
    """True for errors that say the database could not be reached, not that a query is wrong.

    asyncpg raises the socket's own error when the server refuses connections (it is not
    wrapped by SQLAlchemy); a connection that dies mid-transaction comes back as a
    ``DBAPIError`` with ``connection_invalidated``; a server starting up answers 57P03.
    """
    if isinstance(error, DatabaseUnavailable):
        return True
    if isinstance(error, (ConnectionError, TimeoutError, sa_exc.TimeoutError)):
        return True
    if isinstance(error, OSError) and not isinstance(error, _NOT_NETWORK):
        return True  # unreachable host, "Multiple exceptions" from a multi-address connect
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    state = _sqlstate(error) or _sqlstate(error.__cause__ or error)
    if state.startswith("08") or state in _TRANSIENT_STATES:
        return True
    # asyncpg's "connection was closed in the middle of operation", when not wrapped
    return type(error).__name__ == "ConnectionDoesNotExistError"


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    delays: tuple[float, ...] = RETRY_DELAYS,
    on_first_failure: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Run ``operation`` (one whole transaction), again after each delay on a transient error.

    ``on_first_failure`` runs once, before the first pause: what must not wait for the
    retries (the emergency answer). Gives up with ``DatabaseUnavailable`` after the last
    attempt, or once the pauses' total has passed (attempts that hang until the connect
    timeout, an unreachable host, must not multiply it); other errors go through.
    """
    deadline = time.monotonic() + sum(delays)
    for attempt, delay in enumerate((*delays, None)):
        try:
            return await operation()
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == 0 and on_first_failure is not None:
                await on_first_failure()
            if delay is None or time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"database unreachable after {attempt + 1} attempts: {type(error).__name__}"
                ) from error
            log.warning("database unreachable (%s); retrying", type(error).__name__)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def retried(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """``with_retries`` for a method that is one self-contained, repeatable transaction."""

    @wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await with_retries(lambda: method(*args, **kwargs))

    return wrapper
