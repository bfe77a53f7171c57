"""Console routes: login (password, then TOTP), logout, home, admin users, audit, static files.

``setup_console(app, settings)`` is called from ``bot.server.create_app`` — routes must exist
before aiohttp freezes the router — and the database arrives later: at start-up the console's
sessionmaker (app key ``CONSOLE_DB``) is made from the service's engine (``bot.server.DB``).
Tests pass ``sessions=`` directly. Other console pages are added to the same app under
``/console/…`` with ``@require_role(...)`` and ``render(...)``; the middleware already guards them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.console import accounts, audit, throttle
from bot.console.config import ConsoleConfig
from bot.console.identity import (
    CONSOLE_CONFIG,
    CONSOLE_DB,
    LOGIN_CSRF,
    console_config,
    console_db,
    current_user,
    pending_session,
)
from bot.console.knowledge_page import setup_knowledge_page
from bot.console.pages import STATIC, error_page, form_fields, redirect, render
from bot.console.security import add_security_headers, console_middleware, require_role
from bot.console.sessions import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    clear_cookie,
    client_address,
    end_session,
    new_session,
    set_cookie,
)
from bot.console.workspace import setup_operator_pages
from bot.storage.db import make_sessionmaker
from bot.storage.models import ConsoleUser

CONSOLE_SETTINGS = web.AppKey("console_settings", object)  # bot.config.Settings
WRONG_LOGIN = "Wrong username or password."
WRONG_CODE = "That code is not valid (or was already used). Wait for the next one and try again."


# --- login: password -------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.StreamResponse:
    if current_user(request):
        raise web.HTTPFound("/console/")
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    request[LOGIN_CSRF] = token
    response = render(request, "login.html", changed=request.query.get("changed") == "1")
    set_cookie(response, request, console_config(request), token, name=LOGIN_CSRF_COOKIE)
    return response


async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await form_fields(request)
    username = accounts.normalise_username(form.get("username", ""))[:64]
    password = form.get("password", "")
    config = console_config(request)
    address = client_address(request, config)
    token: str | None = None
    async with console_db(request)() as db, db.begin():
        # Refused attempts are not audited: the log is append-only, and an attacker must not
        # be able to grow it without bound. The failures that caused the lock are in it.
        if await throttle.is_blocked(db, username, address):
            error, status = throttle.MESSAGE, 429
        else:
            user = await accounts.authenticate(db, username, password)
            if user is None:
                await throttle.record_failure(db, username, address)
                await audit.record(db, username or "-", "login_failed", reason="password")
                error, status = WRONG_LOGIN, 401
            else:
                # A fresh token for the new stage; whatever the browser held is discarded.
                await end_session(db, request.cookies.get(COOKIE))
                token = await new_session(db, user, second_factor=False)
    if token is None:
        return render(request, "login.html", status=status, error=error, username=username)
    response = redirect("/console/totp")
    set_cookie(response, request, config, token)
    clear_cookie(response, LOGIN_CSRF_COOKIE)
    return response


# --- login: TOTP (or enrolment at the first login) -------------------------------------------


def _totp_page(request: web.Request, user: ConsoleUser, **context: Any) -> web.Response:
    if accounts.is_enrolled(user):
        return render(request, "totp.html", **context)
    secret = accounts.pending_secret(user)
    return render(
        request,
        "totp_setup.html",
        qr=accounts.qr_data_uri(accounts.provisioning_uri(user)),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        **context,
    )


async def totp_page(request: web.Request) -> web.StreamResponse:
    stage = pending_session(request)
    if stage is None:
        raise web.HTTPFound("/console/login")
    if stage.second_factor:
        raise web.HTTPFound("/console/")
    async with console_db(request)() as db, db.begin():
        user = await db.get(ConsoleUser, stage.user.id)
        return _totp_page(request, user)  # may store the pending secret: committed on exit


async def totp_submit(request: web.Request) -> web.StreamResponse:
    stage = pending_session(request)
    if stage is None:
        return redirect("/console/login")
    if stage.second_factor:
        return redirect("/console/")
    form = await form_fields(request)
    config = console_config(request)
    address = client_address(request, config)
    async with console_db(request)() as db, db.begin():
        # Locked: two requests racing with the same code must not both pass.
        user = await db.get(ConsoleUser, stage.user.id, with_for_update=True)
        if await throttle.is_blocked(db, user.username, address):
            return _totp_page(request, user, error=throttle.MESSAGE, status=429)
        enrolling = not accounts.is_enrolled(user)
        if not accounts.verify_totp(user, form.get("code", "")):
            await throttle.record_failure(db, user.username, address)
            await audit.record(db, user.username, "login_failed", reason="totp")
            return _totp_page(request, user, error=WRONG_CODE, status=401)
        if enrolling:
            await audit.record(db, user.username, "totp_enrolled")
        await end_session(db, stage.token)
        token = await new_session(db, user, second_factor=True)
        user.last_login_at = dt.datetime.now(dt.UTC)
        await throttle.clear(db, user.username)
        await audit.record(db, user.username, "login")
    response = redirect("/console/")
    set_cookie(response, request, config, token)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    stage = pending_session(request)
    if stage is not None:
        async with console_db(request)() as db, db.begin():
            await end_session(db, stage.token)
            await audit.record(db, stage.user.username, "logout")
    response = redirect("/console/login")
    clear_cookie(response)
    return response


# --- pages ------------------------------------------------------------------------------------


def _has_route(request: web.Request, path: str) -> bool:
    return any(r.canonical == path for r in request.app.router.resources())


async def to_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/")


@require_role()
async def home(request: web.Request) -> web.StreamResponse:
    """Send each role to its page; a plain page until the queue exists."""
    user = current_user(request)
    target = "/console/admin/users" if user.role == "admin" else "/console/queue"
    if _has_route(request, target):
        raise web.HTTPFound(target)
    return render(request, "home.html")


async def _users_page(request: web.Request, status: int = 200, **context: Any) -> web.Response:
    users = await accounts.list_users(console_db(request))
    return render(
        request,
        "admin_users.html",
        status=status,
        users=users,
        roles=accounts.ROLES,
        enrolled=accounts.is_enrolled,
        **context,
    )


@require_role("admin")
async def admin_users(request: web.Request) -> web.StreamResponse:
    return await _users_page(request)


@require_role("admin")
async def admin_users_submit(request: web.Request) -> web.StreamResponse:
    """Create (one-time password shown once, never stored in clear), deactivate, reset TOTP."""
    admin = current_user(request)
    form = await form_fields(request)
    action = form.get("action")
    db = console_db(request)
    try:
        if action == "create":
            password = accounts.generate_password()
            user = await accounts.create_user(
                db, form.get("username", ""), form.get("role", ""), password, actor=admin.username
            )
            return await _users_page(request, created=user.username, one_time_password=password)
        user_id = int(form.get("user_id", ""))
        if not 0 < user_id < 2**63:  # past 64 bits the database errors (a 500), not "no one"
            raise ValueError("no such account")
        if action == "deactivate":
            if user_id == admin.id:
                raise accounts.AccountError("You cannot deactivate your own account.")
            user = await accounts.deactivate_user(db, user_id, admin.username)
            return await _users_page(request, notice=f"{user.username} is deactivated.")
        if action == "reset_password":
            if user_id == admin.id:
                raise accounts.AccountError("Change your own password on your account page.")
            user, password = await accounts.reset_password(db, user_id, admin.username)
            return await _users_page(request, reset=user.username, one_time_password=password)
        if action == "reset_totp":
            user = await accounts.reset_totp(db, user_id, admin.username)
            return await _users_page(
                request, notice=f"{user.username} will set up a new authenticator at next login."
            )
    except accounts.AccountError as exc:
        return await _users_page(request, status=400, error=str(exc), form=form)
    except ValueError:
        pass
    return error_page(request, 400, "Unknown request.")


@require_role()
async def account_page(request: web.Request) -> web.StreamResponse:
    return render(request, "account.html")


@require_role()
async def account_submit(request: web.Request) -> web.StreamResponse:
    """Change one's own password; then every session of the account ends, so log in again."""
    user = current_user(request)
    form = await form_fields(request)
    address = client_address(request, console_config(request))
    async with console_db(request)() as db:
        if await throttle.is_blocked(db, user.username, address):
            return render(request, "account.html", status=429, error=throttle.MESSAGE)
    try:
        await accounts.change_password(
            console_db(request),
            user.id,
            form.get("current_password", ""),
            form.get("new_password", ""),
            form.get("repeat_password", ""),
        )
    except accounts.WrongPassword as exc:
        # Guessing the current password from an open session counts like failed logins.
        async with console_db(request)() as db, db.begin():
            await throttle.record_failure(db, user.username, address)
        return render(request, "account.html", status=400, error=str(exc))
    except accounts.AccountError as exc:
        return render(request, "account.html", status=400, error=str(exc))
    response = redirect("/console/login?changed=1")
    clear_cookie(response)
    return response


