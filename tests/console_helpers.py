"""Console test helpers: a cookie-keeping browser, the app under test, enrolled accounts.

Shared by the console test files. Everyone here is made up.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pyotp
from aiohttp import web
from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from yarl import URL

from bot.config import Settings
from bot.console import accounts
from bot.console.config import ConsoleConfig
from bot.console.routes import setup_console
from bot.console.sessions import COOKIE
from bot.server import start_site
from bot.stack import free_port
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.models import ConsoleUser
from tests.db import fresh_database

PASSWORD = "Correct-Horse-42"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Console:
    base: str
    sessions: async_sessionmaker
    kind: str

    def browser(self) -> Browser:
        return Browser(self.base)


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects (we check each step)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        self.http = aiohttp.ClientSession(cookie_jar=self.jar)
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    def cookie(self, name: str = COOKIE) -> str | None:
        morsel = self.jar.filter_cookies(URL(self.base + "/console/")).get(name)
        return morsel.value if morsel else None

    async def get(self, path: str, **kw) -> tuple[aiohttp.ClientResponse, str]:
        async with self.http.get(self.base + path, allow_redirects=False, **kw) as resp:
            body = await resp.text()
        if m := CSRF_FIELD.search(body):
            self.csrf = m.group(1)
        return resp, body

    async def post(
        self, path: str, data: dict | None = None, csrf: bool = True, **kw
    ) -> tuple[aiohttp.ClientResponse, str]:
        form = dict(data or {})
        if csrf:
            form["csrf_token"] = self.csrf
        async with self.http.post(self.base + path, data=form, allow_redirects=False, **kw) as resp:
            body = await resp.text()
        if m := CSRF_FIELD.search(body):
            self.csrf = m.group(1)
        return resp, body

    async def password_step(self, username: str, password: str = PASSWORD):
        await self.get("/console/login")
        return await self.post("/console/login", {"username": username, "password": password})

    async def login(
        self, username: str, secret: str, code: str | None = None, password: str = PASSWORD
    ) -> None:
        resp, _ = await self.password_step(username, password)
        assert resp.status == 303 and resp.headers["Location"] == "/console/totp"
        await self.get("/console/totp")
        resp, body = await self.post("/console/totp", {"code": code or pyotp.TOTP(secret).now()})
        assert resp.status == 303, body
        resp, _ = await self.get("/console/")  # the full session's CSRF token, from a page
        if resp.status == 302:
            await self.get(resp.headers["Location"])


async def enrolled_user(sessions: async_sessionmaker, username: str, role: str) -> str:
    """An account whose authenticator is set up (no code used yet); returns the TOTP secret."""
    user = await accounts.create_user(sessions, username, role, PASSWORD)
    secret = pyotp.random_base32()
    async with sessions() as db, db.begin():
        await db.execute(
            update(ConsoleUser)
            .where(ConsoleUser.id == user.id)
            .values(totp_secret=secret, totp_last_step=0)
        )
    return secret


@asynccontextmanager
async def running_console(kind: str, tmp: Path) -> AsyncIterator[tuple[Console, web.Application]]:
    """The console alone on a fresh, migrated ``kind`` database (sqlite | postgresql), served
    on a free port; the app is there for tests that read its routes."""
    url = await fresh_database(kind, tmp)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    app = web.Application()
    setup_console(app, Settings(database_url=url), sessions=sessions, config=ConsoleConfig())
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    try:
        yield Console(f"http://127.0.0.1:{port}", sessions, kind), app
    finally:
        await runner.cleanup()
        await engine.dispose()
