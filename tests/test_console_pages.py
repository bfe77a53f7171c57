"""Operator pages over real HTTP: queue (no text, live), atomic claim, case page (roles, audit,
escaping, reply/note/transfer/close/hold), live case stream, erasure, supervisor dashboard.

No Telegram service runs here, so replies are stored as "failed" (the lead's browser test covers
delivery end to end). Everyone here is made up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import update

from bot.config import ROOT
from bot.console import accounts, audit
from bot.responses import load_responses
from bot.storage.cases import CaseStore, ChangeFeed
from bot.storage.models import CaseMessage, Escalation, Screening
from tests.console_helpers import Browser, Console, enrolled_user, running_console

SECRET_WORDS = "my boss keeps my passport"
XSS = "<script>alert(1)</script>"


@pytest_asyncio.fixture
async def console(request, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(getattr(request, "param", "sqlite"), tmp_path) as (console, _):
        yield console


class Team:
    """Logged-in browsers by username; closed at the end of the test."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.browsers: list[Browser] = []
        self.ids: dict[str, int] = {}

    async def login(self, username: str, role: str) -> Browser:
        secret = await enrolled_user(self.console.sessions, username, role)
        browser = self.console.browser()
        self.browsers.append(browser)
        await browser.login(username, secret)
        async with self.console.sessions() as db:
            self.ids[username] = (await accounts.find_user(db, username)).id
        return browser

    async def close(self) -> None:
        for browser in self.browsers:
            await browser.close()


@pytest_asyncio.fixture
async def team(console: Console) -> AsyncIterator[Team]:
    t = Team(console)
    yield t
    await t.close()


def store(console: Console) -> CaseStore:
    return CaseStore(console.sessions)


async def new_case(console: Console, key: str = "tg:aa11", **kw) -> Escalation:
    kw.setdefault("transcript", [("person", SECRET_WORDS), ("bot", "I can connect you.")])
    kw.setdefault("risk_flags", ["documents_taken"])
    return await store(console).open_case(key, kw.pop("reason", "operator_command"),
                                          kw.pop("priority", "high"), kw.pop("language", "ru"),
                                          **kw)  # fmt: skip


async def claimed_case(console: Console, team: Team, username: str, key: str = "tg:aa11"):
    case = await new_case(console, key)
    return await store(console).claim(case.id, team.ids[username])


async def audit_rows(console: Console, action: str) -> list:
    return list(reversed(await audit.recent(console.sessions, 500, action=action)))


