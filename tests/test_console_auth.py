"""Console security over real HTTP: login with password + TOTP, sessions, CSRF, throttling,
roles, audit log, escaping, headers — on SQLite and (with TEST_POSTGRES_URL) PostgreSQL.

Everyone here is made up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pyotp
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import async_sessionmaker
from yarl import URL

from bot.config import ROOT, Settings
from bot.console import accounts, audit
from bot.console.config import ConsoleConfig
from bot.console.routes import WRONG_CODE, WRONG_LOGIN
from bot.console.security import CSP
from bot.console.sessions import COOKIE, set_cookie
from bot.console.throttle import MESSAGE as THROTTLED
from bot.server import start_site
from bot.stack import free_port
from bot.storage.models import AuditEvent, ConsoleSession, ConsoleUser
from tests.console_helpers import PASSWORD, Browser, Console, enrolled_user, running_console


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def console(request, tmp_path: Path) -> AsyncIterator[Console]:
    async with running_console(request.param, tmp_path) as (console, _):
        yield console


@pytest_asyncio.fixture
async def browser(console: Console) -> AsyncIterator[Browser]:
    b = console.browser()
    yield b
    await b.close()


async def audit_actions(sessions: async_sessionmaker) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in reversed(await audit.recent(sessions, 500))]


# --- login ------------------------------------------------------------------------------------


async def test_first_login_enrols_totp_then_logs_in(console: Console, browser: Browser) -> None:
    await accounts.create_user(console.sessions, "leyla.admin", "admin", PASSWORD)
    resp, _ = await browser.get("/console/")
    assert resp.status == 302 and resp.headers["Location"] == "/console/login"

    resp, _ = await browser.password_step("Leyla.Admin")  # usernames are case-insensitive
    assert resp.status == 303 and resp.headers["Location"] == "/console/totp"
    # Half logged in: no page but the TOTP step.
    resp, _ = await browser.get("/console/admin/users")
    assert resp.status == 302 and resp.headers["Location"] == "/console/totp"

    resp, body = await browser.get("/console/totp")
    assert resp.status == 200 and "Set up your authenticator" in body
    assert 'src="data:image/svg+xml' in body
    secret = re.search(r"<code>([A-Z2-7 ]+)</code>", body).group(1).replace(" ", "")
    async with console.sessions() as db:
        user = await accounts.find_user(db, "leyla.admin")
    assert user.totp_secret == secret and not accounts.is_enrolled(user)
    uri = accounts.provisioning_uri(user)
    assert (
        uri.startswith("otpauth://totp/ctip-assistant:leyla.admin?")
        and "issuer=ctip-assistant" in uri
    )

    resp, body = await browser.post("/console/totp", {"code": "000000"})
    assert resp.status == 401 and "Set up your authenticator" in body
    resp, _ = await browser.post("/console/totp", {"code": pyotp.TOTP(secret).now()})
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    resp, _ = await browser.get("/console/")
    assert resp.status == 302 and resp.headers["Location"] == "/console/admin/users"
    resp, body = await browser.get("/console/admin/users")
    assert resp.status == 200 and "leyla.admin" in body and "admin" in body
    assert 'action="/console/logout"' in body and browser.csrf in body

    async with console.sessions() as db:
        user = await accounts.find_user(db, "leyla.admin")
    assert accounts.is_enrolled(user) and user.last_login_at is not None
    assert await audit_actions(console.sessions) == [
        ("system", "user_created"),
        ("leyla.admin", "login_failed"),
        ("leyla.admin", "totp_enrolled"),
        ("leyla.admin", "login"),
    ]

    resp, _ = await browser.post("/console/logout")
    assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    resp, _ = await browser.get("/console/admin/users")
    assert resp.status == 302 and resp.headers["Location"] == "/console/login"
    async with console.sessions() as db:
        assert await db.scalar(select(func.count()).select_from(ConsoleSession)) == 0
    assert (await audit_actions(console.sessions))[-1] == ("leyla.admin", "logout")


async def test_wrong_password(console: Console, browser: Browser) -> None:
    await enrolled_user(console.sessions, "rauf.operator", "operator")
    resp, body = await browser.password_step("rauf.operator", "Wrong-password-1")
    assert resp.status == 401 and WRONG_LOGIN in body
    assert browser.cookie() is None
    resp, body2 = await browser.password_step("nobody.here", "Wrong-password-1")
    assert resp.status == 401 and WRONG_LOGIN in body2
    events = await audit.recent(console.sessions, 10, action="login_failed")
    assert [(e.actor, e.detail) for e in events] == [
        ("nobody.here", {"reason": "password"}),
        ("rauf.operator", {"reason": "password"}),
    ]


async def test_totp_code_cannot_be_reused(console: Console, browser: Browser) -> None:
    secret = await enrolled_user(console.sessions, "samir.operator", "operator")
    totp = pyotp.TOTP(secret)
    code = totp.now()
    await browser.login("samir.operator", secret, code)
    await browser.post("/console/logout")

    resp, _ = await browser.password_step("samir.operator")
    assert resp.status == 303
    await browser.get("/console/totp")
    resp, body = await browser.post("/console/totp", {"code": code})
    assert resp.status == 401 and WRONG_CODE in body
    # The next time step (still inside the ±1 window) is accepted once.
    resp, _ = await browser.post("/console/totp", {"code": totp.at(time.time() + 30)})
    assert resp.status == 303 and resp.headers["Location"] == "/console/"


def test_totp_window_is_one_step() -> None:
    user = ConsoleUser(
        username="x", role="operator", password_hash="", totp_secret=pyotp.random_base32()
    )
    user.totp_last_step = 0
    totp = pyotp.TOTP(user.totp_secret)
    now = dt.datetime.now(dt.UTC)
    assert not accounts.verify_totp(user, totp.at(now - dt.timedelta(seconds=61)), now)
    assert accounts.verify_totp(user, totp.at(now - dt.timedelta(seconds=30)), now)
    assert accounts.verify_totp(user, totp.at(now), now)
    assert not accounts.verify_totp(user, totp.at(now), now)  # used
    assert not accounts.verify_totp(user, "12345", now) and not accounts.verify_totp(
        user, "abcdef", now
    )


async def test_throttling_same_answer_for_known_and_unknown(console: Console) -> None:
    await enrolled_user(console.sessions, "nigar.supervisor", "supervisor")
    answers = []
    for username in ("nigar.supervisor", "ghost.user"):
        b = console.browser()
        for _ in range(5):
            resp, _ = await b.password_step(username, "Not-the-password-9")
            assert resp.status == 401
        # Now even the right password is refused, with the same message as for nobody.
        resp, body = await b.password_step(username, PASSWORD)
        assert resp.status == 429 and THROTTLED in body and b.cookie() is None
        answers.append(re.search(r'role="alert">([^<]*)<', body).group(1))
        await b.close()
    assert answers[0] == answers[1] == THROTTLED


async def test_throttling_by_address(console: Console, browser: Browser) -> None:
    await enrolled_user(console.sessions, "elvin.operator", "operator")
    for i in range(20):  # 4 tries each for 5 usernames: no username reaches its limit
        resp, _ = await browser.password_step(f"guess{i % 5}", "Not-the-password-9")
        assert resp.status == 401
    resp, body = await browser.password_step("elvin.operator", PASSWORD)
    assert resp.status == 429 and THROTTLED in body


async def test_totp_failures_are_throttled(console: Console, browser: Browser) -> None:
    secret = await enrolled_user(console.sessions, "kamala.operator", "operator")
    await browser.password_step("kamala.operator")
    await browser.get("/console/totp")
    for _ in range(5):
        resp, _ = await browser.post("/console/totp", {"code": "000000"})
        assert resp.status == 401
    resp, body = await browser.post("/console/totp", {"code": pyotp.TOTP(secret).now()})
    assert resp.status == 429 and THROTTLED in body


# --- sessions ---------------------------------------------------------------------------------


async def test_cookie_attributes_and_new_token_at_each_step(
    console: Console, browser: Browser
) -> None:
    secret = await enrolled_user(console.sessions, "tural.operator", "operator")
    browser.jar.update_cookies({COOKIE: "planted-by-someone-else"}, URL(console.base + "/console/"))
    await browser.get("/console/login")
    async with browser.http.post(
        console.base + "/console/login",
        data={"username": "tural.operator", "password": PASSWORD, "csrf_token": browser.csrf},
        allow_redirects=False,
    ) as resp:
        header = next(h for h in resp.headers.getall("Set-Cookie") if h.startswith(COOKIE + "="))
    attrs = [a.strip().lower() for a in header.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/console" in attrs
    assert "secure" not in attrs  # plain HTTP, no proxy: a Secure cookie would not come back
    first = browser.cookie()
    assert first and first != "planted-by-someone-else"

    await browser.get("/console/totp")
    await browser.post("/console/totp", {"code": pyotp.TOTP(secret).now()})
    second = browser.cookie()
    assert second and second != first
    async with console.sessions() as db:
        rows = (await db.scalars(select(ConsoleSession))).all()
    # Only the hash of the current token is stored; the half-way session is gone.
    assert [(r.token_hash, r.second_factor) for r in rows] == [
        (hashlib.sha256(second.encode()).hexdigest(), True)
    ]
    resp, _ = await browser.get("/console/")
    # The queue exists (bot.console.queue): operators and supervisors land there.
    assert resp.status == 302 and resp.headers["Location"] == "/console/queue"


def test_secure_cookie_over_https_or_when_forced() -> None:
    def cookie(config: ConsoleConfig, headers: dict[str, str]) -> bool:
        response = web.Response()
        set_cookie(response, make_mocked_request("GET", "/console/", headers=headers), config, "t")
        return bool(response.cookies[COOKIE]["secure"])

    https = {"X-Forwarded-Proto": "https"}
    assert not cookie(ConsoleConfig(), {})
    assert not cookie(ConsoleConfig(), https)  # the header is ignored unless the proxy is trusted
    assert cookie(ConsoleConfig(trust_proxy=True), https)
    assert cookie(ConsoleConfig(secure_cookies=True), {})


async def test_idle_and_absolute_timeouts(console: Console, browser: Browser) -> None:
    secret = await enrolled_user(console.sessions, "aysel.supervisor", "supervisor")
    await browser.login("aysel.supervisor", secret)
    assert (await browser.get("/console/audit"))[0].status == 200
    now = dt.datetime.now(dt.UTC)
    async with console.sessions() as db, db.begin():
        await db.execute(update(ConsoleSession).values(last_seen_at=now - dt.timedelta(minutes=16)))
    resp, _ = await browser.get("/console/audit")
    assert resp.status == 302 and resp.headers["Location"] == "/console/login"
    async with console.sessions() as db:
        assert await db.scalar(select(func.count()).select_from(ConsoleSession)) == 0

    await browser.login("aysel.supervisor", secret, pyotp.TOTP(secret).at(time.time() + 30))
    async with console.sessions() as db, db.begin():
        await db.execute(
            update(ConsoleSession).values(created_at=now - dt.timedelta(hours=8, minutes=1))
        )
    resp, _ = await browser.get("/console/audit")
    assert resp.status == 302 and resp.headers["Location"] == "/console/login"


# --- CSRF, roles ------------------------------------------------------------------------------


async def count_users(sessions: async_sessionmaker) -> int:
    async with sessions() as db:
        return await db.scalar(select(func.count()).select_from(ConsoleUser))


async def test_csrf_and_origin(console: Console, browser: Browser) -> None:
    secret = await enrolled_user(console.sessions, "farid.admin", "admin")
    await browser.login("farid.admin", secret)
    new = {"action": "create", "username": "zaur.operator", "role": "operator"}

    resp, body = await browser.post("/console/admin/users", new, csrf=False)
    assert resp.status == 403 and "reload the page" in body
    resp, _ = await browser.post(
        "/console/admin/users", {**new, "csrf_token": "forged"}, csrf=False
    )
    assert resp.status == 403
    resp, _ = await browser.post(
        "/console/admin/users", new, headers={"Origin": "https://evil.example"}
    )
    assert resp.status == 403
    assert await count_users(console.sessions) == 1
    resp, _ = await browser.post("/console/logout", csrf=False)  # logout is a POST too
    assert resp.status == 403
    assert (await browser.get("/console/admin/users"))[0].status == 200  # still logged in

    token = browser.csrf
    resp, body = await browser.post(
        "/console/admin/users", new, csrf=False, headers={"X-CSRF-Token": token}
    )
    assert resp.status == 200 and "zaur.operator" in body
    resp, body = await browser.post(
        "/console/admin/users",
        {**new, "username": "gunel.operator"},
        headers={"Origin": console.base},
    )
    assert resp.status == 200 and "gunel.operator" in body
    assert await count_users(console.sessions) == 3
    # The login form is protected too (double-submit cookie): no token, no login.
    fresh = console.browser()
    async with fresh.http.post(
        console.base + "/console/login",
        data={"username": "farid.admin", "password": PASSWORD},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 403
    await fresh.close()


async def test_role_boundaries(console: Console) -> None:
    people = {
        role: (name, await enrolled_user(console.sessions, name, role))
        for role, name in [
            ("operator", "murad.operator"),
            ("supervisor", "sabina.supervisor"),
            ("admin", "orkhan.admin"),
        ]
    }
    expected = {
        "operator": {
            "/console/admin/users": 403,
            "/console/audit": 403,
            "/console/admin/knowledge": 403,
        },
        "supervisor": {
            "/console/admin/users": 403,
            "/console/audit": 200,
            "/console/admin/knowledge": 403,
        },
        "admin": {
            "/console/admin/users": 200,
            "/console/audit": 200,
            "/console/admin/knowledge": 200,
        },
    }
    for role, (name, secret) in people.items():
        b = console.browser()
        await b.login(name, secret)
        for path, status in expected[role].items():
            resp, body = await b.get(path)
            assert resp.status == status, (role, path)
            if status == 403:
                assert "Not allowed" in body and "Accounts" not in body
        resp, _ = await b.post(
            "/console/admin/users",
            {"action": "create", "username": f"new.by.{role}", "role": "admin"},
        )
        assert resp.status == (200 if role == "admin" else 403)
        await b.close()
    assert await count_users(console.sessions) == 4

    anonymous = console.browser()
    resp, _ = await anonymous.get("/console/audit")
    assert resp.status == 302 and resp.headers["Location"] == "/console/login"
    await anonymous.get("/console/login")  # a valid (login) CSRF token, but no session
    resp, _ = await anonymous.post("/console/admin/users", {"action": "create"})
    assert resp.status == 401
    await anonymous.close()


async def admin_and_operator(console: Console) -> tuple[Browser, Browser, ConsoleUser, str]:
    """An admin and an operator, both logged in; the operator's account and TOTP secret."""
    admin_secret = await enrolled_user(console.sessions, "ilham.admin", "admin")
    op_secret = await enrolled_user(console.sessions, "sevda.operator", "operator")
    admin, operator = console.browser(), console.browser()
    await admin.login("ilham.admin", admin_secret)
    await operator.login("sevda.operator", op_secret)
    async with console.sessions() as db:
        op = await accounts.find_user(db, "sevda.operator")
    assert op is not None
    return admin, operator, op, op_secret


