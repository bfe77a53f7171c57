"""Privacy, checked where data actually ends up: the logs, the engine's tracker store, what
operators and supervisors see as figures (metrics, dashboard, audit log), and every table after
``/forget``.

A made-up person talks to the real stack (emulator → PTB → adapter → engine → actions →
database), with a distinctive name, username, texts and a location; then each place is scanned
for their raw Telegram id (user and chat: equal in a private chat), names and texts. Each scan
also looks for something that must be there (the pseudonymous key, a second person's data), so
a scan that reads the wrong place fails instead of passing. Everyone here is made up.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.devtools.emulator import EmulatorClient, running_emulator
from bot.privacy import pseudonymise
from bot.server import DB
from bot.storage.db import make_sessionmaker
from tests.console_helpers import Browser, enrolled_user
from tests.db import fresh_database
from tests.telegram_helpers import (
    bot_messages,
    buttons,
    eventually,
    last_seq,
    new_user_id,
    texts,
)
from tests.telegram_helpers import webhook_service as start_webhook_service

pytestmark = pytest.mark.engine
LOCATION = (40.68281, 46.36061)  # Ganja


@dataclass
class MadeUp:
    """A made-up person and everything about them that must not leak."""

    user_id: int
    key: str
    first_name: str
    username: str
    texts: list[str]
    markers: list[str] = field(default_factory=list)

    @classmethod
    def new(cls, secret_key: str, tag: str) -> MadeUp:
        user_id = new_user_id()
        markers = [f"zqvx{tag}{i}q" for i in range(4)]  # survive folding: plain ascii letters
        return cls(
            user_id=user_id,
            key=pseudonymise(user_id, secret_key),
            first_name=f"Gülnarə{tag}Mustafayeva",
            username=f"gulnara_{tag}_private",
            texts=[
                f"my employer took my passport and does not pay me {markers[0]}",
                f"where can I find a shelter in Baku {markers[1]}",
                f"I am scared, please ask someone to write to me {markers[2]}",
                f"мой работодатель забрал паспорт {markers[3]}",
            ],
            markers=markers,
        )

    def needles(self) -> dict[str, re.Pattern[str]]:
        """What must not appear: the raw id (not inside a longer number), names, texts."""
        found = {
            "raw user/chat id": re.compile(rf"(?<!\d){self.user_id}(?!\d)"),
            "first name": re.compile(re.escape(self.first_name), re.I),
            "username": re.compile(re.escape(self.username), re.I),
        }
        for i, t in enumerate(self.texts):
            found[f"text {i}"] = re.compile(re.escape(t), re.I)
        for i, m in enumerate(self.markers):
            found[f"marker {i} (part of a text)"] = re.compile(re.escape(m), re.I)
        return found


def leaks(needles: dict[str, re.Pattern[str]], places: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{name} in {where}" for where, hay in places for name, rx in needles.items()
            if rx.search(hay)]  # fmt: skip


@dataclass
class Bot:
    """The service a test talks to, and where its data lives."""

    client: EmulatorClient
    app: web.Application
    base: str
    secret_key: str
    tracker_db: Path

    @property
    def engine(self) -> AsyncEngine:
        return self.app[DB]


def _tracker_path(url: str) -> Path:
    assert url.startswith("sqlite:///"), url
    return Path(url.removeprefix("sqlite:///"))


@pytest.fixture
def polling_bot(stack, emulator) -> Bot:
    return Bot(emulator.client, stack.app, stack.bot_url, stack.settings.secret_key,
               _tracker_path(stack.settings.tracker_store_url))  # fmt: skip


@asynccontextmanager
async def webhook_pg(stack, tmp_path: Path) -> AsyncIterator[Bot]:
    """The same assistant in webhook mode on PostgreSQL (the production database)."""
    url = await fresh_database("postgresql", tmp_path)
    async with (
        running_emulator() as emu,
        start_webhook_service(stack.settings, emu.url, database_url=url) as (hook, app),
    ):
        yield Bot(emu.client, app, hook.split("/telegram/")[0], stack.settings.secret_key,
                  _tracker_path(stack.settings.tracker_store_url))  # fmt: skip


@pytest_asyncio.fixture
async def webhook_pg_bot(stack, tmp_path: Path) -> AsyncIterator[Bot]:
    async with webhook_pg(stack, tmp_path) as bot:
        yield bot


@pytest_asyncio.fixture(params=["polling-sqlite", "webhook-postgresql"])
async def any_bot(request, stack, emulator, tmp_path: Path) -> AsyncIterator[Bot]:
    """Each way the assistant runs: polling on SQLite (the session's), webhook on PostgreSQL."""
    if request.param == "polling-sqlite":
        yield Bot(emulator.client, stack.app, stack.bot_url, stack.settings.secret_key,
                  _tracker_path(stack.settings.tracker_store_url))  # fmt: skip
        return
    async with webhook_pg(stack, tmp_path) as bot:
        yield bot


async def converse(bot: Bot, p: MadeUp) -> None:
    """A whole conversation: start, a language button, free text, a location, /operator and a
    message while the case waits (so it reaches the transcript)."""
    c, uid = bot.client, p.user_id
    who = {"first_name": p.first_name, "username": p.username, "language_code": "en"}
    after = await last_seq(c, uid)
    await c.send_command(uid, "/start", **who)
    start = await bot_messages(c, uid, after, count=2)
    english = next(b for b in buttons(start[-1]) if b["text"] == "English")
    after = await last_seq(c, uid)
    await c.press(uid, start[-1]["message_id"], english["callback_data"])
    await bot_messages(c, uid, after)
    for t in p.texts[:2]:
        after = await last_seq(c, uid)
        await c.send_text(uid, t, **who)
        await bot_messages(c, uid, after)
    after = await last_seq(c, uid)
    await c.send_location(uid, *LOCATION, first_name=p.first_name)
    await bot_messages(c, uid, after)
    after = await last_seq(c, uid)
    await c.send_command(uid, "/operator", **who)
    await bot_messages(c, uid, after)
    for t in p.texts[2:]:
        after = await last_seq(c, uid)
        await c.send_text(uid, t, **who)
        await bot_messages(c, uid, after)


# --- (a) logs ---------------------------------------------------------------------------------


class Collect(logging.Handler):
    """Every record at INFO and above, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[str, str]] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        # The emulator plays Telegram's side: what it logs is not the bot service's.
        if record.name.startswith(("bot.devtools", "aiohttp.access")):
            return
        self.lines.append((f"log {record.name}", self.format(record)))


@contextmanager
def all_logs() -> Iterator[Collect]:
    root = logging.getLogger()
    handler, level = Collect(), root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def engine_log(stack) -> Path:
    return _tracker_path(stack.settings.tracker_store_url).parent / "engine.log"


async def test_logs_of_a_whole_conversation_hold_no_raw_id_name_or_text(
    stack, polling_bot: Bot
) -> None:
    person = MadeUp.new(polling_bot.secret_key, "logs")
    log_file = engine_log(stack)
    assert log_file.exists()
    offset = log_file.stat().st_size
    with all_logs() as collected:
        await converse(polling_bot, person)
        logging.getLogger("bot.telegram.adapter").info("probe %s", person.key)
    with log_file.open("rb") as f:
        f.seek(offset)
        engine_lines = f.read().decode("utf-8", "replace")
    places = collected.lines + [("engine.log", engine_lines)]
    lat, lon = LOCATION
    needles = {**person.needles(), "location": re.compile(rf"{lat:.3f}\d*\D+{lon:.3f}")}
    assert not leaks(needles, places), leaks(needles, places)
    # The capture works (it sees the service's loggers) and the engine's log is being written.
    assert any(person.key in line for _, line in collected.lines)
    assert log_file.stat().st_size > 0


# --- (b) the engine's tracker store ----------------------------------------------------------


def tracker_rows(path: Path) -> list[tuple[str, str]]:
    """Every value of every column of every table in the engine's SQLite tracker store."""
    out: list[tuple[str, str]] = []
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                out.append((f"tracker {table}", " | ".join(_text(v) for v in row)))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


async def test_tracker_store_holds_no_raw_telegram_id_or_name(polling_bot: Bot) -> None:
    person = MadeUp.new(polling_bot.secret_key, "tracker")
    await converse(polling_bot, person)
    rows = tracker_rows(polling_bot.tracker_db)
    mine = [r for r in rows if person.key in r[1]]
    assert mine, "the conversation is in the tracker store under the pseudonymous key"
    assert any(person.markers[0] in hay for _, hay in mine)  # texts are there, by design
    needles = {k: v for k, v in person.needles().items() if k in ("raw user/chat id",
               "first name", "username")}  # fmt: skip
    assert not leaks(needles, rows), leaks(needles, rows)


# --- (c) metrics, dashboard, audit log -------------------------------------------------------


async def test_metrics_dashboard_and_audit_log_hold_no_raw_id_name_or_text(
    polling_bot: Bot,
) -> None:
    bot = polling_bot
    person = MadeUp.new(bot.secret_key, "analytics")
    await converse(bot, person)
    sessions = make_sessionmaker(bot.engine)
    name = f"sup.{person.user_id % 100000}"
    secret = await enrolled_user(sessions, name, "supervisor")
    reply = "Operator here, zqvxanalyticsreplyq, I will help you."
    browser = Browser(bot.base)
    pages: list[tuple[str, str]] = []
    try:
        await browser.login(name, secret)
        async with sessions() as db:
            case_id = (
                await db.execute(
                    text("SELECT id FROM escalations WHERE user_key = :k"), {"k": person.key}
                )
            ).scalar_one()
        await browser.post(f"/console/cases/{case_id}/claim")
        after = await last_seq(bot.client, person.user_id)
        resp, _ = await browser.post(f"/console/cases/{case_id}/reply", {"text": reply})
        assert resp.status == 303
        await bot_messages(bot.client, person.user_id, after)
        resp, _ = await browser.post(f"/console/cases/{case_id}/close", {"outcome": "other"})
        assert resp.status == 303
        for path in ("/console/dashboard", "/console/audit", "/console/queue"):
            resp, body = await browser.get(path)
            assert resp.status == 200, path
            pages.append((path, body))
    finally:
        await browser.close()
    async with aiohttp.ClientSession() as http, http.get(bot.base + "/metrics") as resp:
        pages.append(("/metrics", await resp.text()))
    async with sessions() as db:
        audit = (
            await db.execute(text("SELECT actor, action, case_id, detail FROM audit_log"))
        ).all()
    pages.append(("audit_log table", "\n".join(" ".join(_text(v) for v in row) for row in audit)))
    needles = {**person.needles(), "operator reply": re.compile("zqvxanalyticsreplyq"),
               "pseudonymous key": re.compile(person.key)}  # fmt: skip
    assert not leaks(needles, pages), leaks(needles, pages)
    # They are about this case: its code and the reads, claim, reply and close are there.
    actions = {(row[1], row[2]) for row in audit}
    assert {("claim", case_id), ("reply", case_id), ("close", case_id)} <= actions
    assert "ctip_adapter_turn_seconds_count" in pages[-2][1]


# --- (d) /forget ---------------------------------------------------------------------------


async def database_rows(engine: AsyncEngine) -> list[tuple[str, str]]:
    """Every value of every column of every table of the bot's database, as text."""
    out: list[tuple[str, str]] = []
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        for name in names:
            for row in (await conn.execute(text(f'SELECT * FROM "{name}"'))).all():
                out.append((f"table {name}", " | ".join(_text(v) for v in row)))
    return out


async def test_forget_leaves_nothing_of_the_person_in_any_table_or_the_tracker_store(
    any_bot: Bot,
) -> None:
    bot = any_bot
    gone = MadeUp.new(bot.secret_key, "forget")
    stays = MadeUp.new(bot.secret_key, "stays")
    await converse(bot, gone)
    await converse(bot, stays)

    before = await database_rows(bot.engine) + tracker_rows(bot.tracker_db)
    assert leaks(gone.needles(), before), "the scan finds the person before /forget"

    after = await last_seq(bot.client, gone.user_id)
    await bot.client.send_command(gone.user_id, "/forget", first_name=gone.first_name)
    done = await bot_messages(bot.client, gone.user_id, after)
    assert done and texts(done)

    rows = await database_rows(bot.engine) + tracker_rows(bot.tracker_db)
    needles = {**gone.needles(), "pseudonymous key": re.compile(gone.key)}
    assert not leaks(needles, rows), leaks(needles, rows)
    # The scan can fail: the other person's data is all still there.
    kept = {**stays.needles(), "pseudonymous key": re.compile(stays.key)}
    found = {name for name, _ in (x.split(" in ", 1) for x in leaks(kept, rows))}
    assert {"pseudonymous key", "raw user/chat id", "text 2", "text 3"} <= found, found
    assert any(stays.key in hay for where, hay in rows if where.startswith("tracker"))


# --- errors ----------------------------------------------------------------------------------


async def test_database_errors_never_carry_row_values(tmp_path: Path) -> None:
    """A failed statement's exception (which the error handler logs with its traceback) names
    the SQL, never the values: with SQLAlchemy's default it would print the chat id and text."""
    from sqlalchemy.exc import DBAPIError

    from bot.storage.db import make_engine
    from bot.storage.models import TelegramChat

    url = await fresh_database("sqlite", tmp_path)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    person = MadeUp.new("test-secret-not-for-production", "dberr")
    try:
        async with sessions() as db, db.begin():
            db.add(TelegramChat(user_key=person.key, chat_id=person.user_id))
        with pytest.raises(DBAPIError) as caught:  # the same row again: a unique key breaks
            async with sessions() as db, db.begin():
                db.add(TelegramChat(user_key=person.key, chat_id=person.user_id))
        message = str(caught.value)
    finally:
        await engine.dispose()
    assert "tg_chats" in message  # the statement is named …
    assert not leaks({**person.needles(), "key": re.compile(person.key)}, [("error", message)])


async def test_a_message_the_database_cannot_store_is_answered_and_logged_without_its_text(
    webhook_pg_bot: Bot,
) -> None:
    """PostgreSQL refuses NUL characters in text. A message with one, while an operator holds
    the chat, must still reach the operator (it was lost with a database error, whose logged
    traceback carried the text); nothing of it may reach the logs."""
    from bot.console import accounts
    from bot.storage.cases import CaseStore
    from tests.console_helpers import PASSWORD

    bot = webhook_pg_bot
    person = MadeUp.new(bot.secret_key, "nul")
    c, uid = bot.client, person.user_id
    after = await last_seq(c, uid)
    await c.send_command(uid, "/operator", first_name=person.first_name)
    await bot_messages(c, uid, after)
    sessions = make_sessionmaker(bot.engine)
    operator = await accounts.create_user(sessions, "nul.operator", "operator", PASSWORD)
    store = CaseStore(sessions)
    async with sessions() as db:
        case_id = (
            await db.execute(
                text("SELECT id FROM escalations WHERE user_key = :k"), {"k": person.key}
            )
        ).scalar_one()
    await store.claim(case_id, operator.id)

    async def reached_the_operator() -> bool:
        lines = [m.text or "" for m in await store.transcript(case_id)]
        return any(f"help me {person.markers[0]}" in line for line in lines)

    with all_logs() as collected:
        await c.send_text(uid, f"help\x00 me {person.markers[0]}", first_name=person.first_name)
        await eventually(reached_the_operator)
        await asyncio.sleep(0.5)  # the turn's last log lines
    assert not leaks(person.needles(), collected.lines), leaks(person.needles(), collected.lines)