class Events:
    """Reads a text/event-stream response as (event, data) pairs."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 4.0) -> tuple[str, object]:
        async def read() -> tuple[str, object]:
            event, data = "message", ""
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                text = raw.decode().rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: "):
                    data = text[6:]
                elif text == "" and data:
                    return event, json.loads(data)

        return await asyncio.wait_for(read(), timeout)

    async def until(self, event: str, timeout: float = 4.0) -> object:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            kind, data = await self.next(max(0.05, left))
            if kind == event:
                return data


async def stream(browser: Browser, path: str) -> tuple[aiohttp.ClientResponse, Events]:
    response = await browser.http.get(browser.base + path, allow_redirects=False)
    return response, Events(response)


# --- queue ------------------------------------------------------------------------------------


async def test_queue_shows_cases_without_text_and_streams_new_ones(
    console: Console, team: Team
) -> None:
    operator = await team.login("nigar.operator", "operator")
    first = await new_case(console, priority="normal")
    resp, body = await operator.get("/console/queue")
    assert resp.status == 200
    assert first.code in body and "documents_taken" in body and "operator_command" in body
    assert SECRET_WORDS not in body and "I can connect you" not in body
    assert f'action="/console/cases/{first.id}/claim"' in body
    assert 'src="/console/static/queue.js"' in body and "<script>" not in body

    response, events = await stream(operator, "/console/queue/stream")
    try:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        kind, items = await events.next()
        assert kind == "queue" and [i["code"] for i in items] == [first.code]
        assert SECRET_WORDS not in json.dumps(items)

        # A case opened in this process wakes the stream at once …
        urgent = await new_case(console, "tg:bb22", priority="urgent", risk_flags=["danger"])
        items = await events.until("queue", timeout=3)
        assert [i["code"] for i in items] == [urgent.code, first.code]  # urgent first

        # … and one opened by another replica (its own change feed) is seen by the 2 s check.
        other_replica = CaseStore(console.sessions, changes=ChangeFeed())
        third = await other_replica.open_case("tg:cc33", "human_handoff", "normal", "az")
        items = await events.until("queue", timeout=3.5)
        assert [i["code"] for i in items] == [urgent.code, first.code, third.code]
        assert all(SECRET_WORDS not in json.dumps(i) for i in items)
    finally:
        response.close()


@pytest.mark.parametrize("console", ["sqlite", "postgresql"], indirect=True)
async def test_two_operators_claiming_at_once_one_wins(console: Console, team: Team) -> None:
    a = await team.login("aysel.operator", "operator")
    b = await team.login("rauf.operator", "operator")
    case = await new_case(console)
    path = f"/console/cases/{case.id}/claim"
    (ra, body_a), (rb, body_b) = await asyncio.gather(a.post(path), b.post(path))
    assert sorted([ra.status, rb.status]) == [303, 409]
    loser_body = body_a if ra.status == 409 else body_b
    assert "Another operator took this case" in loser_body
    winner = "aysel.operator" if ra.status == 303 else "rauf.operator"
    after = await store(console).get(case.id)
    assert after.status == "assigned" and after.assigned_to == team.ids[winner]
    claims = await audit_rows(console, "claim")
    assert [(e.actor, e.case_id) for e in claims] == [(winner, case.id)]

    # fetch() callers get JSON for the conflict.
    loser = b if winner == "aysel.operator" else a
    resp, body = await loser.post(path, headers={"Accept": "application/json"})
    assert resp.status == 409 and json.loads(body)["error"] == "conflict"


# --- case page: who may see it ----------------------------------------------------------------


async def test_case_page_roles_and_every_read_audited(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    other = await team.login("kamran.operator", "operator")
    supervisor = await team.login("gunel.supervisor", "supervisor")
    admin = await team.login("tural.admin", "admin")
    case = await new_case(console)
    waiting = await new_case(console, "tg:dd44")

    resp, body = await holder.post(f"/console/cases/{case.id}/claim")
    assert resp.status == 303 and resp.headers["Location"] == f"/console/cases/{case.id}"
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert resp.status == 200 and SECRET_WORDS in body and case.code in body
    assert "documents_taken" in body and 'src="/console/static/case.js"' in body

    for browser, path in [
        (other, f"/console/cases/{case.id}"),  # someone else's case
        (other, f"/console/cases/{waiting.id}"),  # a waiting case by URL
        (holder, f"/console/cases/{waiting.id}"),
        (admin, f"/console/cases/{case.id}"),  # admins see no transcripts
        (other, f"/console/cases/{case.id}/stream"),
        (admin, f"/console/cases/{case.id}/stream"),
    ]:
        resp, body = await browser.get(path)
        assert resp.status == 403, path
        assert SECRET_WORDS not in body

    resp, body = await supervisor.get(f"/console/cases/{case.id}")
    assert resp.status == 200 and SECRET_WORDS in body
    resp, body = await supervisor.get(f"/console/cases/{waiting.id}")
    assert resp.status == 200

    reads = await audit_rows(console, "read")
    assert [(e.actor, e.case_id, e.detail) for e in reads] == [
        ("leyla.operator", case.id, {"page": "case"}),
        ("gunel.supervisor", case.id, {"page": "case"}),
        ("gunel.supervisor", waiting.id, {"page": "case"}),
    ]


async def test_screening_answers_are_shown(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    async with console.sessions() as db, db.begin():
        db.add(Screening(user_key="tg:aa11", answers={"documents_taken": True, "debt": False},
                         score=1, risk="high", completed=True))  # fmt: skip
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert resp.status == 200
    assert "documents taken" in body and "yes" in body and "debt" in body and "high" in body


async def test_person_message_with_markup_shows_as_text(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    await store(console).add_message(case.id, "tg:aa11", "person", XSS)
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert resp.status == 200
    assert XSS not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


# --- forms ------------------------------------------------------------------------------------


async def test_reply_needs_csrf_and_shows_failed_without_telegram(
    console: Console, team: Team
) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    path = f"/console/cases/{case.id}/reply"

    resp, _ = await holder.post(path, {"text": "Hello, I am here."}, csrf=False)
    assert resp.status == 403
    lines = await store(console).transcript(case.id)
    assert [m.author for m in lines] == ["person", "bot"]

    resp, _ = await holder.post(path, {"text": "   "})
    assert resp.status == 400
    resp, _ = await holder.post(path, {"text": "x" * 4001})
    assert resp.status == 400

    resp, _ = await holder.post(path, {"text": "Hello, I am here."})
    assert resp.status == 303
    reply = (await store(console).transcript(case.id))[-1]
    assert (reply.author, reply.text, reply.delivery) == ("operator", "Hello, I am here.", "failed")
    assert reply.operator_id == team.ids["leyla.operator"]
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert "delivery-failed" in body and "failed — not delivered" in body

    [event] = await audit_rows(console, "reply")
    assert event.detail == {"chars": len("Hello, I am here."), "delivery_status": "failed"}
    assert "Hello" not in json.dumps(event.detail)

    # A supervisor who does not hold the case cannot reply in the holder's name.
    supervisor = await team.login("gunel.supervisor", "supervisor")
    await supervisor.get(f"/console/cases/{case.id}")
    resp, _ = await supervisor.post(path, {"text": "From the supervisor"})
    assert resp.status == 403


async def test_internal_note_is_stored_not_sent(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    resp, _ = await holder.post(f"/console/cases/{case.id}/note", {"text": "Call back at 6"})
    assert resp.status == 303
    note = (await store(console).transcript(case.id))[-1]
    assert (note.author, note.text, note.delivery) == ("note", "Call back at 6", None)
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert "line-note" in body and "Internal note" in body
    [event] = await audit_rows(console, "note")
    assert event.detail == {"chars": len("Call back at 6")}


async def test_close_requires_an_outcome(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    path = f"/console/cases/{case.id}/close"
    for form in ({}, {"outcome": ""}, {"outcome": "made_up"}):
        resp, body = await holder.post(path, form)
        assert resp.status == 400 and "Choose an outcome" in body
    assert (await store(console).get(case.id)).status == "assigned"

    resp, _ = await holder.post(path, {"outcome": "referred_shelter"})
    assert resp.status == 303 and resp.headers["Location"] == "/console/queue"
    closed = await store(console).get(case.id)
    assert (closed.status, closed.outcome) == ("closed", "referred_shelter")
    [event] = await audit_rows(console, "close")
    assert (event.actor, event.case_id, event.detail) == (
        "leyla.operator", case.id, {"outcome_code": "referred_shelter"},
    )  # fmt: skip
    resp, _ = await holder.get(f"/console/cases/{case.id}")
    assert resp.status == 403  # no longer held


async def test_transfer_moves_the_case(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    colleague = await team.login("kamran.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert "kamran.operator" in body
    resp, _ = await holder.post(
        f"/console/cases/{case.id}/transfer", {"to_user_id": team.ids["kamran.operator"]}
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/queue"
    assert (await store(console).get(case.id)).assigned_to == team.ids["kamran.operator"]
    assert (await holder.get(f"/console/cases/{case.id}"))[0].status == 403
    assert (await colleague.get(f"/console/cases/{case.id}"))[0].status == 200
    [event] = await audit_rows(console, "transfer")
    assert event.detail == {"to_user_id": team.ids["kamran.operator"]}


async def test_legal_hold_by_supervisors_only(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    supervisor = await team.login("gunel.supervisor", "supervisor")
    case = await claimed_case(console, team, "leyla.operator")
    path = f"/console/cases/{case.id}/hold"
    resp, _ = await holder.post(path, {"hold": "on"})
    assert resp.status == 403
    assert not (await store(console).get(case.id)).legal_hold

    await supervisor.get(f"/console/cases/{case.id}")
    resp, _ = await supervisor.post(path, {"hold": "on"})
    assert resp.status == 303
    assert (await store(console).get(case.id)).legal_hold
    resp, _ = await supervisor.post(path, {"hold": "off"})
    assert not (await store(console).get(case.id)).legal_hold
    holds = await audit_rows(console, "hold")
    assert [(e.actor, e.detail) for e in holds] == [
        ("gunel.supervisor", {"legal_hold": True}),
        ("gunel.supervisor", {"legal_hold": False}),
    ]


def test_canned_replies_have_the_same_keys_in_every_language() -> None:
    responses = load_responses(ROOT / "responses")
    keys = {lang: {k for k in texts if k.startswith("text_canned_")} for lang, texts in
            responses.items()}  # fmt: skip
    assert keys["en"] and keys["az"] == keys["ru"] == keys["en"]


async def test_case_page_offers_canned_replies_in_three_languages(
    console: Console, team: Team
) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    _, body = await holder.get(f"/console/cases/{case.id}")
    assert 'id="canned"' in body
    for lang in ("az", "ru", "en"):
        assert f'<optgroup label="{lang}">' in body
    assert body.index('label="ru"') < body.index('label="az"')  # the case's language first


# --- live case page and erasure ---------------------------------------------------------------


async def test_case_stream_appends_lines_and_delivery(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    response, events = await stream(holder, f"/console/cases/{case.id}/stream")
    try:
        facts = await events.until("case")
        assert facts["code"] == case.code and facts["status"] == "assigned"
        first = await events.until("line")
        assert first["text"] == SECRET_WORDS and first["author"] == "person"
        await events.until("line")  # the bot's line

        await store(console).add_message(case.id, "tg:aa11", "person", XSS)
        line = await events.until("line", timeout=3)
        assert line["text"] == XSS  # the page writes it with textContent

        row = await store(console).add_message(
            case.id, "tg:aa11", "operator", "On my way", operator_id=1, delivery="pending"
        )
        line = await events.until("line", timeout=3)
        assert (line["id"], line["delivery"]) == (row.id, "pending")
        # Another replica marks it delivered: seen by the periodic check.
        async with console.sessions() as db, db.begin():
            await db.execute(
                update(CaseMessage).where(CaseMessage.id == row.id).values(delivery="delivered")
            )
        change = await events.until("delivery", timeout=3.5)
        assert (change["id"], change["delivery"]) == (row.id, "delivered")
    finally:
        response.close()


async def test_erased_case_says_so_on_page_and_stream(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    case = await claimed_case(console, team, "leyla.operator")
    response, events = await stream(holder, f"/console/cases/{case.id}/stream")
    try:
        await events.until("case")
        await store(console).erase_person("tg:aa11")  # the person sent /forget
        erased = await events.until("erased", timeout=3)
        assert "erased at the person's request" in erased["message"]
    finally:
        response.close()
    resp, body = await holder.get(f"/console/cases/{case.id}")
    assert resp.status == 410 and "This conversation was erased at the person&#39;s request" in body
    assert SECRET_WORDS not in body
    response, events = await stream(holder, f"/console/cases/{case.id}/stream")
    try:
        assert (await events.next())[0] == "erased"
    finally:
        response.close()


# --- dashboard --------------------------------------------------------------------------------


async def test_dashboard_draws_the_figures(console: Console, team: Team) -> None:
    supervisor = await team.login("gunel.supervisor", "supervisor")
    operator = await team.login("leyla.operator", "operator")
    admin = await team.login("tural.admin", "admin")
    cases = store(console)
    now = dt.datetime.now(dt.UTC)
    made = []
    for i, lang in enumerate(["ru", "ru", "ru", "az", "en"]):
        made.append(await cases.open_case(f"tg:d{i}", "human_handoff", "normal", lang))
    # Two closed with an outcome; replies after 4 and 8 minutes today.
    async with console.sessions() as db, db.begin():
        for case, minutes in [(made[0], 4), (made[1], 8)]:
            await db.execute(
                update(Escalation)
                .where(Escalation.id == case.id)
                .values(
                    status="closed",
                    outcome="referred_legal_aid",
                    created_at=now,
                    first_reply_at=now + dt.timedelta(minutes=minutes),
                    closed_at=now,
                )  # fmt: skip
            )
        await db.execute(
            update(Escalation).where(Escalation.id == made[2].id)
            .values(created_at=now - dt.timedelta(minutes=95))
        )  # fmt: skip

    resp, body = await supervisor.get("/console/dashboard")
    assert resp.status == 200
    assert body.count("<svg") == 3 and "<script" not in body.split("</header>")[1]
    assert '<span class="kpi-value" id="kpi-waiting">3</span>' in body
    assert '<span class="kpi-value" id="kpi-longest">1 h 35 min</span>' in body
    assert "Russian (ru): 3" in body and "Referred to legal aid: 2" in body
    assert "Still open: 3" in body
    # median of 4 and 8 minutes = 6; p90 (nearest rank) = 8
    assert f"median {now.date().isoformat()}: 6 min" in body
    assert f"p90 {now.date().isoformat()}: 8 min" in body

    [event] = await audit_rows(console, "read")
    assert (event.actor, event.case_id, event.detail) == (
        "gunel.supervisor", None, {"page": "dashboard"},
    )  # fmt: skip
    assert (await operator.get("/console/dashboard"))[0].status == 403
    assert (await admin.get("/console/dashboard"))[0].status == 403


def test_charts_escape_labels() -> None:
    from bot.console.charts import bar_chart, line_chart

    svg = str(bar_chart([(XSS, 2)], "t<b>"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "t&lt;b&gt;" in svg
    assert str(line_chart([], [], "x", "min")).startswith("<p")


async def test_supervisor_pulls_a_closed_chat_back_in(console: Console, team: Team) -> None:
    holder = await team.login("leyla.operator", "operator")
    supervisor = await team.login("gunel.supervisor", "supervisor")
    case = await claimed_case(console, team, "leyla.operator")
    await store(console).close(case.id, "information_given")
    path = f"/console/cases/{case.id}/pull"
    resp, _ = await holder.post(path)
    assert resp.status == 403  # operators cannot pull chats in
    await supervisor.get(f"/console/cases/{case.id}")
    resp, _ = await supervisor.post(path)
    assert resp.status == 303
    new = await store(console).open_case_of(case.user_key)
    assert new is not None and new.id != case.id and new.status == "assigned"
    assert resp.headers["Location"] == f"/console/cases/{new.id}"
    assert [e.detail for e in await audit_rows(console, "claim")][-1] == {"pulled_from": case.id}
