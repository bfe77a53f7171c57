"""The audit log: who did what to which case, never what anyone wrote.

API used across the app::

    await audit.record(db, actor, action, case_id=None, **detail)
    await audit.recent(db, limit=100, action=None) -> list[AuditEvent]

``db`` is either an ``AsyncSession`` — the event joins the caller's transaction, so a claim and
its audit row commit or roll back together (the caller commits) — or an ``async_sessionmaker``,
in which case the event is written and committed on its own.

Why the checks: the log must never hold message text (issue 5, item 5). Detail keys that could
carry text (``text``, ``message``, ``note`` …) are refused, values must be short scalars, and the
action must be one of :data:`ACTIONS` so a typo does not create a new kind of event silently.
The database itself refuses UPDATE and DELETE on ``audit_log`` (triggers, migration 0004).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.models import AuditEvent

ACTIONS = frozenset(
    {
        "login",
        "login_failed",
        "logout",
        "totp_enrolled",
        "user_created",
        "user_deactivated",
        "totp_reset",
        "password_changed",
        "password_reset",
        "claim",
        "read",
        "reply",
        "note",
        "transfer",
        "close",
        "hold",
        "export",
        "erasure",
        "purge",
        "knowledge_reload",
    }
)

# Words that name content rather than facts about it.
TEXT_WORDS = frozenset(
    {
        "text",
        "texts",
        "message",
        "messages",
        "msg",
        "body",
        "note",
        "notes",
        "reply",
        "content",
        "transcript",
        "caption",
        "comment",
        "comments",
        "answer",
        "answers",
        "query",
        "question",
    }
)
# ...unless the key says it is only a reference or a measure of it: ``note_id``, ``reply_count``.
REFERENCE_SUFFIXES = frozenset({"id", "ids", "count", "code", "status", "len", "length"})
MAX_VALUE_CHARS = 120
MAX_ACTOR_CHARS = 64


def _check_key(key: str) -> None:
    words = [w for w in re.split(r"[_\-\s]+", key.lower()) if w]
    if any(w in TEXT_WORDS for w in words) and words[-1] not in REFERENCE_SUFFIXES:
        raise ValueError(f"audit detail {key!r} could carry message text; store ids or counts")


def _check_value(key: str, value: Any) -> None:
    items = value if isinstance(value, list | tuple) else [value]
    for item in items:
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"audit detail {key!r} must be a scalar or a list of scalars")
        if isinstance(item, str) and len(item) > MAX_VALUE_CHARS:
            raise ValueError(f"audit detail {key!r} is too long for an id or a code")


def validate(action: str, detail: dict[str, Any]) -> dict[str, Any]:
    """Return ``detail`` as stored, or raise ValueError when it breaks the rules above."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r} (add it to bot.console.audit.ACTIONS)")
    for key, value in detail.items():
        _check_key(key)
        _check_value(key, value)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in detail.items()}


async def record(
    db: AsyncSession | async_sessionmaker,
    actor: str,
    action: str,
    case_id: int | None = None,
    **detail: Any,
) -> AuditEvent:
    """Append one event. With an ``AsyncSession`` the caller commits; otherwise it is committed."""
    event = AuditEvent(
        actor=actor[:MAX_ACTOR_CHARS],
        action=action,
        case_id=case_id,
        detail=validate(action, detail),
    )
    if isinstance(db, AsyncSession):
        db.add(event)
        return event
    async with db() as session, session.begin():
        session.add(event)
    return event


async def recent(
    db: AsyncSession | async_sessionmaker, limit: int = 100, action: str | None = None
) -> list[AuditEvent]:
    """The newest events first, optionally of one action (the audit page)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    if isinstance(db, AsyncSession):
        return list((await db.scalars(query)).all())
    async with db() as session:
        return list((await session.scalars(query)).all())
