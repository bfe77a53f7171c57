"""What the actions write (cases for operators, screening results), kept through an outage.

Why: an action that answers the person and then records a case must not lose the case, nor the
answer, because the database is briefly or longer away. Each write is one repeatable
transaction, already retried for a few seconds (``bot.storage.transient``). When the database is
still unreachable after that, the person gets the action's answer anyway and the write is tried
again in the background, with growing pauses, for ``sum(LATER_DELAYS)`` seconds. The case for
an emergency the NLU recognised (``action_handoff`` after the emergency answer) was lost this
way before.

Limit: the writes waiting are kept in this process's memory; if the bot service stops during
the outage they are lost, and the stop logs how many (a WARNING, without ids or text).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.storage.transient import DatabaseUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

# Pauses between background attempts: about half an hour in all.
LATER_DELAYS: tuple[float, ...] = (2, 5, 10, 20, 30, 60, 60, 120, 300, 600, 600)

_waiting: set[asyncio.Task[None]] = set()


async def keep(what: str, write: Callable[[], Awaitable[T]]) -> T | None:
    """``await write()``; if the database is unavailable, try again later and return None.

    ``what`` names the kind of record for the log (never ids or message text). Errors other
    than the database being unreachable go through: they are bugs, not outages.
    """
    try:
        return await write()
    except DatabaseUnavailable:
        log.warning("database unavailable: %s will be written when it is back", what)
        task = asyncio.get_running_loop().create_task(_later(what, write))
        _waiting.add(task)
        task.add_done_callback(_waiting.discard)
        return None


async def _later(what: str, write: Callable[[], Awaitable[object]]) -> None:
    for delay in LATER_DELAYS:
        await asyncio.sleep(delay)
        try:
            await write()
        except DatabaseUnavailable:
            continue
        except Exception:
            log.exception("%s could not be written after the outage", what)
            return
        log.info("%s written after the database outage", what)
        return
    log.error("%s lost: the database stayed unavailable for %.0f s", what, sum(LATER_DELAYS))


def waiting() -> int:
    """How many writes are waiting for the database."""
    return len(_waiting)


def abandon() -> None:
    """Stop the waiting writes (the service is stopping; ``settle`` said how many)."""
    for task in list(_waiting):
        task.cancel()


async def settle(timeout: float) -> int:
    """Wait up to ``timeout`` s for the waiting writes; returns how many still wait.

    At shutdown the service gives them a moment, then says how many are lost; tests use it to
    wait for a write deferred during an outage they ended.
    """
    if _waiting:
        await asyncio.wait(set(_waiting), timeout=timeout)
    return len(_waiting)