async def test_admin_deactivates_and_resets_totp(console: Console) -> None:
    admin, operator, op, _ = await admin_and_operator(console)

    resp, body = await admin.post(
        "/console/admin/users", {"action": "reset_totp", "user_id": op.id}
    )
    assert resp.status == 200 and "new authenticator" in body
    resp, _ = await operator.get("/console/")
    assert resp.status == 302  # the reset ended the operator's session
    await operator.password_step("sevda.operator")
    resp, body = await operator.get("/console/totp")
    assert "Set up your authenticator" in body

    resp, body = await admin.post(
        "/console/admin/users", {"action": "deactivate", "user_id": op.id}
    )
    assert resp.status == 200 and "deactivated" in body
    resp, body = await operator.password_step("sevda.operator")
    assert resp.status == 401 and WRONG_LOGIN in body
    async with console.sessions() as db:
        me = await accounts.find_user(db, "ilham.admin")
    resp, body = await admin.post(
        "/console/admin/users", {"action": "deactivate", "user_id": me.id}
    )
    assert resp.status == 400 and "your own account" in body
    actions = [a for _, a in await audit_actions(console.sessions)]
    assert "totp_reset" in actions and "user_deactivated" in actions
    await admin.close()
    await operator.close()


NEW_PASSWORD = "Battery-Staple-77"  # made up


