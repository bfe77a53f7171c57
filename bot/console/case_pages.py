"""The case page: transcript, facts, screening answers, and the operator's forms — reply, internal
note, transfer, close with an outcome, legal hold — plus its live stream.

Why every open is audited: supervisors see all cases and every read must be logged (issue 5,
item 4); operators' reads are logged too, so the log answers "who saw this conversation".
Nothing any person wrote ever goes into the audit detail — only ids, lengths and codes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Hashable
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from bot.console import audit
from bot.console.case_view import (
    OUTCOME_LABELS,
    canned_replies,
    facts,
    latest_screening,
    line,
    screening_rows,
)
from bot.console.casework import (
    CASE_ROLES,
    active_handlers,
    can_manage,
    can_view,
    case_id_of,
    case_store,
    holds,
    telegram_adapter,
    usernames,
)
from bot.console.identity import CurrentUser, console_db, current_user
from bot.console.pages import error_page, form_fields, redirect, render
from bot.console.security import require_role
from bot.console.stream import EventStream, changes
from bot.storage.cases import OUTCOMES, CaseNotFound, ClaimConflict
from bot.storage.models import CaseMessage, Escalation

log = logging.getLogger(__name__)

MAX_TEXT = 4000  # Telegram's limit is 4096; the "👤 Operator:" prefix needs the rest
ERASED = "This conversation was erased at the person's request."
NOT_YOURS = "This case is not assigned to you. Claim it from the queue to open it."
ADMIN_NO_TRANSCRIPTS = "Admins do not see transcripts."


def _refusal(request: web.Request, user: CurrentUser) -> web.Response:
    message = ADMIN_NO_TRANSCRIPTS if user.role == "admin" else NOT_YOURS
    return error_page(request, 403, message)


def erased_page(request: web.Request) -> web.Response:
    return render(request, "case_erased.html", status=410, message=ERASED)


async def _load(request: web.Request) -> Escalation | web.Response:
    """The case, or the response that explains why not (erased → 410, not allowed → 403)."""
    user = current_user(request)
    try:
        case = await case_store(request).get(case_id_of(request))
    except CaseNotFound:
        return erased_page(request)
    if not can_view(user, case):
        return _refusal(request, user)
    return case


# --- the page ---------------------------------------------------------------------------------


async def _page(request: web.Request, case: Escalation, status: int = 200, **extra: Any):
    user = current_user(request)
    store = case_store(request)
    names = await usernames(request)
    messages = await store.transcript(case.id)
    screening = await latest_screening(console_db(request), case.user_key)
    handlers = [h for h in await active_handlers(request) if h.id != case.assigned_to]
    settings = request.config_dict.get(_settings_key())
    return render(
        request,
        "case.html",
        status=status,
        case=facts(case, names),
        lines=[line(m, names) for m in messages],
        screening=screening,
        screening_rows=screening_rows(screening),
        canned=canned_replies(settings, case.language),
        outcomes=[(o, OUTCOME_LABELS.get(o, o)) for o in OUTCOMES],
        handlers=handlers,
        holder=holds(user, case),
        manage=can_manage(user, case),
        supervisor=user.role == "supervisor",
        max_text=MAX_TEXT,
        **extra,
    )


def _settings_key():
    from bot.console.routes import CONSOLE_SETTINGS  # routes imports this module

    return CONSOLE_SETTINGS


@require_role(*CASE_ROLES)
async def case_page(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    case = await _load(request)
    if isinstance(case, web.Response):
        return case
    await audit.record(console_db(request), user.username, "read", case_id=case.id, page="case")
    return await _page(request, case)


# --- the live stream --------------------------------------------------------------------------


async def case_fingerprint(request: web.Request, case_id: int) -> Hashable:
    """Cheap: the case row's state and, per delivery status, how many lines and the newest."""
    async with console_db(request)() as db:
        row = (
            await db.execute(
                select(
                    Escalation.status,
                    Escalation.assigned_to,
                    Escalation.legal_hold,
                    Escalation.priority,
                    Escalation.updated_at,
                ).where(Escalation.id == case_id)
            )
        ).one_or_none()
        if row is None:
            return "erased"
        lines = (
            await db.execute(
                select(CaseMessage.delivery, func.count(), func.max(CaseMessage.id))
                .where(CaseMessage.case_id == case_id)
                .group_by(CaseMessage.delivery)
            )
        ).all()
    return (tuple(row), tuple(sorted((str(d), c, m) for d, c, m in lines)))


