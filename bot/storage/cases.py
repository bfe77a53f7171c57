"""Cases: who handles each chat, the operators' queue, atomic claims, transcripts, closing and
retention (DESIGN.md §5, issue 5).

Why in the storage layer: the actions (inside the engine's turn), the Telegram adapter and the
console all open and change cases; they must do it one way, with the database as the only truth
so that several bot-service replicas agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.storage.models import CaseMessage, Escalation, utcnow

PRIORITIES = ("normal", "high", "urgent")
OPEN = ("queued", "assigned")
OUTCOMES = (
    "referred_shelter",
    "referred_legal_aid",
    "referred_police",
    "information_given",
    "no_response",
    "not_trafficking",
    "duplicate",
    "other",
)
AUTHORS = ("person", "bot", "operator", "note", "system")
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read aloud on the phone


class ClaimConflict(Exception):
    """Someone else claimed (or closed) the case first."""


class CaseNotFound(Exception):
    """No such case (or it was erased at the person's request)."""


class ChangeFeed:
    """Wakes the console's live views when a case changes in this process.

    Other replicas' changes are seen by the views' periodic database check; this only makes the
    common case instant.
    """

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, version: int, timeout: float) -> int:
        if self.version == version:
            event = self._event
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        return self.version


CHANGES = ChangeFeed()


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))


def transcript_from_events(
    events: Iterable[dict[str, Any]], limit: int = 40
) -> list[tuple[str, str]]:
    """The person's and the bot's messages from an engine tracker's events, oldest first.

    Button payloads (``/ask_shelter{…}``) are shown as what they are, not as typed text.
    """
    lines: list[tuple[str, str]] = []
    for event in events:
        kind = event.get("event")
        text = event.get("text")
        if not text:
            continue
        if kind == "user":
            if text.startswith("/"):
                text = f"[button {text[1:].split('{')[0]}]"
            lines.append(("person", text))
        elif kind == "bot":
            lines.append(("bot", text))
    return lines[-limit:]


@dataclass(frozen=True)
class QueueRow:
    id: int
    code: str
    status: str
    priority: str
    reason: str
    language: str
    created_at: dt.datetime
    assigned_to: int | None
    risk_flags: list[str]


