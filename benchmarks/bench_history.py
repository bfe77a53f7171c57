"""`make bench` (history part): does a turn get slower as the conversation grows?

Why: in the soak, reply latency drifted up over ten minutes at a steady load (p50 68 → 157 ms)
while the engine's CPU share rose and the bot service's did not. The suspect is the engine's
per-turn work over the whole conversation (Rasa 3.6 loads every event of the session, rebuilds
the tracker and computes the dialogue states of all of it). This isolates that: one
conversation of ``--turns`` turns, timed in blocks, and fresh conversations timed before and
after it as the control, all on the same engine and tracker store, in one run.

Read it as: if the long conversation's late blocks are slow while a fresh conversation after it
is as fast as one before it, the cost grows with the conversation, not with the store or time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bot.config import Settings
from bot.stack import free_port, running_stack

# A realistic loop of what a person asks; no emergency phrase (that would open cases).
SCRIPT = (
    "hello", "what are my rights", "they took my passport", "hotline numbers", "thank you",
    "where can I find a shelter", "Baku", "I need a lawyer", "what does the law say about "
    "forced labour", "ok",
)  # fmt: skip


async def timed_turns(stack, sender: str, count: int) -> list[float]:  # noqa: ANN001
    times = []
    for i in range(count):
        start = time.perf_counter()
        await stack.engine.send(sender, SCRIPT[i % len(SCRIPT)], {"language": "en"})
        times.append((time.perf_counter() - start) * 1000)
    return times


async def measure(turns: int, block: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = replace(
            Settings.from_env(), bot_port=free_port(), database_url=f"sqlite:///{tmp}/history.db"
        )
        async with running_stack(settings, engine_port=free_port(), work_dir=Path(tmp)) as stack:
            await timed_turns(stack, "warm-up", 20)
            before = await timed_turns(stack, "fresh-before", block)
            long = await timed_turns(stack, "long", turns)
            after = await timed_turns(stack, "fresh-after", block)
            tracker = await stack.engine.tracker("long")
    events = len(tracker.get("events") or [])
    base = statistics.median(before)
    print(f"turn time vs conversation length (one run; {block}-turn blocks; the long "
          f"conversation ends with {events} events in its tracker)")  # fmt: skip
    print(f"{'conversation':<28} {'turns':>9} {'p50 ms':>8} {'p95 ms':>8} {'p50 / fresh':>12}")

    def row(label: str, span: str, values: list[float]) -> None:
        p50 = statistics.median(values)
        p95 = sorted(values)[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"{label:<28} {span:>9} {p50:>8.1f} {p95:>8.1f} {p50 / base:>11.2f}x")

    row("fresh, before", f"1-{block}", before)
    for start in range(0, turns, block):
        row("long", f"{start + 1}-{start + block}", long[start : start + block])
    row("fresh, after the long one", f"1-{block}", after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--block", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(measure(args.turns, args.block))


if __name__ == "__main__":
    main()
