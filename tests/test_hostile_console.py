"""Session fixation and cross-site requests against the operators' console, spelled out — on
SQLite and PostgreSQL, over real HTTP.

test_console_auth checks the mechanisms (a new token per login step, the CSRF token, Origin);
these check the attacks: a session id an attacker planted or watched before login is worth
nothing after it, and every state-changing route — found from the router, so a route added
later is covered without editing this file — refuses a request without the token, with a
wrong one, or from another origin, and changes nothing. Everyone here is made up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyotp
import pytest_asyncio
from aiohttp import web
from sqlalchemy import inspect, text
from yarl import URL

from bot.console.security import CSRF_REFUSED
from bot.console.sessions import COOKIE, LOGIN_CSRF_COOKIE
from bot.storage.cases import CaseStore
from tests.console_helpers import PASSWORD, Browser, Console, enrolled_user, running_console

ATTACKER_ORIGINS = ["https://evil.example", "null", "http://127.0.0.1.evil.example", "file://"]


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def console(request, tmp_path: Path) -> AsyncIterator[tuple[Console, web.Application]]:
    async with running_console(request.param, tmp_path) as running:
        yield running


def plant(browser: Browser, value: str, name: str = COOKIE) -> None:
    browser.jar.update_cookies({name: value}, URL(browser.base + "/console/"))


async def reaches_a_page(browser: Browser) -> bool:
    """True when the cookie the browser holds opens a logged-in page."""
    resp, _ = await browser.get("/console/queue")
    return resp.status == 200


async def test_session_fixation_planted_and_half_way_tokens_are_useless_after_login(
    console: tuple[Console, web.Application],
) -> None:
    c, _ = console
    victim_secret = await enrolled_user(c.sessions, "leyla.operator", "operator")
    await enrolled_user(c.sessions, "mallory.operator", "operator")

    # The attacker gets a real half-way token of their own (password step done) and plants it,
    # with a made-up one, in the victim's browser before the victim logs in.
    attacker = c.browser()
    await attacker.password_step("mallory.operator")
    planted = attacker.cookie()
    assert planted
    victim = c.browser()
    plant(victim, planted)

    resp, _ = await victim.password_step("leyla.operator")
    assert resp.status == 303
    half = victim.cookie()
    assert half and half != planted  # a new token at the password step
    # Someone who watched the half-way token cannot use it: it opens no page (only /totp) …
    watcher = c.browser()
    plant(watcher, half)
    assert not await reaches_a_page(watcher)

    await victim.get("/console/totp")
    resp, _ = await victim.post("/console/totp", {"code": pyotp.TOTP(victim_secret).now()})
    assert resp.status == 303
    full = victim.cookie()
    assert full and full not in (planted, half)  # and another at the TOTP step
    assert await reaches_a_page(victim)

    # … and after the TOTP step neither the planted token nor the half-way one is anything.
    for token in (planted, half):
        someone = c.browser()
        plant(someone, token)
        assert not await reaches_a_page(someone)
        resp, _ = await someone.get("/console/totp")
        assert resp.status == 302 and resp.headers["Location"] == "/console/login"
        await someone.close()
    async with c.sessions() as db:
        hashes = (await db.execute(text("SELECT token_hash FROM console_sessions"))).all()
    assert len(hashes) == 1  # only the victim's full session exists (the attacker's was ended)
    for b in (attacker, victim, watcher):
        await b.close()


async def snapshot(sessions) -> dict[str, list[Any]]:
    """Every row of every table (sessions without their last-seen time, which reads refresh)."""
    async with sessions() as db:
        conn = await db.connection()
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        out: dict[str, list[Any]] = {}
        for name in sorted(names):
            if name == "alembic_version":
                continue
            rows = (await db.execute(text(f'SELECT * FROM "{name}"'))).mappings().all()
            rows = [{k: v for k, v in r.items() if k != "last_seen_at"} for r in rows]
            out[name] = sorted(json.dumps(r, default=str, sort_keys=True) for r in rows)
    return out


def post_routes(app: web.Application) -> list[str]:
    """Every state-changing console route, from the router itself."""
    paths = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if route.method in ("POST", "PUT", "PATCH", "DELETE") and path.startswith("/console"):
            paths.append(path)
    return sorted(set(paths))


async def test_every_console_post_without_or_with_a_wrong_token_or_from_another_origin_is_refused_and_changes_nothing(  # noqa: E501
    console: tuple[Console, web.Application],
) -> None:
    c, app = console
    secret = await enrolled_user(c.sessions, "gunel.supervisor", "supervisor")
    await enrolled_user(c.sessions, "rauf.operator", "operator")
    browser = c.browser()
    await browser.login("gunel.supervisor", secret)
    case = await CaseStore(c.sessions).open_case("u_" + "cd" * 16, "operator_command", "high", "az")
    routes = post_routes(app)
    assert {"/console/login", "/console/logout", "/console/admin/users"} <= set(routes)
    assert any("{case_id}" in r for r in routes)
    forms = {  # what each form would carry, so only the token decides
        "reply": {"text": "hello"}, "note": {"text": "a note"}, "close": {"outcome": "other"},
        "hold": {"hold": "on"}, "transfer": {"to_user_id": "2"},
        "users": {"action": "create", "username": "new.operator", "role": "operator"},
        "login": {"username": "gunel.supervisor", "password": PASSWORD},
        "totp": {"code": "123456"},
    }  # fmt: skip
    before = await snapshot(c.sessions)
    token = browser.csrf
    assert token
    for route in routes:
        path = route.replace("{case_id}", str(case.id))
        form = forms.get(path.rsplit("/", 1)[-1], {})
        attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
            ("no token", form, {}),
            ("wrong token", {**form, "csrf_token": token[:-2] + "xx"}, {}),
            ("empty token", {**form, "csrf_token": ""}, {}),
            ("wrong header", form, {"X-CSRF-Token": "forged"}),
        ] + [
            (f"origin {o}", {**form, "csrf_token": token}, {"Origin": o})
            for o in ATTACKER_ORIGINS
        ]  # fmt: skip
        for why, data, headers in attempts:
            resp, body = await browser.post(path, data, csrf=False, headers=headers)
            assert resp.status == 403, (path, why, resp.status)
            assert CSRF_REFUSED in body, (path, why)
    # Nothing changed anywhere, and the session still works (logout was refused too).
    assert await snapshot(c.sessions) == before
    assert await reaches_a_page(browser)

    # The login form: a foreign site has neither the double-submit cookie nor its value.
    stranger = c.browser()
    await stranger.get("/console/login")
    login_token = stranger.csrf
    for data, headers in [
        ({"username": "rauf.operator", "password": PASSWORD}, {}),
        ({"username": "rauf.operator", "password": PASSWORD, "csrf_token": "forged"}, {}),
        ({"username": "rauf.operator", "password": PASSWORD, "csrf_token": login_token},
         {"Origin": "https://evil.example"}),
    ]:  # fmt: skip
        resp, _ = await stranger.post("/console/login", data, csrf=False, headers=headers)
        assert resp.status == 403 and stranger.cookie() is None
    cross_site = c.browser()  # the value without the cookie (another site cannot read it)
    resp, _ = await cross_site.post(
        "/console/login",
        {"username": "rauf.operator", "password": PASSWORD, "csrf_token": login_token},
        csrf=False,
    )
    assert resp.status == 403 and cross_site.cookie() is None
    assert cross_site.cookie(LOGIN_CSRF_COOKIE) is None
    assert await snapshot(c.sessions) == before
    for b in (browser, stranger, cross_site):
        await b.close()