@require_role("supervisor", "admin")
async def audit_page(request: web.Request) -> web.StreamResponse:
    action = request.query.get("action") or None
    if action not in audit.ACTIONS:
        action = None
    events = await audit.recent(console_db(request), limit=200, action=action)
    return render(
        request, "audit.html", events=events, actions=sorted(audit.ACTIONS), selected=action
    )


# --- wiring -----------------------------------------------------------------------------------


def setup_console(
    app: web.Application,
    settings: object,
    *,
    sessions: async_sessionmaker | None = None,
    config: ConsoleConfig | None = None,
) -> None:
    """Register the console on ``app`` (call before the app starts; see the module docstring).

    ``settings`` (bot.config.Settings) is kept at ``CONSOLE_SETTINGS`` for console pages.
    """
    app[CONSOLE_SETTINGS] = settings
    app[CONSOLE_CONFIG] = config or ConsoleConfig.from_env()
    if sessions is not None:
        app[CONSOLE_DB] = sessions
    else:

        async def connect(app: web.Application) -> None:
            from bot.server import DB  # bot.server imports this module: import at start-up

            app[CONSOLE_DB] = make_sessionmaker(app[DB])

        app.on_startup.append(connect)  # after bot.server's open_database, which sets DB

    async def warm_up(app: web.Application) -> None:
        # The dummy hash for unknown usernames, made now: made lazily, the first unknown
        # login would take twice as long and tell that the name does not exist.
        await asyncio.to_thread(accounts.dummy_hash)

    app.on_startup.append(warm_up)
    app.middlewares.append(console_middleware)
    app.on_response_prepare.append(add_security_headers)
    router = app.router
    router.add_get("/console/login", login_page)
    router.add_post("/console/login", login_submit)
    router.add_get("/console/totp", totp_page)
    router.add_post("/console/totp", totp_submit)
    router.add_post("/console/logout", logout)
    router.add_get("/console/", home)
    router.add_get("/console", to_home)
    router.add_get("/console/admin/users", admin_users)
    router.add_post("/console/admin/users", admin_users_submit)
    router.add_get("/console/audit", audit_page)
    router.add_get("/console/account", account_page)
    router.add_post("/console/account", account_submit)
    setup_operator_pages(app)  # queue, cases, dashboard (bot.console.workspace)
    setup_knowledge_page(app)  # admin: knowledge counts, unverified entries, reload
    router.add_static("/console/static", STATIC, name="console_static")
