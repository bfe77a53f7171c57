"""Database URLs and engines.

Why normalise URLs: DESIGN.md lets operators write ``sqlite:///var/ctip.db`` or
``postgresql://…``; our code is async throughout, so the URL is mapped to the async driver
(aiosqlite, asyncpg) in one place.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine


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
    return create_async_engine(aurl, pool_pre_ping=True, hide_parameters=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)
