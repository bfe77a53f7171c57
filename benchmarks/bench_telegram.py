"""`make bench` (Telegram part): the adapter's cost over the engine alone, under 1, 10, 50 users.

The bot service runs as `ctip run` in its own process (so its RSS is its own), polling the local
Bot API emulator like it would poll Telegram; the engine is its child. This process plays the
people: each simulated user sends a scripted conversation through the emulator and waits for
the bot's answer before the next message. In the same run, the same scripts go straight to the
engine's REST channel, so the adapter's overhead is a ratio of medians measured side by side.

Counted per message: the replies the engine gives to that text (from the direct run) — fewer
in the chat means a lost reply, more means a duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.common import (
    children,
    percentile,
    read_metrics,
    rendered_texts,
    rss_mb,
    service_env,
    start_process,
    stop_process,
    wait_ready,
)
from bot.devtools.emulator import running_emulator
from bot.engine import EngineClient
from bot.language import detect
from bot.stack import free_port

SCRIPTS = {
    "en": ["hello", "my employer took my passport", "where can I find a shelter in Baku?",
           "what are my rights?", "thank you"],
    "ru": ["здравствуйте", "работодатель забрал мой паспорт", "где найти приют в Баку?",
           "какие у меня права?", "спасибо"],
    "az": ["salam", "işəgötürən pasportumu götürüb", "Bakıda sığınacaq harada var?",
           "hüquqlarım nədir?", "təşəkkür edirəm"],
}  # fmt: skip
TOKEN = "900000001:bench-token"
ROUNDS = 2  # each user runs its script this many times (more samples for the medians)


async def engine_direct(engine: EngineClient, users: int) -> tuple[list[float], dict[str, int]]:
    """Each user runs its script straight against the engine; returns latencies and reply counts."""
    latencies: list[float] = []
    counts: dict[str, int] = {}

    async def one(i: int) -> None:
        lang = ("en", "ru", "az")[i % 3]
        sender = f"bench-direct-{uuid.uuid4().hex[:10]}"
        for text in SCRIPTS[lang] * ROUNDS:
            start = time.perf_counter()
            replies = await engine.send(sender, text, {"language": detect(text) or lang})
            latencies.append((time.perf_counter() - start) * 1000)
            counts[text] = max(counts.get(text, 0), len(replies))

    await asyncio.gather(*(one(i) for i in range(users)))
    return latencies, counts


async def through_telegram(
    client, users: int, expected: dict[str, int], base_id: int
) -> dict[str, Any]:
    """Each user runs its script through the emulator, waiting for the engine's real answer.

    The adapter's fallback messages (engine slower than ENGINE_TIMEOUT) are counted apart: they
    are neither the answer nor a duplicate of it.
    """
    fallbacks = set(rendered_texts(("text_tg_engine_down", "text_tg_late_reply")))
    latencies: list[float] = []
    lost = 0

    async def one(i: int) -> None:
        nonlocal lost
        lang = ("en", "ru", "az")[i % 3]
        user = base_id + i
        after = 0
        for text in SCRIPTS[lang] * ROUNDS:
            start = time.perf_counter()
            await client.send_text(user, text, language_code=lang)
            answers = 0
            deadline = start + 60
            while answers < expected[text]:
                try:
                    got = await client.wait_for(
                        user, count=1, after=after, timeout=max(0.1, deadline - time.perf_counter())
                    )
                except TimeoutError:
                    lost += expected[text] - answers
                    break
                after = max(e["seq"] for e in got)
                answers += len([e for e in got if e["plain_text"] not in fallbacks])
            else:
                latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(users)))
    wall = time.perf_counter() - start
    await asyncio.sleep(1.0)  # late duplicates would arrive now
    answers = fallback = 0
    for i in range(users):
        for e in await client.transcript(base_id + i):
            if e["direction"] == "out":
                if e["plain_text"] in fallbacks:
                    fallback += 1
                else:
                    answers += 1
    want = ROUNDS * sum(
        expected[t] for i in range(users) for t in SCRIPTS[("en", "ru", "az")[i % 3]]
    )
    return {
        "latencies": latencies,
        "lost": lost,
        "dup": max(0, answers - want),
        "fallback": fallback,
        "wall": wall,
    }


async def inside(bot_url: str, last: int) -> dict[str, float]:
    """The bot service's own figures (``/metrics``) over this level's turns, in ms."""
    figures = await read_metrics(bot_url, last)
    return {
        f"{short}_{label}": figures[short][label]
        for short in ("engine", "overhead")
        for label in ("p50", "p95")
        if label in figures[short]
    }


async def run(levels: list[int]) -> None:
    work = Path(tempfile.mkdtemp(prefix="ctip-bench-tg-"))
    async with running_emulator() as emu:
        bot_port, engine_port = free_port(), free_port()
        env = service_env(
            work, bot_port=bot_port, engine_port=engine_port, token=TOKEN, api_base_url=emu.url
        )
        proc, log = start_process(["-m", "bot.cli", "run"], env, work / "service.log")
        try:
            await wait_ready(f"http://127.0.0.1:{bot_port}", proc)
            engine = EngineClient(f"http://127.0.0.1:{engine_port}", timeout=30)
            client = emu.client
            await engine_direct(engine, 3)  # warm-up, not measured
            await through_telegram(client, 3, (await engine_direct(engine, 3))[1], 8_000_000_000)
            rss_idle = rss_mb(proc.pid)
            rows = []
            for n, users in enumerate(levels):
                direct, expected = await engine_direct(engine, users)
                start = time.perf_counter()
                await engine_direct(engine, users)
                direct_wall = time.perf_counter() - start
                tg = await through_telegram(client, users, expected, 8_100_000_000 + n * 1000)
                tg["inside"] = await inside(f"http://127.0.0.1:{bot_port}", users * 5 * ROUNDS)
                rows.append((users, direct, direct_wall, tg))
            rss_busy = rss_mb(proc.pid)
            engine_pids = children(proc.pid)
            engine_rss = sum(rss_mb(p) for p in engine_pids)
            await engine.close()
        finally:
            stop_process(proc, log)
    print(
        f"Telegram adapter vs engine alone (same run, same scripts: {5 * ROUNDS} messages per user)"
    )
    print(f"{'users':>5}  {'engine p50/p95 ms':>18}  {'adapter p50/p95 ms':>19}  "
          f"{'p50 overhead':>12}  {'turns/s eng|tg':>15}  {'lost':>4}  {'dup':>3}  "
          f"{'fallback msgs':>13}")  # fmt: skip
    for users, direct, direct_wall, tg in rows:
        turns = users * 5 * ROUNDS
        d50, d95 = statistics.median(direct), percentile(direct, 0.95)
        lat = tg["latencies"]
        t50, t95 = (statistics.median(lat), percentile(lat, 0.95)) if lat else (float("nan"),) * 2
        print(
            f"{users:>5}  {d50:>8.0f} / {d95:<7.0f}  {t50:>8.0f} / {t95:<8.0f}  "
            f"{(t50 / d50 - 1) * 100:>+11.0f}%  {turns / direct_wall:>6.1f} | "
            f"{turns / tg['wall']:<6.1f}  {tg['lost']:>4}  {tg['dup']:>3}  {tg['fallback']:>13}"
        )
    print()
    print("Inside the bot service (/metrics over each level's turns): the adapter's own time")
    print("per turn (update received → replies handed to Telegram, minus the engine call)")
    print(
        f"{'users':>5}  {'engine p50/p95 ms':>18}  {'adapter-own p50/p95 ms':>23}  {'p50 ratio':>9}"
    )
    for users, _, _, tg in rows:
        f = tg["inside"]
        print(
            f"{users:>5}  {f.get('engine_p50', float('nan')):>8.1f} / {f.get('engine_p95', float('nan')):<7.1f}"
            f"  {f.get('overhead_p50', float('nan')):>10.1f} / {f.get('overhead_p95', float('nan')):<10.1f}"
            f"  {f.get('overhead_p50', float('nan')) / f.get('engine_p50', float('nan')) * 100:>8.1f}%"
        )
    print(f"bot service RSS: {rss_idle:.0f} MB after warm-up, {rss_busy:.0f} MB after the runs; "
          f"engine RSS {engine_rss:.0f} MB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", default="1,10,50", help="comma-separated levels")
    args = parser.parse_args()
    asyncio.run(run([int(x) for x in args.users.split(",")]))


if __name__ == "__main__":
    main()
