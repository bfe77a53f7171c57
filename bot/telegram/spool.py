"""Updates acknowledged to Telegram but not processed yet, kept on local disk until they are.

Why: while the database is unreachable, the adapter still answers each person (the hotline or
emergency numbers) but cannot process the message. Answering the webhook with an error would
make Telegram deliver it again — and, when errors go on, slow down delivery of *every* update,
so the next person in danger would wait for their numbers. So the update is acknowledged and
kept here instead, and replayed when the database is back. On disk, not only in memory, so a
restart of the bot service during the outage loses nothing either.

Privacy: a kept update holds the message and the raw Telegram ids, so the directory is private
to the service's user (0700), and each file is deleted as soon as its update is processed. Only
an outage puts anything here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class UpdateSpool:
    """One JSON file per kept update, named by its update id."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, update_id: int) -> Path:
        return self.directory / f"{int(update_id)}.json"

    def put(self, update_id: int, data: dict[str, Any]) -> None:
        """Write the update atomically (a crash leaves the old file or none, never half)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(update_id)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, ensure_ascii=False)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    def drop(self, update_id: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(update_id).unlink()

    def load(self) -> list[dict[str, Any]]:
        """The kept updates, oldest first; unreadable files are logged and left in place."""
        if not self.directory.is_dir():
            return []
        kept: list[tuple[int, dict[str, Any]]] = []
        for path in self.directory.glob("*.json"):
            try:
                kept.append((int(path.stem), json.loads(path.read_text("utf-8"))))
            except (ValueError, OSError) as exc:
                log.warning("kept update %s unreadable: %s", path.name, type(exc).__name__)
        return [data for _, data in sorted(kept, key=lambda item: item[0])]
