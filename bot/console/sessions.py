"""Console sessions: a random token in a cookie, only its SHA-256 in ``console_sessions``.

Why: a database leak then yields no usable cookie, and ending a session is deleting a row (works
across replicas, unlike signed stateless cookies). Every login step — password, then TOTP —
issues a NEW token and deletes the previous row, so a token planted before login (session
fixation) never becomes an authenticated one. Idle and absolute timeouts are checked here, on
the server, not trusted to cookie expiry.

Cookie ``ctip_console``: HttpOnly, SameSite=Strict, Path=/console, Secure when the request came
over HTTPS (directly, or per ``X-Forwarded-Proto`` with ``CONSOLE_TRUST_PROXY=1``) or when
``CONSOLE_SECURE_COOKIES=1``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from aiohttp import web
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.console.config import ConsoleConfig
from bot.storage.models import ConsoleSession, ConsoleUser

COOKIE = "ctip_console"
# Before login there is no session to hold a CSRF token: the login form uses a double-submit
# cookie instead (a random value in this cookie and in the form; a foreign site sets neither).
LOGIN_CSRF_COOKIE = "ctip_console_login"
COOKIE_PATH = "/console"
# last_seen_at is written at most this often: a page polling the queue should not turn every
# request into a write (SQLite has one writer), and the idle timeout loses nothing that matters.
TOUCH_EVERY = dt.timedelta(seconds=30)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; everything we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def is_https(request: web.Request, config: ConsoleConfig) -> bool:
    if config.secure_cookies or request.secure:
        return True
    if config.trust_proxy:
        proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return proto == "https"
    return False


def client_address(request: web.Request, config: ConsoleConfig) -> str:
    """The client's address; behind a trusted proxy, the last hop it appended."""
    if config.trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if hops:
            return hops[-1][:64]
    return (request.remote or "unknown")[:64]


async def new_session(db: AsyncSession, user: ConsoleUser, *, second_factor: bool) -> str:
    """Add a session row for ``user`` and return its token (the caller commits)."""
    token = secrets.token_urlsafe(32)
    now = dt.datetime.now(dt.UTC)
    db.add(
        ConsoleSession(
            token_hash=hash_token(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            second_factor=second_factor,
            created_at=now,
            last_seen_at=now,
        )
    )
    return token


async def load_session(
    db: AsyncSession, token: str, config: ConsoleConfig, now: dt.datetime | None = None
) -> tuple[ConsoleSession, ConsoleUser] | None:
    """The live session for ``token`` and its (active) user, refreshing ``last_seen_at``;
    expired rows are deleted. The caller commits."""
    now = now or dt.datetime.now(dt.UTC)
    row = await db.get(ConsoleSession, hash_token(token))
    if row is None:
        return None
    user = await db.get(ConsoleUser, row.user_id)
    idle = now - aware(row.last_seen_at) > dt.timedelta(minutes=config.idle_minutes)
    old = now - aware(row.created_at) > dt.timedelta(hours=config.absolute_hours)
    if idle or old or user is None or not user.active:
        await db.delete(row)
        return None
    if now - aware(row.last_seen_at) > TOUCH_EVERY:
        row.last_seen_at = now
    return row, user


async def end_session(db: AsyncSession, token: str | None) -> None:
    """Delete the session row of ``token`` if any (logout, and before issuing a new token)."""
    if token:
        await db.execute(
            delete(ConsoleSession).where(ConsoleSession.token_hash == hash_token(token))
        )


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    config: ConsoleConfig,
    token: str,
    name: str = COOKIE,
) -> None:
    """A session cookie (no Max-Age: the server decides when a session ends)."""
    response.set_cookie(
        name,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=is_https(request, config),
    )


def clear_cookie(response: web.StreamResponse, name: str = COOKIE) -> None:
    response.del_cookie(name, path=COOKIE_PATH)
