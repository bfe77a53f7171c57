"""Several replicas starting at once on one empty PostgreSQL database: each migrates the schema
and loads knowledge/ at start-up, so without serialisation they race (duplicate tables, primary
key clashes). All must come up healthy, and the knowledge tables must hold each entry once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from bot.config import ROOT
from bot.knowledge import read_knowledge
from bot.stack import free_port
from bot.storage.db import make_engine
from tests.db import postgres_url, reset_postgres
from tests.replicas import replica_env, start_replica, stop_replica, wait_healthy


async def test_three_replicas_start_at_once_on_an_empty_postgres(tmp_path: Path) -> None:
    url = postgres_url()
    await reset_postgres(url)  # empty: no schema, no knowledge
    ports = [free_port() for _ in range(3)]
    procs = [
        start_replica(
            replica_env(
                BOT_PORT=str(port),
                DATABASE_URL=url,
                SECRET_KEY="test-secret-not-for-production",
                RASA_URL=f"http://127.0.0.1:{free_port()}",  # no engine: not needed here
            ),
            tmp_path / f"replica-{port}.log",
        )
        for port in ports
    ]
    try:
        await asyncio.gather(
            *(
                wait_healthy(f"http://127.0.0.1:{p}", proc)
                for p, proc in zip(ports, procs, strict=True)
            )
        )
        logs = "\n".join((tmp_path / f"replica-{p}.log").read_text() for p in ports)
        assert "Traceback" not in logs, logs[-4000:]
    finally:
        codes = [stop_replica(proc) for proc in procs]
    assert codes == [0, 0, 0]  # SIGTERM stops a replica cleanly

    kb = read_knowledge(ROOT / "knowledge")
    expected = {
        "kb_contacts": len(kb.entries["contacts.yml"]),
        "kb_organisations": len(kb.entries["organisations.yml"]),
        "kb_rights": len(kb.entries["rights.yml"]),
        "kb_provisions": len(kb.entries["law.yml"]),
        "kb_cities": len(kb.cities),
    }
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            counts = {
                table: (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                for table in expected
            }
            versions = (await conn.execute(text("SELECT count(*) FROM alembic_version"))).scalar()
    finally:
        await engine.dispose()
    assert counts == expected
    assert versions == 1
