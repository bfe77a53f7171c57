"""Who is asking: the app keys of the console and the per-request session.

Stable API for console pages (the security middleware fills these in before any handler runs)::

    CONSOLE_DB       app key → async_sessionmaker (set at start-up by setup_console)
    CONSOLE_CONFIG   app key → ConsoleConfig
    console_db(request) -> async_sessionmaker
    current_user(request) -> CurrentUser | None   # None unless BOTH factors passed
    pending_session(request) -> LoadedSession | None   # any session, also mid-login

``CurrentUser`` is a small frozen dataclass (id, username, role, csrf_token): pages get what they
need to decide and to render, not an ORM object attached to a closed database session.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.console.config import ConsoleConfig

CONSOLE_DB = web.AppKey("console_db", async_sessionmaker)
CONSOLE_CONFIG = web.AppKey("console_config", ConsoleConfig)


@dataclass(frozen=True)
class CurrentUser:
    id: int
    username: str
    role: str
    csrf_token: str


@dataclass(frozen=True)
class LoadedSession:
    token: str
    user: CurrentUser
    second_factor: bool


SESSION = web.RequestKey("ctip_console.session", LoadedSession)
# Before login: the double-submit CSRF value just issued by the login page (no cookie yet).
LOGIN_CSRF = web.RequestKey("ctip_console.login_csrf", str)


def console_db(request: web.Request) -> async_sessionmaker:
    return request.config_dict[CONSOLE_DB]


def console_config(request: web.Request) -> ConsoleConfig:
    return request.config_dict[CONSOLE_CONFIG]


def pending_session(request: web.Request) -> LoadedSession | None:
    """The request's session whatever its stage (the TOTP step needs the half-done one)."""
    return request.get(SESSION)


def current_user(request: web.Request) -> CurrentUser | None:
    """The logged-in user — only once the TOTP step has been passed."""
    session = pending_session(request)
    return session.user if session is not None and session.second_factor else None
