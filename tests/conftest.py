"""Shared fixtures. The engine starts once per test session (loading a model takes ~70 s)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import ROOT, Settings
from bot.devtools.emulator import RunningEmulator, running_emulator
from bot.responses import load_contacts, load_responses
from bot.stack import RunningStack, free_port, running_stack
from bot.storage.schema import upgrade
from tests.pgcluster import PrivateCluster, private_cluster

TEST_BOT_TOKEN = "424242001:test-token"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def responses() -> dict:
    return load_responses(ROOT / "responses")


@pytest.fixture(scope="session")
def contacts() -> dict:
    return load_contacts(ROOT / "knowledge")


@pytest_asyncio.fixture(scope="session")
async def emulator() -> AsyncIterator[RunningEmulator]:
    """The local Bot API emulator the session's bot service polls, as it would poll Telegram."""
    async with running_emulator() as running:
        yield running


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, emulator: RunningEmulator) -> Settings:
    var = tmp_path_factory.mktemp("var")
    return replace(
        Settings(),
        bot_port=free_port(),
        database_url=f"sqlite:///{var / 'test.db'}",
        secret_key="test-secret-not-for-production",
        telegram_token=TEST_BOT_TOKEN,
        telegram_api_base_url=emulator.url,
        engine_timeout=5.0,
        staffed_hours="always",
    )


@pytest_asyncio.fixture(scope="session")
async def stack(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RunningStack]:
    """The real bot service and the real Rasa engine with the trained model.

    The engine calls the actions through a fault proxy (``stack.action_proxy``, passing by
    default) so that fault tests can make the action server slow, failing or unreachable.
    """
    work = tmp_path_factory.mktemp("engine")
    async with running_stack(
        settings, engine_port=free_port(), work_dir=work, action_proxy=True
    ) as running:
        yield running


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[PrivateCluster]:
    """A private PostgreSQL cluster (tests/pgcluster.py) with our schema, for one test that
    stops and starts it."""
    with private_cluster() as running:
        await asyncio.to_thread(upgrade, running.url)
        yield running
