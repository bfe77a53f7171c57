"""Database URLs and engines.

Why normalise URLs: DESIGN.md lets operators write ``sqlite:///var/ctip.db`` or
``postgresql://…``; our code is async throughout, so the URL is mapped to the async driver
(aiosqlite, asyncpg) in one place.

Why a start-up lock: every replica migrates the schema and reloads knowledge/ when it starts. On
PostgreSQL several replicas start at once (a deploy, a reboot) and those steps would race —
Alembic creating the same tables twice, one replica deleting knowledge rows another is
inserting. A PostgreSQL advisory lock makes them take turns; the later ones find the schema
current and reload the same rows. SQLite is one machine and one service: no lock needed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

CONNECT_TIMEOUT = 3.0  # seconds, PostgreSQL


def async_url(url: str) -> str:
    """Map a plain or sync database URL to its async-driver form."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets foreign keys and a busy timeout (several writers).

    ``hide_parameters``: a failed statement's exception otherwise lists its values — chat ids
    and message texts — and exceptions are logged with their tracebacks.
    """
    aurl = async_url(url)
    if aurl.startswith("sqlite"):
        engine = create_async_engine(aurl, connect_args={"timeout": 15}, hide_parameters=True)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - driver callback
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: still crash-safe (no corruption); a power cut may lose the last
            # transactions. Saves an fsync per commit, several per message on this path.
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    # pre-ping: a connection that died with a server restart is replaced, not handed out.
    # A short connect timeout (asyncpg's default is 60 s): with the server unreachable the
    # adapter gives up quickly and answers the person without the database.
    return create_async_engine(
        aurl,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"timeout": CONNECT_TIMEOUT},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


# An arbitrary constant naming "ctip start-up" among advisory locks ("ctip" in ASCII).
STARTUP_LOCK = 0x63746970


@asynccontextmanager
async def startup_lock(url: str) -> AsyncIterator[None]:
    """Hold PostgreSQL's advisory lock ``STARTUP_LOCK`` for the block (no-op on SQLite).

    A session-level lock on its own connection: PostgreSQL releases it if the process dies, so
    a crashed replica never blocks the others.
    """
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK})
                await conn.commit()
    finally:
        await engine.dispose()
