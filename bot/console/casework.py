"""What the case pages share: the case store, the Telegram adapter, who may see what.

Why one place for the access rule: the queue, the case page, its stream and every form on it
must agree on who sees a transcript (issue 5, item 4) — an operator the cases they hold,
supervisors all of them, admins none.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import select

from bot.console.identity import CurrentUser, console_db
from bot.storage.cases import CaseStore
from bot.storage.models import ConsoleUser, Escalation

log = logging.getLogger(__name__)

CASE_ROLES = ("operator", "supervisor")


def case_store(request: web.Request) -> CaseStore:
    return CaseStore(console_db(request))


def telegram_adapter(request: web.Request) -> Any | None:
    """The Telegram adapter when the service runs (no token → None: replies show "failed")."""
    from bot.server import TELEGRAM  # bot.server imports the console: import when used

    service = request.config_dict.get(TELEGRAM)
    return getattr(service, "adapter", None)


def holds(user: CurrentUser, case: Escalation) -> bool:
    return case.status == "assigned" and case.assigned_to == user.id


def can_view(user: CurrentUser, case: Escalation) -> bool:
    """Operators: the cases they hold; supervisors: all; admins: none (no transcripts)."""
    if user.role == "supervisor":
        return True
    return user.role == "operator" and holds(user, case)


def can_manage(user: CurrentUser, case: Escalation) -> bool:
    """Note, transfer, close: the holder or a supervisor, on an open case."""
    return case.status in ("queued", "assigned") and (
        user.role == "supervisor" or holds(user, case)
    )


def wants_json(request: web.Request) -> bool:
    """``fetch`` callers ask for JSON; forms get pages and redirects."""
    return "application/json" in request.headers.get("Accept", "")


async def usernames(request: web.Request) -> dict[int, str]:
    async with console_db(request)() as db:
        rows = await db.execute(select(ConsoleUser.id, ConsoleUser.username))
        return {int(i): str(n) for i, n in rows.all()}


async def active_handlers(request: web.Request) -> list[ConsoleUser]:
    """Accounts a case can be transferred to: active operators and supervisors."""
    async with console_db(request)() as db:
        rows = await db.scalars(
            select(ConsoleUser)
            .where(ConsoleUser.active.is_(True), ConsoleUser.role.in_(CASE_ROLES))
            .order_by(ConsoleUser.username)
        )
        return list(rows)


def case_id_of(request: web.Request) -> int:
    """The case id in the path; 404 unless it can be a row id (the route's ``\\d+`` also
    matches 30 digits, which the database would refuse with an error, i.e. a 500)."""
    try:
        case_id = int(request.match_info["case_id"])
    except (KeyError, ValueError):
        raise web.HTTPNotFound() from None
    if not 0 < case_id < 2**63:
        raise web.HTTPNotFound()
    return case_id
