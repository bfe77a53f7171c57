"""This process's memory of updates it could not finish: what to tell Telegram, what the person
already got, and which ``processing`` claims are its own.

Why in memory and not in the database: it is exactly what is needed while the database cannot
be reached. Losing it (a restart) costs at most a repeated hotline message or a wait for the
claim timeout, never a lost message: the claim in ``tg_updates`` stays the source of truth.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

CAPACITY = 10_000  # update ids remembered; the oldest are forgotten first


class Outcome(enum.Enum):
    """How processing one update ended, as far as acknowledging it is concerned."""

    DONE = "done"  # answered, dropped as a duplicate, or failed for good: acknowledge it
    BUSY = "busy"  # another process holds its claim: Telegram must deliver it again later
    UNAVAILABLE = "unavailable"  # the database was unreachable: deliver it again later

    @property
    def acknowledged(self) -> bool:
        return self is Outcome.DONE


class _Bounded(OrderedDict[int, str]):
    def put(self, key: int, value: str) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > CAPACITY:
            self.popitem(last=False)


class UpdateLedger:
    """Per-process bookkeeping shared by the handlers, the webhook and the polling replay."""

    def __init__(self) -> None:
        self._outcomes: dict[int, Outcome] = {}
        self._unfinished = _Bounded()  # update id → "" : our claim, processing failed here
        self._offline = _Bounded()  # update id → what the person got without the database

    # -- outcome of the current attempt ------------------------------------------------------
    def set_outcome(self, update_id: int, outcome: Outcome) -> None:
        self._outcomes[update_id] = outcome

    def pop_outcome(self, update_id: int) -> Outcome:
        """The outcome of the attempt that just ran (DONE when nothing said otherwise)."""
        return self._outcomes.pop(update_id, Outcome.DONE)

    # -- claims this process left behind -----------------------------------------------------
    def mark_unfinished(self, update_id: int) -> None:
        """Processing failed after (perhaps) claiming: the next attempt may take the claim over
        at once instead of waiting for the claim timeout."""
        self._unfinished.put(update_id, "")

    def is_unfinished(self, update_id: int) -> bool:
        return update_id in self._unfinished

    def finished(self, update_id: int) -> None:
        self._unfinished.pop(update_id, None)
        self._offline.pop(update_id, None)

    # -- what the person was told while the database was away ---------------------------------
    def answered_offline(self, update_id: int) -> str | None:
        """``"emergency"`` or ``"fallback"`` when the person already got that answer to this
        update without the database; None otherwise."""
        return self._offline.get(update_id)

    def note_offline_answer(self, update_id: int, kind: str) -> None:
        self._offline.put(update_id, kind)