def next_code(secret: str) -> str:
    """The next step's code: this step's was used by the previous login of the account."""
    return pyotp.TOTP(secret).at(time.time() + 30)


async def test_user_changes_own_password(console: Console) -> None:
    secret = await enrolled_user(console.sessions, "nurlan.operator", "operator")
    laptop, phone = console.browser(), console.browser()
    await laptop.login("nurlan.operator", secret)
    await phone.login("nurlan.operator", secret, code=next_code(secret))
    resp, body = await laptop.get("/console/account")
    assert resp.status == 200 and 'name="current_password"' in body
    change = {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
              "repeat_password": NEW_PASSWORD}  # fmt: skip
    refusals = [
        ({"current_password": "Wrong-Horse-42"}, "current password is wrong"),
        ({"repeat_password": NEW_PASSWORD + "x"}, "differ"),
        ({"new_password": "short-1", "repeat_password": "short-1"}, "at least 12"),
        ({"new_password": "alllowercaseletters", "repeat_password": "alllowercaseletters"},
         "two kinds"),
        ({"new_password": PASSWORD, "repeat_password": PASSWORD}, "differ from the current"),
    ]  # fmt: skip
    for wrong, message in refusals:
        resp, body = await laptop.post("/console/account", {**change, **wrong})
        assert resp.status == 400 and message in body, (wrong, body[-500:])
    resp, _ = await phone.get("/console/")
    assert resp.status in (200, 302) and resp.headers.get("Location") != "/console/login"
    resp, _ = await laptop.post("/console/account", change)
    assert resp.status == 303 and resp.headers["Location"] == "/console/login?changed=1"
    resp, body = await laptop.get(resp.headers["Location"])
    assert "Your password is changed" in body
    resp, _ = await phone.get("/console/")  # every session of the account ended
    assert resp.status == 302 and resp.headers["Location"].startswith("/console/login")
    resp, body = await laptop.password_step("nurlan.operator")  # the old password
    assert resp.status == 401 and WRONG_LOGIN in body
    resp, _ = await laptop.password_step("nurlan.operator", NEW_PASSWORD)
    assert resp.status == 303 and resp.headers["Location"] == "/console/totp"
    resp, body = await laptop.get("/console/totp")
    assert "Set up your authenticator" not in body  # the authenticator stays
    assert ("nurlan.operator", "password_changed") in await audit_actions(console.sessions)
    await laptop.close()
    await phone.close()