class CaseWatch:
    """What one case stream already sent, so each change sends only the difference."""

    def __init__(self, request: web.Request, stream: EventStream, case_id: int) -> None:
        self.request = request
        self.stream = stream
        self.case_id = case_id
        self.user = current_user(request)
        self.store = case_store(request)
        self.sent: dict[int, str | None] = {}
        self.facts: dict[str, Any] | None = None

    async def refresh(self) -> bool:
        """Send what changed; False when the stream should end (erased, no longer yours)."""
        try:
            case = await self.store.get(self.case_id)
        except CaseNotFound:
            await self.stream.send("erased", {"message": ERASED})
            return False
        if not can_view(self.user, case):
            await self.stream.send("revoked", {"message": NOT_YOURS})
            return False
        names = await usernames(self.request)
        now = facts(case, names)
        if now != self.facts:
            await self.stream.send("case", now)
            self.facts = now
        for message in await self.store.transcript(self.case_id):
            shown = line(message, names)
            if message.id not in self.sent:
                await self.stream.send("line", shown)
            elif self.sent[message.id] != shown["delivery"]:
                await self.stream.send("delivery", shown)
            self.sent[message.id] = shown["delivery"]
        return True


@require_role(*CASE_ROLES)
async def case_stream(request: web.Request) -> web.StreamResponse:
    """SSE: ``case`` (facts), ``line`` (a transcript line the page may not have yet — the page
    skips ids it shows), ``delivery`` (a reply's status changed), ``erased`` (the person used
    /forget) and ``revoked`` (transferred or closed: no longer yours)."""
    user = current_user(request)
    case_id = case_id_of(request)
    with contextlib.suppress(CaseNotFound):
        case = await case_store(request).get(case_id)
        if not can_view(user, case):
            return _refusal(request, user)
    stream = await EventStream.open(request)
    watch = CaseWatch(request, stream, case_id)
    fingerprint = functools.partial(case_fingerprint, request, case_id)
    try:
        async with contextlib.aclosing(changes(stream, fingerprint)) as it:
            async for _ in it:
                if not await watch.refresh():
                    break
    except (ConnectionResetError, RuntimeError):
        pass  # the browser left
    return stream.response


# --- forms ------------------------------------------------------------------------------------


def _text(form: dict[str, str]) -> str | None:
    text = form.get("text", "").replace("\r\n", "\n").strip()
    return text if 0 < len(text) <= MAX_TEXT else None


async def _managed(request: web.Request) -> Escalation | web.Response:
    case = await _load(request)
    if isinstance(case, web.Response):
        return case
    if not can_manage(current_user(request), case):
        return error_page(request, 403, "This case is closed or not yours to change.")
    return case


@require_role(*CASE_ROLES)
async def reply(request: web.Request) -> web.StreamResponse:
    """Send through the bot; the stored line shows delivered / failed / bot-blocked."""
    user = current_user(request)
    case = await _load(request)
    if isinstance(case, web.Response):
        return case
    if not holds(user, case):
        return error_page(request, 403, "Only the operator holding the case can reply.")
    text = _text(await form_fields(request))
    if text is None:
        return await _page(
            request, case, 400, error=f"Write a reply of 1 to {MAX_TEXT} characters."
        )
    adapter = telegram_adapter(request)
    status = "failed"
    if adapter is None:  # no Telegram service (no token): stored, visibly not delivered
        await case_store(request).add_message(
            case.id, case.user_key, "operator", text, operator_id=user.id, delivery="failed"
        )
    else:
        try:
            status = await adapter.send_operator_reply(case.id, user.id, text)
        except CaseNotFound:
            return erased_page(request)
        except Exception:
            log.exception("reply on case %s could not be sent", case.code)
    await audit.record(
        console_db(request), user.username, "reply", case_id=case.id,
        chars=len(text), delivery_status=status,
    )  # fmt: skip
    return redirect(f"/console/cases/{case.id}#reply")


