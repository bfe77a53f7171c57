"""`make bench` (console part): 20 people ask for a human at the same moment.

Measured in one run on the whole stack (emulator → PTB → engine/actions → database → console):
- trigger → console: from the person's `/operator` on Telegram to the case arriving on the
  operator's live queue (the Server-Sent Events stream the queue page uses);
- reply → delivery: from the operator's POST of a reply in the console to the message arriving
  in the person's Telegram chat (the emulator).
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pyotp
from sqlalchemy import select, update

from bot.config import Settings
from bot.console import accounts
from bot.devtools.emulator import running_emulator
from bot.privacy import pseudonymise
from bot.server import DB
from bot.stack import free_port, running_stack
from bot.storage.db import make_sessionmaker
from bot.storage.models import ConsoleUser, Escalation

PEOPLE = 20
PASSWORD = "Bench-Operator-Pass-1"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def login(http: aiohttp.ClientSession, base: str, secret: str) -> str:
    """Password and TOTP steps as a browser does them; returns the session's CSRF token."""
    async with http.get(base + "/console/login") as r:
        token = CSRF.search(await r.text()).group(1)  # type: ignore[union-attr]
    form = {"username": "bench.operator", "password": PASSWORD, "csrf_token": token}
    async with http.post(base + "/console/login", data=form) as r:
        token = CSRF.search(await r.text()).group(1)  # type: ignore[union-attr]
    form = {"code": pyotp.TOTP(secret).now(), "csrf_token": token}
    async with http.post(base + "/console/totp", data=form) as r:
        body = await r.text()
    return CSRF.search(body).group(1)  # type: ignore[union-attr]


async def watch_queue(
    http: aiohttp.ClientSession, base: str, seen: dict[int, float], ready: asyncio.Event
) -> None:
    async with http.get(base + "/console/queue/stream", timeout=None) as r:
        ready.set()
        async for raw in r.content:
            line = raw.decode().strip()
            if line.startswith("data:"):
                now = time.perf_counter()
                for item in json.loads(line[5:]):
                    seen.setdefault(item["id"], now)


async def run() -> None:
    work = Path(tempfile.mkdtemp(prefix="ctip-bench-console-"))
    async with running_emulator() as emu:
        settings = replace(
            Settings.from_env(),
            bot_port=free_port(),
            database_url=f"sqlite:///{work / 'bench.db'}",
            secret_key="bench-secret-not-for-production",
            telegram_token="900000002:bench-console",
            telegram_api_base_url=emu.url,
            staffed_hours="always",
        )
        async with running_stack(settings, engine_port=free_port(), work_dir=work) as stack:
            sessions = make_sessionmaker(stack.app[DB])
            user = await accounts.create_user(sessions, "bench.operator", "operator", PASSWORD)
            secret = pyotp.random_base32()
            async with sessions() as s:
                await s.execute(
                    update(ConsoleUser)
                    .where(ConsoleUser.id == user.id)
                    .values(totp_secret=secret, totp_last_step=0)
                )
                await s.commit()
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                base = stack.bot_url
                csrf = await login(http, base, secret)
                seen: dict[int, float] = {}
                ready = asyncio.Event()
                watcher = asyncio.create_task(watch_queue(http, base, seen, ready))
                await ready.wait()
                await asyncio.sleep(0.5)
                people = [9_100_000_000 + i for i in range(PEOPLE)]
                sent_at: dict[int, float] = {}

                async def ask(person: int) -> None:
                    sent_at[person] = time.perf_counter()
                    await emu.client.send_command(person, "/operator", language_code="en")

                await asyncio.gather(*(ask(p) for p in people))
                deadline = time.perf_counter() + 60
                while len(seen) < PEOPLE and time.perf_counter() < deadline:
                    await asyncio.sleep(0.05)
                async with sessions() as s:
                    rows = (await s.execute(select(Escalation.id, Escalation.user_key))).all()
                case_of = {key: cid for cid, key in rows}
                to_console = [
                    (seen[case_of[pseudonymise(p, settings.secret_key)]] - sent_at[p]) * 1000
                    for p in people
                    if case_of.get(pseudonymise(p, settings.secret_key)) in seen
                ]

                async def answer(person: int) -> float:
                    case_id = case_of[pseudonymise(person, settings.secret_key)]
                    headers = {"Accept": "application/json"}
                    async with http.post(
                        f"{base}/console/cases/{case_id}/claim",
                        data={"csrf_token": csrf},
                        headers=headers,
                    ) as r:
                        assert r.status in (200, 303), r.status
                    await emu.client.wait_for(person, count=2, timeout=30)  # queued, joined
                    after = max(e["seq"] for e in await emu.client.transcript(person))
                    start = time.perf_counter()
                    async with http.post(
                        f"{base}/console/cases/{case_id}/reply",
                        data={"csrf_token": csrf, "text": f"Hello {person}, I am here."},
                    ) as r:
                        assert r.status in (200, 303), r.status
                    await emu.client.wait_for(person, count=1, after=after, timeout=30)
                    return (time.perf_counter() - start) * 1000

                to_person = await asyncio.gather(*(answer(p) for p in people))
                watcher.cancel()
    print(f"Console under {PEOPLE} people asking for a human at once (one run)")
    print(f"{'measure':<44} {'p50':>8} {'p95':>8}  n")
    for name, values in (
        ("trigger (/operator) → case on the live queue", to_console),
        ("operator reply (POST) → in the person's chat", list(to_person)),
    ):
        print(f"{name:<44} {statistics.median(values):>6.0f}ms {percentile(values, 0.95):>6.0f}ms"
              f"  {len(values)}")  # fmt: skip


def main() -> None:
    asyncio.run(run())


if __name__ == "__main__":
    main()