async def test_guessing_the_current_password_is_throttled(console: Console) -> None:
    secret = await enrolled_user(console.sessions, "gunel.operator", "operator")
    b = console.browser()
    await b.login("gunel.operator", secret)
    guess = {"new_password": NEW_PASSWORD, "repeat_password": NEW_PASSWORD}
    statuses = []
    for i in range(12):
        resp, body = await b.post("/console/account", {**guess, "current_password": f"Guess-{i}-x"})
        statuses.append(resp.status)
    assert statuses[0] == 400 and statuses[-1] == 429 and THROTTLED in body
    resp, body = await b.post("/console/account", {**guess, "current_password": PASSWORD})
    assert resp.status == 429  # even the right one, until the window passes
    await b.close()


async def test_admin_resets_a_forgotten_password(console: Console) -> None:
    admin, operator, op, op_secret = await admin_and_operator(console)
    async with console.sessions() as db:
        me = await accounts.find_user(db, "ilham.admin")
    resp, body = await admin.get("/console/admin/users")
    assert 'value="reset_password"' in body
    resp, body = await admin.post(
        "/console/admin/users", {"action": "reset_password", "user_id": op.id}
    )
    assert resp.status == 200 and "is reset" in body
    assert "authenticator at their first login" not in body  # it is kept, not set up again
    one_time = re.search(r'<p class="secret"><code>([^<]+)</code>', body)
    assert one_time and one_time[1] != PASSWORD
    resp, _ = await operator.get("/console/")
    assert resp.status == 302  # the reset ended the operator's sessions
    resp, _ = await operator.password_step("sevda.operator")
    assert resp.status == 401
    await operator.login(
        "sevda.operator", op_secret, code=next_code(op_secret), password=one_time[1]
    )
    resp, body = await admin.post(
        "/console/admin/users", {"action": "reset_password", "user_id": me.id}
    )
    assert resp.status == 400 and "your account page" in body
    async with console.sessions() as db:
        stored = (await accounts.find_user(db, "sevda.operator")).password_hash
    assert one_time[1] not in stored  # only its argon2 hash is kept
    assert ("ilham.admin", "password_reset") in await audit_actions(console.sessions)
    await admin.close()
    await operator.close()


