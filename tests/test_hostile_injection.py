"""SQL and HTML injection: in a person's messages (through the emulator, PTB, the engine and a
case transcript) and in every console field that reaches a query or a page — on SQLite and
PostgreSQL. What must hold: the text is data, never code (tables intact, stored verbatim),
replies are well-formed Telegram HTML with our text escaped, pages show it escaped, and no
field gives a 500. Everyone here is made up.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import markupsafe
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import func, inspect, select

from bot.console.routes import WRONG_LOGIN
from bot.devtools.emulator import EmulatorClient, running_emulator
from bot.server import DB
from bot.storage.cases import CaseStore
from bot.storage.db import make_sessionmaker
from bot.storage.models import CaseMessage, ConsoleUser, Escalation, TelegramChat
from tests.console_helpers import PASSWORD, Browser, Console, enrolled_user, running_console
from tests.db import fresh_database
from tests.telegram_helpers import last_seq, new_user_id, say, webhook_service

SQL = [
    "'; DROP TABLE tg_chats;--",
    "1' OR '1'='1",
    '"; DELETE FROM escalations; --',
    "Robert'); DROP TABLE case_messages;--",
    "' UNION SELECT token_hash, csrf_token FROM console_sessions --",
    "\\'; TRUNCATE audit_log; --",
]
MARKUP = [
    "<script>alert(1)</script>",
    "<b>bold?</b> <i>x</i> <a href='javascript:alert(1)'>link</a>",
    "<img src=x onerror=alert(1)>",
    "&lt;already escaped&gt; &amp; & < >",
    "</textarea><svg onload=alert(1)>",
    "{{ 7*7 }} {% raw %} ${7*7}",
]
HOSTILE = SQL + MARKUP


async def table_names(sessions) -> set[str]:
    async with sessions() as db:
        conn = await db.connection()
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


def shows_escaped(body: str, text: str) -> bool:
    """``text`` appears on the page as escaped text (Jinja2 escapes quotes as &#39;; the
    page's own scripts put text in with textContent)."""
    return str(markupsafe.escape(text)) in body or html.escape(text, quote=False) in body


def no_live_markup(body: str) -> bool:
    lowered = body.lower()
    return not any(
        tag in lowered for tag in ("<script>alert", "<img src=x", "<svg onload", "<b>bold?")
    )


# --- in a person's messages (real engine) ---------------------------------------------------


@dataclass
class Service:
    kind: str
    base: str
    app: web.Application
    client: EmulatorClient

    @property
    def sessions(self):
        return make_sessionmaker(self.app[DB])


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def service(request, stack, tmp_path: Path) -> AsyncIterator[Service]:
    """A webhook-mode bot service (console included) on a fresh database of each kind."""
    url = await fresh_database(request.param, tmp_path)
    async with (
        running_emulator() as emu,
        webhook_service(stack.settings, emu.url, database_url=url) as (hook, app),
    ):
        yield Service(request.param, hook.split("/telegram/")[0], app, emu.client)


@pytest.mark.engine
async def test_sql_and_html_in_messages_are_plain_text_in_tables_replies_and_the_console(
    service: Service,
) -> None:
    sessions = service.sessions
    tables = await table_names(sessions)
    user = new_user_id()
    await say(service.client, user, "/operator")  # a case waits: the turns go to its transcript
    for text in HOSTILE:
        replies = await say(service.client, user, text, quiet=0.3)
        assert replies, f"no answer to {text!r}"

    # Tables intact, the texts stored verbatim (parameters, never spliced into SQL).
    assert await table_names(sessions) == tables
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(TelegramChat)) >= 1
        case = await db.scalar(select(Escalation).where(Escalation.status == "queued"))
        assert case is not None
        stored = (
            await db.scalars(
                select(CaseMessage.text).where(
                    CaseMessage.case_id == case.id, CaseMessage.author == "person"
                )
            )
        ).all()
    assert [t for t in stored if t in HOSTILE] == HOSTILE

    # Every reply went out in HTML parse mode with nothing but escaped text (Telegram refuses
    # a stray '<'; the emulator parses strictly like Telegram), none as a plain-text fallback.
    sent = [c for c in await service.client.calls("sendMessage") if _chat(c) == user]
    assert sent and all(c["ok"] and c["params"].get("parse_mode") == "HTML" for c in sent), sent
    assert all("<" not in c["params"]["text"] for c in sent)

    # The console shows the person's texts as text, and an operator's reply with markup reaches
    # the person literally.
    secret = await enrolled_user(sessions, "sabina.supervisor", "supervisor")
    browser = Browser(service.base)
    try:
        await browser.login("sabina.supervisor", secret)
        resp, body = await browser.get(f"/console/cases/{case.id}")
        assert resp.status == 200
        assert all(shows_escaped(body, t) for t in HOSTILE)
        assert no_live_markup(body)
        resp, _ = await browser.post(f"/console/cases/{case.id}/claim")
        assert resp.status == 303
        after = await last_seq(service.client, user)
        reply = "<b>not bold</b> & '; DROP TABLE tg_chats;--"
        resp, _ = await browser.post(f"/console/cases/{case.id}/reply", {"text": reply})
        assert resp.status == 303
        [out] = await service.client.wait_for(user, count=1, after=after, timeout=10)
        assert reply in out["plain_text"] and not out.get("entities")
        resp, body = await browser.get(f"/console/cases/{case.id}")
        assert shows_escaped(body, reply) and "<b>not bold</b>" not in body
    finally:
        await browser.close()
    assert await table_names(sessions) == tables


