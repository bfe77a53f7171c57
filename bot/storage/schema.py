"""Bring a database to the newest schema with Alembic (``ctip db upgrade``, tests, ``make run``)."""

from __future__ import annotations

from alembic.config import Config

from alembic import command
from bot.config import ROOT


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Run migrations up to ``revision``. Synchronous: call it outside a running event loop."""
    command.upgrade(alembic_config(database_url), revision)
