"""HTML pages: Jinja2 templates (autoescaped) under ``bot/console/templates``.

Stable API::

    render(request, "name.html", status=200, **context) -> web.Response
    error_page(request, status, message) -> web.Response

``render`` always passes ``user`` (CurrentUser or None), ``csrf_token`` (put it in every form as
``<input type="hidden" name="csrf_token" value="{{ csrf_token }}">``), ``nav`` (links for the
user's role) and ``path``. New pages extend ``base.html`` and fill ``{% block content %}``;
no inline ``<script>``/``style`` — the Content-Security-Policy refuses them; put CSS in
``static/console.css`` and scripts in ``static/*.js``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from bot.console.identity import LOGIN_CSRF, current_user, pending_session
from bot.console.sessions import LOGIN_CSRF_COOKIE

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PRODUCT = "ctip-assistant console"

# (label, href, roles that see it). Queue and Dashboard pages come with the case backend.
NAV = [
    ("Queue", "/console/queue", {"operator", "supervisor"}),
    ("Dashboard", "/console/dashboard", {"supervisor"}),
    ("Admin", "/console/admin/users", {"admin"}),
    ("Knowledge", "/console/admin/knowledge", {"admin"}),
    ("Audit", "/console/audit", {"supervisor", "admin"}),
]


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["product"] = PRODUCT
    return env


def csrf_token_for(request: web.Request) -> str:
    """The session's CSRF token, or before login the double-submit cookie's value."""
    session = pending_session(request)
    if session is not None:
        return session.user.csrf_token
    return request.get(LOGIN_CSRF) or request.cookies.get(LOGIN_CSRF_COOKIE, "")


def render(request: web.Request, name: str, *, status: int = 200, **context: Any) -> web.Response:
    user = current_user(request)
    values: dict[str, Any] = {
        "user": user,
        "csrf_token": csrf_token_for(request),
        "nav": [(label, href) for label, href, roles in NAV if user and user.role in roles],
        "path": request.path,
    }
    values.update(context)
    html = environment().get_template(name).render(values)
    return web.Response(text=html, status=status, content_type="text/html")


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", status=status, status_code=status, message=message)


def redirect(location: str) -> web.Response:
    """303: after a POST the browser follows with a GET (no form resubmission)."""
    return web.Response(status=303, headers={"Location": location})


async def form_fields(request: web.Request) -> dict[str, str]:
    """The POSTed form's text fields (file parts dropped)."""
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}
