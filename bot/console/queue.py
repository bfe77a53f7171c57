"""The operators' queue: open cases without any message text, live, and the atomic claim.

Why no text here: operators see the queue without message text (issue 5, item 4); what a case
is about shows as its reason, priority and risk flags, and the transcript opens only to whoever
claims it (and to supervisors, audited).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Hashable
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.console import audit
from bot.console.casework import (
    CASE_ROLES,
    case_id_of,
    case_store,
    telegram_adapter,
    usernames,
    wants_json,
)
from bot.console.identity import CurrentUser, console_db, current_user
from bot.console.pages import error_page, redirect, render
from bot.console.security import require_role
from bot.console.stream import EventStream, changes
from bot.storage.cases import OPEN, ClaimConflict, QueueRow
from bot.storage.models import CaseMessage, Escalation

log = logging.getLogger(__name__)

CLAIM_CONFLICT = "Another operator took this case a moment ago. It is no longer in the queue."


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def wait_label(seconds: float) -> str:
    """'45 s', '12 min', '3 h 05 min' — what an operator reads at a glance."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def queue_item(row: QueueRow, user: CurrentUser, names: dict[int, str], now: dt.datetime) -> dict:
    """One queue row as the page and the stream show it — facts only, never text."""
    created = _aware(row.created_at)
    mine = row.assigned_to == user.id
    return {
        "id": row.id,
        "code": row.code,
        "status": row.status,
        "priority": row.priority,
        "language": row.language,
        "reason": row.reason,
        "risk_flags": row.risk_flags,
        "created_at": created.isoformat(),
        "waiting_seconds": int((now - created).total_seconds()),
        "assignee": names.get(row.assigned_to, "") if row.assigned_to else "",
        "mine": mine,
        "can_claim": row.status == "queued",
        "can_open": row.status == "assigned" and (mine or user.role == "supervisor"),
    }


async def queue_items(request: web.Request, user: CurrentUser) -> list[dict[str, Any]]:
    rows = await case_store(request).queue()
    names = await usernames(request) if any(r.assigned_to for r in rows) else {}
    now = dt.datetime.now(dt.UTC)
    return [queue_item(r, user, names, now) for r in rows]


async def queue_fingerprint(request: web.Request) -> Hashable:
    """Cheap: number and last change of open cases, and the newest transcript line."""
    async with console_db(request)() as db:
        count, changed = (
            await db.execute(
                select(func.count(), func.max(Escalation.updated_at)).where(
                    Escalation.status.in_(OPEN)
                )
            )
        ).one()
        last_line = await db.scalar(select(func.max(CaseMessage.id)))
    return (count, str(changed), last_line)


@require_role(*CASE_ROLES)
async def queue_page(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    items = await queue_items(request, user)
    for item in items:
        item["waiting"] = wait_label(item["waiting_seconds"])
    return render(request, "queue.html", items=items)


@require_role(*CASE_ROLES)
async def queue_stream(request: web.Request) -> web.StreamResponse:
    """SSE: ``queue`` events carrying the whole (small) queue, at connect and on each change."""
    user = current_user(request)
    stream = await EventStream.open(request)
    try:
        async with contextlib.aclosing(changes(stream, lambda: queue_fingerprint(request))) as it:
            async for _ in it:
                await stream.send("queue", await queue_items(request, user))
    except (ConnectionResetError, RuntimeError):
        pass  # the browser left; nothing to clean up
    return stream.response


@require_role(*CASE_ROLES)
async def claim(request: web.Request) -> web.StreamResponse:
    """Take a waiting case. One of two simultaneous claims wins; the other gets 409."""
    user = current_user(request)
    case_id = case_id_of(request)
    store = case_store(request)
    try:
        case = await store.claim(case_id, user.id)
    except ClaimConflict:
        if wants_json(request):
            return web.json_response({"error": "conflict", "message": CLAIM_CONFLICT}, status=409)
        return error_page(request, 409, CLAIM_CONFLICT)
    await audit.record(console_db(request), user.username, "claim", case_id=case.id)
    adapter = telegram_adapter(request)
    if adapter is not None:
        try:  # best effort: the claim stands even if the person cannot be told right now
            await adapter.announce(case.id, "text_case_joined")
        except Exception:
            log.warning("could not announce the operator on case %s", case.code, exc_info=True)
    location = f"/console/cases/{case.id}"
    if wants_json(request):
        return web.json_response({"case_id": case.id, "location": location})
    return redirect(location)


def setup_queue(app: web.Application) -> None:
    app.router.add_get("/console/queue", queue_page)
    app.router.add_get("/console/queue/stream", queue_stream)
    app.router.add_post(r"/console/cases/{case_id:\d+}/claim", claim)
