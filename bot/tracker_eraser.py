"""Erase one conversation from the engine's tracker store (``/forget``), and old ones (retention).

Why straight to the store: Rasa 3.6's HTTP API can replace a tracker's events but its SQL
tracker store only ever appends, so the old events would stay in the table. The store is ours
(SQLite file next to the engine, or the PostgreSQL database in production), so we delete the
rows of that ``sender_id`` from Rasa's ``events`` table.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import inspect, text

from bot.storage.db import make_engine

log = logging.getLogger(__name__)


class TrackerEraser:
    """Deletes a sender's events from the engine's SQL tracker store."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    async def _delete(self, sql: str, params: dict[str, Any]) -> int:
        """Run one DELETE on ``events``; 0 when the table is not there yet.

        Why look first: the engine creates its table when it starts, and a bot service (or a
        replica) that starts sooner runs its first purge before that. Asking the catalogue works
        the same on SQLite and PostgreSQL, where the error texts differ.
        """
        async with self.engine.begin() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table("events")):
                return 0
            result = await conn.execute(text(sql), params)
            return int(result.rowcount or 0)

    async def erase(self, sender_id: str) -> int:
        """Delete the conversation; returns the number of events removed (0 when none)."""
        return await self._delete(
            "DELETE FROM events WHERE sender_id = :sender", {"sender": sender_id}
        )

    async def purge(self, retention_days: int, now: float | None = None) -> int:
        """Delete whole conversations untouched for ``retention_days``; returns events removed.

        Why whole conversations: the events table holds what people wrote, so it needs the same
        retention as our own tables; cutting old events out of a conversation that is still going
        would leave the engine a tracker with slots set by events that no longer exist. A case's
        transcript was copied into our database when it opened, with its own retention and hold.
        """
        cutoff = (time.time() if now is None else now) - retention_days * 86400
        return await self._delete(
            "DELETE FROM events WHERE sender_id IN (SELECT sender_id FROM events "
            "GROUP BY sender_id HAVING MAX(timestamp) < :cutoff)",
            {"cutoff": cutoff},
        )

    async def close(self) -> None:
        await self.engine.dispose()
