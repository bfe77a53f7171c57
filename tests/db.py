"""Test databases: a fresh SQLite file, and the PostgreSQL server `.ci/run` starts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.knowledge import load_into, read_knowledge
from bot.storage.db import make_engine, make_sessionmaker
from bot.storage.repo import Repository
from bot.storage.schema import upgrade


def postgres_url() -> str:
    """TEST_POSTGRES_URL, or skip — except in CI, where a missing server is a failure."""
    url = os.environ.get("TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("TEST_POSTGRES_URL is not set in CI (.ci/run starts PostgreSQL)")
        pytest.skip("TEST_POSTGRES_URL not set (scripts/start-postgres.sh prints one)")
    return url


async def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def fresh_database(kind: str, tmp: Path) -> str:
    """A migrated, empty database of ``kind`` (sqlite | postgresql); returns its URL."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'ctip.db'}"
    else:
        url = postgres_url()
        await reset_postgres(url)
    await asyncio.to_thread(upgrade, url)
    return url


async def loaded_repository(url: str, knowledge_dir: Path) -> tuple[Repository, object]:
    """Load knowledge/ into ``url``; return a repository and the engine (dispose it)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    kb = read_knowledge(knowledge_dir)
    async with sessions() as session:
        await load_into(session, kb)
    return Repository(sessions), engine


def redis_url() -> str:
    """TEST_REDIS_URL, or skip — except in CI, where a missing server is a failure."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("TEST_REDIS_URL is not set in CI (.ci/run starts Redis)")
        pytest.skip("TEST_REDIS_URL not set (scripts/start-redis.sh prints one)")
    return url
