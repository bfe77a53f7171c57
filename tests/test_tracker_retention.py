"""The engine's tracker store keeps conversations no longer than our own tables do."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from bot.tracker_eraser import TrackerEraser
from tests.db import fresh_database

# The columns of Rasa 3.6's SQLTrackerStore ``events`` table that the eraser touches.
EVENTS = (
    "CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
    "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
    "action_name VARCHAR(255), data TEXT)"
)
DAY = 86400.0


def events_db(path: Path, rows: list[tuple[str, float]]) -> None:
    with sqlite3.connect(path) as db:
        db.execute(EVENTS)
        db.executemany(
            "INSERT INTO events (sender_id, type_name, timestamp, data) VALUES (?, 'user', ?, '{}')",
            rows,
        )


def senders(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT sender_id, COUNT(*) FROM events GROUP BY sender_id").fetchall()
    return dict(rows)


async def test_purge_removes_whole_quiet_conversations_only(tmp_path: Path) -> None:
    now = time.time()
    path = tmp_path / "tracker.db"
    events_db(
        path,
        [
            ("quiet", now - 40 * DAY), ("quiet", now - 35 * DAY),
            # Began long ago but still going: kept whole, not cut in the middle.
            ("ongoing", now - 50 * DAY), ("ongoing", now - 1 * DAY),
            ("recent", now - 2 * DAY),
        ],
    )  # fmt: skip
    eraser = TrackerEraser(f"sqlite:///{path}")
    try:
        assert await eraser.purge(30, now=now) == 2
        assert senders(path) == {"ongoing": 2, "recent": 1}
        assert await eraser.purge(30, now=now) == 0
        assert await eraser.purge(0, now=now) == 3
    finally:
        await eraser.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_purge_and_erase_before_the_engine_made_its_table(kind: str, tmp_path: Path) -> None:
    """A replica starts before any engine has created ``events``: its first purge, or an early
    ``/forget``, has nothing to do, and says so without an error (it logged ERROR on PostgreSQL,
    whose message differs from SQLite's "no such table")."""
    url = await fresh_database(kind, tmp_path)  # our tables only, no engine table
    eraser = TrackerEraser(url)
    try:
        assert await eraser.purge(30) == 0
        assert await eraser.erase("u_made_up") == 0
    finally:
        await eraser.close()
