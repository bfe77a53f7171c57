"""Alembic migrations match the models and run both ways (SQLite here, PostgreSQL in test_knowledge)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from bot.storage.schema import alembic_config, upgrade


def test_migrations_match_models_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    cfg = alembic_config(url)
    command.check(cfg)  # raises when the models need a migration that does not exist
    command.downgrade(cfg, "base")
    upgrade(url)
    command.check(cfg)