@require_role(*CASE_ROLES)
async def note(request: web.Request) -> web.StreamResponse:
    """An internal note: stored with the transcript for colleagues, never sent to the person."""
    user = current_user(request)
    case = await _managed(request)
    if isinstance(case, web.Response):
        return case
    text = _text(await form_fields(request))
    if text is None:
        return await _page(request, case, 400, error=f"Write a note of 1 to {MAX_TEXT} characters.")
    await case_store(request).add_message(case.id, case.user_key, "note", text, operator_id=user.id)
    await audit.record(console_db(request), user.username, "note", case_id=case.id, chars=len(text))
    return redirect(f"/console/cases/{case.id}#note")


@require_role(*CASE_ROLES)
async def transfer(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    case = await _managed(request)
    if isinstance(case, web.Response):
        return case
    form = await form_fields(request)
    targets = {h.id: h for h in await active_handlers(request)}
    try:
        target = targets[int(form.get("to_user_id", ""))]
    except (KeyError, ValueError):
        return await _page(request, case, 400, error="Choose an active operator to transfer to.")
    try:
        case = await case_store(request).transfer(case.id, target.id)
    except ClaimConflict:
        return await _page(
            request, case, 409, error="Only a claimed, open case can be transferred."
        )
    await audit.record(
        console_db(request), user.username, "transfer", case_id=case.id, to_user_id=target.id
    )
    location = f"/console/cases/{case.id}" if can_view(user, case) else "/console/queue"
    return redirect(location)


@require_role(*CASE_ROLES)
async def close(request: web.Request) -> web.StreamResponse:
    """Close with a required outcome code; the person is told and the bot takes over again."""
    user = current_user(request)
    case = await _managed(request)
    if isinstance(case, web.Response):
        return case
    outcome = (await form_fields(request)).get("outcome", "")
    if outcome not in OUTCOMES:
        return await _page(request, case, 400, error="Choose an outcome to close the case.")
    try:
        case = await case_store(request).close(case.id, outcome)
    except ClaimConflict:
        return await _page(request, case, 409, error="The case is already closed.")
    await audit.record(
        console_db(request), user.username, "close", case_id=case.id, outcome_code=outcome
    )
    adapter = telegram_adapter(request)
    if adapter is not None:
        try:
            await adapter.announce(case.id, "text_case_closed")
        except Exception:
            log.warning("could not tell case %s's person it closed", case.code, exc_info=True)
    return redirect("/console/queue")


@require_role("supervisor")
async def hold(request: web.Request) -> web.StreamResponse:
    """Legal hold keeps the transcript past the retention period (supervisors only)."""
    user = current_user(request)
    case = await _load(request)
    if isinstance(case, web.Response):
        return case
    on = (await form_fields(request)).get("hold") == "on"
    await case_store(request).set_hold(case.id, on)
    await audit.record(console_db(request), user.username, "hold", case_id=case.id, legal_hold=on)
    return redirect(f"/console/cases/{case.id}")


@require_role("supervisor")
async def pull_in(request: web.Request) -> web.StreamResponse:
    """A supervisor takes a closed case's chat back from the bot (a trigger of its own: the
    person may be in trouble again); the result is a new case held by the supervisor."""
    user = current_user(request)
    case = await _load(request)
    if isinstance(case, web.Response):
        return case
    try:
        new = await case_store(request).pull_in(case.user_key, user.id, case.language)
    except ClaimConflict:
        return await _page(request, case, 409, error="Another operator holds this chat now.")
    await audit.record(
        console_db(request), user.username, "claim", case_id=new.id, pulled_from=case.id
    )
    adapter = telegram_adapter(request)
    if adapter is not None:
        try:
            await adapter.announce(new.id, "text_case_joined")
        except Exception:
            log.warning("could not tell case %s's person", new.code, exc_info=True)
    return redirect(f"/console/cases/{new.id}")


def setup_case_pages(app: web.Application) -> None:
    router = app.router
    base = r"/console/cases/{case_id:\d+}"
    router.add_get(base, case_page)
    router.add_get(base + "/stream", case_stream)
    router.add_post(base + "/reply", reply)
    router.add_post(base + "/note", note)
    router.add_post(base + "/transfer", transfer)
    router.add_post(base + "/close", close)
    router.add_post(base + "/hold", hold)
    router.add_post(base + "/pull", pull_in)