class CaseStore:
    """Async access to ``escalations`` and ``case_messages``."""

    def __init__(self, sessions: async_sessionmaker, changes: ChangeFeed = CHANGES) -> None:
        self.sessions = sessions
        self.changes = changes

    # -- opening ---------------------------------------------------------------------------
    async def open_case(
        self,
        user_key: str,
        reason: str,
        priority: str,
        language: str,
        *,
        transcript: Iterable[tuple[str, str]] = (),
        risk_flags: Iterable[str] = (),
    ) -> Escalation:
        """Queue a request for a human, or raise the priority of the one already open.

        One open case per person: the partial unique index settles a race between replicas;
        the loser re-reads the winner's case.
        """
        if priority not in PRIORITIES:
            raise ValueError(f"unknown priority {priority!r}")
        flags = list(dict.fromkeys(risk_flags))
        for _attempt in range(3):
            async with self.sessions() as s:
                current = await s.scalar(
                    select(Escalation).where(
                        Escalation.user_key == user_key, Escalation.status.in_(OPEN)
                    )
                )
                if current is not None:
                    # Conditional UPDATEs, not read-modify-write: two raises at once must not
                    # leave the lower priority.
                    lower = PRIORITIES[: PRIORITIES.index(priority)]
                    raised = await s.execute(
                        update(Escalation)
                        .where(Escalation.id == current.id, Escalation.priority.in_(lower))
                        .values(priority=priority, updated_at=utcnow())
                    )
                    merged = list(dict.fromkeys([*(current.risk_flags or []), *flags]))
                    if merged != (current.risk_flags or []):
                        await s.execute(
                            update(Escalation)
                            .where(Escalation.id == current.id)
                            .values(risk_flags=merged)
                        )
                    await s.commit()
                    if raised.rowcount or merged != (current.risk_flags or []):
                        self.changes.bump()
                    async with self.sessions() as fresh:
                        return await fresh.get(Escalation, current.id) or current
                row = Escalation(
                    user_key=user_key,
                    reason=reason,
                    priority=priority,
                    language=language,
                    status="queued",
                    code=new_code(),
                    risk_flags=flags,
                    legal_hold=False,
                )
                s.add(row)
                try:
                    await s.flush()
                except IntegrityError:  # a concurrent open (or, rarely, a code collision)
                    await s.rollback()
                    continue
                s.add_all(
                    CaseMessage(case_id=row.id, user_key=user_key, author=author, text=text)
                    for author, text in transcript
                )
                await s.commit()
                self.changes.bump()
                return row
        raise RuntimeError("could not open a case after three attempts")

    async def open_case_of(self, user_key: str) -> Escalation | None:
        async with self.sessions() as s:
            return await s.scalar(
                select(Escalation).where(
                    Escalation.user_key == user_key, Escalation.status.in_(OPEN)
                )
            )

    async def get(self, case_id: int) -> Escalation:
        async with self.sessions() as s:
            row = await s.get(Escalation, case_id)
            if row is None:
                raise CaseNotFound(case_id)
            return row

    # -- the queue -------------------------------------------------------------------------
    async def queue(self, *, include_assigned: bool = True) -> list[QueueRow]:
        """Open cases: waiting ones first by priority (urgent, high, normal) then wait time."""
        rank = case(
            (Escalation.priority == "urgent", 0), (Escalation.priority == "high", 1), else_=2
        )
        statuses = OPEN if include_assigned else ("queued",)
        async with self.sessions() as s:
            rows = await s.scalars(
                select(Escalation)
                .where(Escalation.status.in_(statuses))
                .order_by(
                    case((Escalation.status == "queued", 0), else_=1),
                    rank,
                    Escalation.created_at,
                    Escalation.id,
                )
            )
            return [
                QueueRow(
                    r.id,
                    r.code or "",
                    r.status,
                    r.priority,
                    r.reason,
                    r.language,
                    r.created_at,
                    r.assigned_to,
                    list(r.risk_flags or []),
                )  # fmt: skip
                for r in rows
            ]

    # -- operator actions ------------------------------------------------------------------
    async def claim(self, case_id: int, operator_id: int) -> Escalation:
        """Take a waiting case. Atomic: of two operators claiming at once, one wins and the
        other gets ``ClaimConflict``."""
        async with self.sessions() as s:
            result = await s.execute(
                update(Escalation)
                .where(Escalation.id == case_id, Escalation.status == "queued")
                .values(
                    status="assigned",
                    assigned_to=operator_id,
                    claimed_at=utcnow(),
                    updated_at=utcnow(),
                )  # fmt: skip
            )
            await s.commit()
        if result.rowcount != 1:
            raise ClaimConflict(case_id)
        self.changes.bump()
        return await self.get(case_id)

    async def pull_in(self, user_key: str, operator_id: int, language: str) -> Escalation:
        """An operator takes a chat the bot is handling (or that is waiting) straight away."""
        current = await self.open_case(user_key, "operator_pull", "high", language)
        if current.status == "assigned":
            if current.assigned_to == operator_id:
                return current
            raise ClaimConflict(current.id)
        return await self.claim(current.id, operator_id)

    async def transfer(self, case_id: int, to_operator_id: int) -> Escalation:
        async with self.sessions() as s:
            result = await s.execute(
                update(Escalation)
                .where(Escalation.id == case_id, Escalation.status == "assigned")
                .values(assigned_to=to_operator_id, updated_at=utcnow())
            )
            await s.commit()
        if result.rowcount != 1:
            raise ClaimConflict(case_id)
        self.changes.bump()
        return await self.get(case_id)

    async def close(self, case_id: int, outcome: str) -> Escalation:
        """Close with a required outcome code; the chat goes back to the bot."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        async with self.sessions() as s:
            result = await s.execute(
                update(Escalation)
                .where(Escalation.id == case_id, Escalation.status.in_(OPEN))
                .values(status="closed", outcome=outcome, closed_at=utcnow(), updated_at=utcnow())
            )
            await s.commit()
        if result.rowcount != 1:
            raise ClaimConflict(case_id)
        self.changes.bump()
        return await self.get(case_id)

    async def set_hold(self, case_id: int, hold: bool) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(Escalation).where(Escalation.id == case_id).values(legal_hold=hold)
            )
            await s.commit()
        self.changes.bump()

    async def claim_alert(self, case_id: int) -> bool:
        """Mark the case alerted; True for the one replica whose update did it.

        Why conditional: every bot replica runs the alert round, and the operators' chat should
        hear about a waiting case once, not once per replica.
        """
        async with self.sessions() as s:
            result = await s.execute(
                update(Escalation)
                .where(Escalation.id == case_id, Escalation.alerted_at.is_(None))
                .values(alerted_at=utcnow())
            )
            await s.commit()
            return result.rowcount == 1

    async def release_alert(self, case_id: int) -> None:
        """The alert could not be sent: let the next round (any replica) try again."""
        async with self.sessions() as s:
            await s.execute(
                update(Escalation).where(Escalation.id == case_id).values(alerted_at=None)
            )
            await s.commit()

    async def waiting_longer_than(self, minutes: float) -> list[Escalation]:
        """Queued cases past the alert threshold that were not alerted yet."""
        limit = utcnow() - dt.timedelta(minutes=minutes)
        async with self.sessions() as s:
            rows = await s.scalars(
                select(Escalation).where(
                    Escalation.status == "queued",
                    Escalation.created_at < limit,
                    Escalation.alerted_at.is_(None),
                )
            )
            return list(rows)

    # -- transcript ------------------------------------------------------------------------
    async def add_message(
        self,
        case_id: int,
        user_key: str,
        author: str,
        text: str,
        *,
        operator_id: int | None = None,
        delivery: str | None = None,
    ) -> CaseMessage:
        if author not in AUTHORS:
            raise ValueError(f"unknown author {author!r}")
        async with self.sessions() as s:
            row = CaseMessage(
                case_id=case_id, user_key=user_key, author=author, text=text,
                operator_id=operator_id, delivery=delivery,
            )  # fmt: skip
            s.add(row)
            if author == "operator":
                await s.execute(
                    update(Escalation)
                    .where(Escalation.id == case_id, Escalation.first_reply_at.is_(None))
                    .values(first_reply_at=utcnow())
                )
            await s.commit()
        self.changes.bump()
        return row

    async def set_delivery(self, message_id: int, status: str) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(CaseMessage).where(CaseMessage.id == message_id).values(delivery=status)
            )
            await s.commit()
        self.changes.bump()

    async def transcript(self, case_id: int) -> list[CaseMessage]:
        async with self.sessions() as s:
            rows = await s.scalars(
                select(CaseMessage)
                .where(CaseMessage.case_id == case_id)
                .order_by(CaseMessage.created_at, CaseMessage.id)
            )
            return list(rows)

    # -- retention and erasure -------------------------------------------------------------
    async def purge_texts(self, retention_days: int) -> int:
        """Null the message text of cases closed more than ``retention_days`` ago, unless a
        supervisor set a legal hold. Rows stay (the statistics need them)."""
        limit = utcnow() - dt.timedelta(days=retention_days)
        expired = select(Escalation.id).where(
            Escalation.status.in_(("closed", "abandoned")),
            Escalation.closed_at < limit,
            Escalation.legal_hold.is_(False),
        )
        async with self.sessions() as s:
            result = await s.execute(
                update(CaseMessage)
                .where(CaseMessage.case_id.in_(expired), CaseMessage.text.is_not(None))
                .values(text=None)
            )
            await s.commit()
            return int(result.rowcount or 0)

    async def erase_person(self, user_key: str) -> list[Escalation]:
        """Delete the person's cases and transcripts (``/forget``); returns the open cases that
        were deleted, so the operator holding one can be told."""
        async with self.sessions() as s:
            cases = list(await s.scalars(select(Escalation).where(Escalation.user_key == user_key)))
            await s.execute(delete(CaseMessage).where(CaseMessage.user_key == user_key))
            await s.execute(delete(Escalation).where(Escalation.user_key == user_key))
            await s.commit()
        if cases:
            self.changes.bump()
        return [c for c in cases if c.status in OPEN]

    # -- figures for the dashboard ----------------------------------------------------------
    async def counts_by(self, column: str, since: dt.datetime) -> dict[str, int]:
        col = getattr(Escalation, column)
        async with self.sessions() as s:
            rows = await s.execute(
                select(col, func.count()).where(Escalation.created_at >= since).group_by(col)
            )
            return {str(k): int(v) for k, v in rows.all()}

    async def first_reply_delays(self, since: dt.datetime) -> list[tuple[dt.datetime, float]]:
        """(created_at, seconds to the first human reply) of cases since ``since``."""
        async with self.sessions() as s:
            rows = await s.execute(
                select(Escalation.created_at, Escalation.first_reply_at).where(
                    and_(Escalation.created_at >= since, Escalation.first_reply_at.is_not(None))
                )
            )
            return [
                (created, (_aware(first) - _aware(created)).total_seconds())
                for created, first in rows.all()
            ]


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes for timezone-aware columns; they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