def _chat(call: dict) -> int | None:
    try:
        return int(call["params"].get("chat_id"))
    except (TypeError, ValueError):
        return None


@pytest.mark.engine
@pytest.mark.parametrize("last", ["²", "٣", "-1", "1e9", "99999999999999999999999", "' OR 1=1"])
async def test_metrics_window_parameter_never_gives_a_500(stack, last: str) -> None:
    """``/metrics?last=`` is the one query parameter outside the console: '²' is a digit to
    str.isdigit() but not to int(), which once turned it into a 500."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(stack.bot_url + "/metrics", params={"last": last}) as resp,
    ):
        body = await resp.text()
    assert resp.status == 200 and "ctip_engine_turn_seconds" in body


# --- in console fields (HTTP, no engine) ----------------------------------------------------


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def console(request, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(request.param, tmp_path) as (console, _):
        yield console


async def test_sql_and_html_in_login_fields_are_refused_as_wrong_logins(console: Console) -> None:
    await enrolled_user(console.sessions, "aynur.admin", "admin")
    tables = await table_names(console.sessions)
    for text in HOSTILE + ["aynur.admin' --", "aynur.admin'/*", "' OR 1=1 LIMIT 1 --"]:
        browser = console.browser()  # a fresh one each time: throttling is per username
        for username, password in [(text, PASSWORD), ("aynur.admin", text), (text, text)]:
            resp, body = await browser.password_step(username, password)
            assert resp.status in (401, 429), (username, password, resp.status)
            assert browser.cookie() is None  # no session
            assert resp.status == 429 or WRONG_LOGIN in body
            assert no_live_markup(body)
        await browser.close()
    assert await table_names(console.sessions) == tables
    async with console.sessions() as db:
        assert await db.scalar(select(func.count()).select_from(ConsoleUser)) == 1


async def test_sql_and_html_in_console_forms_and_parameters_give_no_500_and_show_escaped(
    console: Console,
) -> None:
    """Usernames, notes, transfer targets, outcomes, the hold switch, the audit filter and the
    case and account ids in paths and forms, each with SQL and markup."""
    sessions = console.sessions
    tables = await table_names(sessions)
    admin = console.browser()
    supervisor = console.browser()
    await admin.login("orkhan.admin", await enrolled_user(sessions, "orkhan.admin", "admin"))
    await supervisor.login(
        "gunel.supervisor", await enrolled_user(sessions, "gunel.supervisor", "supervisor")
    )
    store = CaseStore(sessions)
    case = await store.open_case("u_" + "ab" * 16, "operator_command", "high", "en")
    try:
        # Account names: refused by the policy, shown back escaped.
        for text in HOSTILE:
            resp, body = await admin.post(
                "/console/admin/users", {"action": "create", "username": text, "role": "operator"}
            )
            assert resp.status == 400, text
            assert no_live_markup(body) and (shows_escaped(body, text) or text not in body)
        for role in ["admin' OR '1'='1", "<script>alert(1)</script>", "operator; DROP"]:
            resp, body = await admin.post(
                "/console/admin/users", {"action": "create", "username": "new.one", "role": role}
            )
            assert resp.status == 400 and no_live_markup(body)
        # Account ids: junk, SQL, and an integer past 64 bits.
        for user_id in ["1 OR 1=1", "1; DROP TABLE console_users", "", "-1",
                        "99999999999999999999999", "²"]:  # fmt: skip
            for action in ("deactivate", "reset_totp"):
                resp, body = await admin.post(
                    "/console/admin/users", {"action": action, "user_id": user_id}
                )
                assert resp.status == 400, (action, user_id, resp.status)

        # Notes: stored verbatim, shown escaped.
        for text in HOSTILE:
            resp, _ = await supervisor.post(f"/console/cases/{case.id}/note", {"text": text})
            assert resp.status == 303, text
        resp, body = await supervisor.get(f"/console/cases/{case.id}")
        assert resp.status == 200 and no_live_markup(body)
        assert all(shows_escaped(body, t) for t in HOSTILE)
        notes = [m.text for m in await store.transcript(case.id) if m.author == "note"]
        assert notes == HOSTILE

        # Transfer targets, outcomes, the hold switch.
        for target in ["1 OR 1=1", "' OR '1'='1", "99999999999999999999999", "<b>1</b>", ""]:
            resp, body = await supervisor.post(
                f"/console/cases/{case.id}/transfer", {"to_user_id": target}
            )
            assert resp.status == 400 and no_live_markup(body), target
        for outcome in ["referred_shelter' --", "<script>alert(1)</script>", "' OR 1=1 --"]:
            resp, body = await supervisor.post(
                f"/console/cases/{case.id}/close", {"outcome": outcome}
            )
            assert resp.status == 400 and no_live_markup(body), outcome
        for value in ["on' --", "<b>on</b>", "1 OR 1=1"]:
            resp, _ = await supervisor.post(f"/console/cases/{case.id}/hold", {"hold": value})
            assert resp.status == 303
        assert (await store.get(case.id)).status == "queued"

        # Query parameters and ids in paths.
        for action in HOSTILE + ["login' OR '1'='1"]:
            resp, body = await supervisor.get("/console/audit", params={"action": action})
            assert resp.status == 200 and no_live_markup(body), action
        for path in [
            "/console/cases/99999999999999999999999",
            "/console/cases/99999999999999999999999/stream",
            "/console/cases/0",
        ]:
            resp, _ = await supervisor.get(path)
            assert resp.status in (404, 410), (path, resp.status)
        for path in [
            "/console/cases/99999999999999999999999/claim",
            "/console/cases/99999999999999999999999/note",
            "/console/cases/99999999999999999999999/close",
        ]:
            resp, _ = await supervisor.post(path, {"text": "x", "outcome": "other"})
            assert resp.status in (404, 410), (path, resp.status)
        for path in ["/console/cases/1%20OR%201=1", "/console/cases/1;DROP", "/console/cases/-1"]:
            resp, _ = await supervisor.get(path)
            assert resp.status == 404, path
    finally:
        await admin.close()
        await supervisor.close()
    assert await table_names(sessions) == tables
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(ConsoleUser)) == 2
        assert await db.scalar(select(func.count()).select_from(Escalation)) == 1
