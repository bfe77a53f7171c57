"""Two processes take turns on one conversation through a Redis lock store (engine's venv).

Run by tests/test_engine_lock_store.py with the engine's Python, because the lock stores are
Rasa's classes. Each process enters the lock ``rounds`` times; inside it a shared Redis counter
is read, a turn is "processed", and the counter is written back, exactly the read-then-save of
Rasa's SQL tracker store. If two holders overlap, an update is lost. ``--slow`` widens the gap
between a lock store's read and its write, as a loaded machine does, so the race shows every run.

Prints one line: ``RACE {json}``: overlaps, lost updates, lock errors, rounds that still waited
for the lock after ``--seconds`` (stalled), and lock keys left behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
import uuid
from urllib.parse import urlsplit


def make_store(kind: str, url: str, prefix: str):  # noqa: ANN201 - Rasa's classes
    parts = urlsplit(url)
    options = dict(
        host=parts.hostname, port=parts.port or 6379, db=int(parts.path.strip("/") or 0),
        password=parts.password, key_prefix=prefix,
    )  # fmt: skip
    if kind == "atomic":
        from engine_ext.lock_store import AtomicRedisLockStore

        return AtomicRedisLockStore(**options)
    from rasa.core.lock_store import RedisLockStore

    return RedisLockStore(**options)


def slow_reads() -> None:
    """Every lock read takes 3 ms longer: the window between a read and its write."""
    from rasa.core.lock import TicketLock

    original = TicketLock.from_dict.__func__

    def from_dict(cls, data):  # noqa: ANN001, ANN202
        time.sleep(0.003)
        return original(cls, data)

    TicketLock.from_dict = classmethod(from_dict)


def worker(kind: str, url: str, prefix: str, conversation: str, rounds: int, seconds: float,
           slow: bool, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue) -> None:  # fmt: skip
    if slow:
        slow_reads()
    store = make_store(kind, url, prefix)
    red = store.red
    counter, inside = f"{prefix}:race:counter", f"{prefix}:race:inside"
    overlaps = errors = 0

    stalled = 0

    async def one_round() -> None:
        nonlocal overlaps
        async with store.lock(conversation, wait_time_in_seconds=0.001):
            if red.incr(inside) > 1:
                overlaps += 1
            value = int(red.get(counter) or 0)
            await asyncio.sleep(0.002)  # the turn
            red.set(counter, value + 1)
            red.decr(inside)

    async def run() -> None:
        nonlocal errors, stalled
        from rasa.core.lock_store import LockError

        start.wait()
        deadline = time.monotonic() + seconds
        for done in range(rounds):
            try:
                await asyncio.wait_for(one_round(), max(deadline - time.monotonic(), 0.001))
            except LockError:
                errors += 1
            except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not the builtin); never served
                stalled = rounds - done
                return

    asyncio.run(run())
    out.put({"overlaps": overlaps, "errors": errors, "stalled": stalled})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["rasa", "atomic"])
    parser.add_argument("redis_url")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=60.0, help="then the rest is stalled")
    parser.add_argument("--slow", action="store_true")
    args = parser.parse_args()
    prefix = "race" + uuid.uuid4().hex[:12]
    conversation = "person" + uuid.uuid4().hex[:8]
    start, out = multiprocessing.Event(), multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=worker,
            args=(
                args.kind,
                args.redis_url,
                prefix,
                conversation,
                args.rounds,
                args.seconds,
                args.slow,
                start,
                out,
            ),
        )
        for _ in range(args.processes)
    ]
    for proc in procs:
        proc.start()
    time.sleep(0.5)  # every process has imported Rasa and waits at the line
    start.set()
    results = [out.get(timeout=args.seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    store = make_store(args.kind, args.redis_url, prefix)
    red = store.red
    done = int(red.get(f"{prefix}:race:counter") or 0)
    errors = sum(r["errors"] for r in results)
    stalled = sum(r["stalled"] for r in results)
    report = {
        "overlaps": sum(r["overlaps"] for r in results),
        "lock_errors": errors,
        "stalled_rounds": stalled,
        "lost_updates": args.rounds * args.processes - errors - stalled - done,
        "locks_left": len(red.keys(store.key_prefix + "*")),
    }
    red.delete(f"{prefix}:race:counter", f"{prefix}:race:inside")
    print("RACE " + json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