# --- audit, escaping, headers -----------------------------------------------------------------


async def test_audit_log_is_append_only(console: Console) -> None:
    event = await audit.record(console.sessions, "system", "purge", cases=3)
    for statement in ("UPDATE audit_log SET actor = 'someone'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            async with console.sessions() as db, db.begin():
                await db.execute(text(statement))
    async with console.sessions() as db:
        row = await db.get(AuditEvent, event.id)
    assert (row.actor, row.action, row.detail) == ("system", "purge", {"cases": 3})


def test_audit_refuses_message_text() -> None:
    for detail in (
        {"text": "help me"},
        {"message": "x"},
        {"reply_text": "x"},
        {"note": "x"},
        {"Body": "x"},
    ):
        with pytest.raises(ValueError, match="message text"):
            audit.validate("reply", detail)
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.validate("tea_break", {})
    with pytest.raises(ValueError, match="scalar"):
        audit.validate("export", {"rows": {"text": "nested"}})
    with pytest.raises(ValueError, match="too long"):
        audit.validate("export", {"format": "x" * 500})
    assert audit.validate("reply", {"message_id": 7, "note_count": 2, "delivery": "delivered"})


async def test_usernames_are_escaped(console: Console, browser: Browser) -> None:
    secret = await enrolled_user(console.sessions, "rena.admin", "admin")
    await browser.login("rena.admin", secret)
    evil = "<script>alert(1)</script>"
    resp, body = await browser.post(
        "/console/admin/users", {"action": "create", "username": evil, "role": "operator"}
    )
    assert resp.status == 400 and "A username is" in body
    assert evil not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    # A row that got in some other way (an older version, a manual insert) is shown as text.
    async with console.sessions() as db, db.begin():
        db.add(
            ConsoleUser(
                username=evil, role="operator", password_hash="x", active=True, failed_logins=0
            )
        )
    resp, body = await browser.get("/console/admin/users")
    assert resp.status == 200 and evil not in body and "&lt;script&gt;" in body


async def test_security_headers(console: Console, browser: Browser) -> None:
    for path in ("/console/login", "/console/static/console.css", "/console/no-such-page"):
        resp, _ = await browser.get(path)
        assert resp.headers["Content-Security-Policy"] == CSP, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert resp.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    resp, body = await browser.get("/console/login")
    assert "<script" not in body and "style=" not in body


def test_password_policy() -> None:
    for weak, why in [
        ("Short-1", "at least 12"),
        ("alllowercaseletters", "two kinds"),
        ("123456789012345", "two kinds"),
    ]:
        with pytest.raises(accounts.AccountError, match=why):
            accounts.check_password_policy(weak)
    accounts.check_password_policy("long enough passphrase 7")
    accounts.check_password_policy(accounts.generate_password())


# --- CLI and the real service -----------------------------------------------------------------


def test_cli_user_add_and_list(tmp_path: Path, monkeypatch, capsys) -> None:
    from bot.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SECRET_KEY", "test-secret-not-for-production")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "Gulnar.Admin", "--role", "admin", "--password-stdin"]) == 0
    out = capsys.readouterr().out
    assert "gulnar.admin" in out and "first login" in out
    monkeypatch.setattr("sys.stdin", io.StringIO("weak\n"))
    assert main(["user", "add", "other.admin", "--role", "admin", "--password-stdin"]) == 1
    assert "at least 12" in capsys.readouterr().err
    assert main(["user", "list"]) == 0
    out = capsys.readouterr().out
    assert "gulnar.admin\tadmin\tactive\tno totp yet" in out and "other.admin" not in out


async def test_service_serves_the_console(tmp_path: Path) -> None:
    """bot.server.create_app wires the console; its database arrives at start-up."""
    from actions import context as actions_context
    from bot.server import create_app

    settings = replace(
        Settings(), database_url=f"sqlite:///{tmp_path / 'svc.db'}", bot_port=free_port()
    )
    try:
        saved = actions_context.get()
    except Exception:
        saved = None
    runner = await start_site(create_app(settings), "127.0.0.1", settings.bot_port)
    b = Browser(f"http://127.0.0.1:{settings.bot_port}")
    try:
        resp, body = await b.get("/console/login")
        assert resp.status == 200 and resp.headers["Content-Security-Policy"] == CSP
        resp, body = await b.password_step("someone.unknown", "Not-the-password-9")
        assert resp.status == 401 and WRONG_LOGIN in body
        async with b.http.get(b.base + "/healthz") as resp:
            assert (
                "Content-Security-Policy" not in resp.headers
            )  # the console's headers stay in /console
    finally:
        await b.close()
        await runner.cleanup()
        if saved is not None:
            actions_context.configure(saved.repo, saved.renderer)


async def test_admin_reloads_knowledge_and_sees_unverified_entries(console: Console) -> None:
    from bot.knowledge import read_knowledge

    secret = await enrolled_user(console.sessions, "rena.admin", "admin")
    b = console.browser()
    await b.login("rena.admin", secret)
    resp, body = await b.get("/console/admin/knowledge")
    kb = read_knowledge(ROOT / "knowledge")
    unverified = sum(e.get("verified") is False for es in kb.entries.values() for e in es)
    assert resp.status == 200 and f"Not verified ({unverified})" in body
    resp, body = await b.post("/console/admin/knowledge")
    assert resp.status == 200 and "Loaded:" in body
    assert ("rena.admin", "knowledge_reload") in await audit_actions(console.sessions)
    await b.close()
