"""Erase one conversation from the engine's tracker store (``/forget``).

Why straight to the store: Rasa 3.6's HTTP API can replace a tracker's events but its SQL
tracker store only ever appends, so the old events would stay in the table. The store is ours
(SQLite file next to the engine, or the PostgreSQL database in production), so we delete the
rows of that ``sender_id`` from Rasa's ``events`` table.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bot.storage.db import make_engine

log = logging.getLogger(__name__)


class TrackerEraser:
    """Deletes a sender's events from the engine's SQL tracker store."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    async def erase(self, sender_id: str) -> int:
        """Delete the conversation; returns the number of events removed (0 when none)."""
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    text("DELETE FROM events WHERE sender_id = :sender"), {"sender": sender_id}
                )
                return int(result.rowcount or 0)
        except DBAPIError as exc:  # no table yet: the engine has stored no conversation
            if "events" in str(exc).lower() and "no such table" in str(exc).lower():
                return 0
            raise

    async def close(self) -> None:
        await self.engine.dispose()
