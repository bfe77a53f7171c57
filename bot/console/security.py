"""The console's guard: security headers, session loading, CSRF, role checks.

Stable API::

    @require_role("supervisor", "admin")      # or require_role() for any logged-in user
    async def handler(request): ...

Unauthenticated: GET/HEAD are redirected to /console/login (or to /console/totp mid-login),
other methods get 401; a wrong role gets the 403 error page. Every POST/PUT/PATCH/DELETE under
/console must carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``) and, when the browser sends an ``Origin``, come from this host — else 403
before the handler runs. Headers (CSP, nosniff, same-origin referrer, no-store) are added to every
/console response, errors and streams included (``on_response_prepare``).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from bot.console.identity import (
    SESSION,
    CurrentUser,
    LoadedSession,
    console_config,
    console_db,
    current_user,
    pending_session,
)
from bot.console.pages import csrf_token_for, error_page
from bot.console.sessions import COOKIE, is_https, load_session

__all__ = ["current_user", "require_role", "console_middleware", "add_security_headers"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/console"
STATIC_PREFIX = "/console/static/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on form posts,
    # which the CSRF origin check must refuse. Other sites still get no referrer.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
}
CSRF_REFUSED = (
    "This form expired or came from another site. Go back, reload the page and try again."
)


def in_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: runs just before headers are sent, for every response."""
    if not in_console(request.path):
        return
    response.headers.update(HEADERS)
    if is_https(request, console_config(request)):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"


async def _load_session(request: web.Request) -> None:
    token = request.cookies.get(COOKIE)
    if not token:
        return
    async with console_db(request)() as db, db.begin():
        loaded = await load_session(db, token, console_config(request))
    if loaded is None:
        return
    row, user = loaded
    request[SESSION] = LoadedSession(
        token=token,
        user=CurrentUser(
            id=user.id, username=user.username, role=user.role, csrf_token=row.csrf_token
        ),
        second_factor=row.second_factor,
    )


def _same_origin(origin: str, request: web.Request) -> bool:
    parts = urlsplit(origin)
    return (
        parts.scheme in ("http", "https") and parts.netloc.lower() == (request.host or "").lower()
    )


async def _csrf_ok(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin, request):
        return False
    expected = csrf_token_for(request)
    supplied = request.headers.get("X-CSRF-Token")
    if supplied is None and request.content_type in FORM_TYPES:
        value = (await request.post()).get("csrf_token")  # cached: the handler reads it again
        supplied = value if isinstance(value, str) else None
    return bool(expected and supplied) and hmac.compare_digest(expected, supplied)


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the session and enforce CSRF for /console (static files excepted)."""
    if not in_console(request.path) or request.path.startswith(STATIC_PREFIX):
        return await handler(request)
    await _load_session(request)
    if request.method not in SAFE_METHODS and not await _csrf_ok(request):
        return error_page(request, 403, CSRF_REFUSED)
    return await handler(request)


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Let the handler run only for a fully logged-in user with one of ``roles`` (any role when
    none are given)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            user = current_user(request)
            if user is None:
                if request.method in ("GET", "HEAD"):
                    stage = pending_session(request)
                    raise web.HTTPFound("/console/totp" if stage else "/console/login")
                return error_page(request, 401, "Log in first.")
            if roles and user.role not in roles:
                return error_page(request, 403, "Your role does not give access to this page.")
            return await handler(request)

        return guarded

    return wrap
