"""What the whole-stack benchmarks share: start the bot service, read its figures, measure processes.

Why a module: `bench_telegram.py` and `bench_soak.py` both run `ctip run` as its own process
against a Bot API emulator and read the same `/proc` and `/metrics` figures; one copy keeps their
numbers comparable.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import aiohttp

from bot.config import ROOT
from bot.engine_process import _die_with_parent  # the guard the engine gets, for our children
from bot.nlg import ResponseRenderer
from bot.responses import load_contacts, load_responses

LANGUAGES = ("az", "ru", "en")
SECRET_KEY = "bench-secret-not-for-production"  # the service's; benchmarks derive people's keys
METRICS = {
    "ctip_engine_turn_seconds": "engine",
    "ctip_adapter_turn_seconds": "adapter_turn",
    "ctip_adapter_overhead_seconds": "overhead",
}
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (the same rule as ``bot.metrics``); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------------- processes


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (NaN once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return float("nan")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        return []


def descendants(pid: int) -> list[int]:
    """``pid``'s children, their children and so on (an engine may fork helpers)."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children(child))
    return found


def tree_rss_mb(pid: int) -> float:
    """RSS of ``pid`` and all its descendants."""
    return sum(rss_mb(p) for p in [pid, *descendants(pid)])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (NaN once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


# ------------------------------------------------------------------------------- the service


def service_env(
    work: Path,
    *,
    bot_port: int,
    engine_port: int,
    token: str,
    api_base_url: str,
    database_url: str | None = None,
) -> dict[str, str]:
    """Environment for `ctip run` in a scratch directory, talking to a Bot API at ``api_base_url``."""
    env = dict(os.environ)
    env.update(
        BOT_PORT=str(bot_port),
        RASA_URL=f"http://127.0.0.1:{engine_port}",
        DATABASE_URL=database_url or f"sqlite:///{work / 'bench.db'}",
        ENGINE_WORK_DIR=str(work / "engine"),
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_BASE_URL=api_base_url,
        SECRET_KEY=SECRET_KEY,
        PYTHONPATH=str(ROOT),
    )
    return env


def start_process(
    args: list[str], env: dict[str, str], log_path: Path
) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    """Start ``python args…`` from the repository with its output in ``log_path``.

    The child gets SIGTERM if this process dies (even by SIGKILL), so an interrupted benchmark
    leaves no service holding a port and a gigabyte of engine behind.
    """
    log = open(log_path, "wb")  # noqa: SIM115 - the caller closes it with the process
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    return proc, log


def stop_process(proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float = 60) -> None:
    """SIGTERM (``ctip run`` then stops its engine), SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


async def wait_ready(bot_url: str, proc: subprocess.Popen[bytes], timeout: float = 400) -> None:
    """Until the bot service answers ``/healthz`` with the engine loaded."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("the bot service exited; see its log")
            try:
                async with http.get(f"{bot_url}/healthz") as resp:
                    if resp.status == 200 and (await resp.json()).get("engine") == "ready":
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(1)
    raise TimeoutError("the stack did not become ready")


async def read_metrics(bot_url: str, last: int | None = None) -> dict[str, dict[str, float]]:
    """The bot service's ``/metrics`` summaries: ``{"engine": {"p50": ms, …, "count": n}, …}``.

    ``last`` restricts the quantiles to the last N turns (a benchmark's own); the counts are
    always totals since start.
    """
    params = {"last": str(last)} if last else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{bot_url}/metrics", params=params) as resp,
    ):
        text = await resp.text()
    figures: dict[str, dict[str, float]] = {short: {} for short in METRICS.values()}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        base, _, label = name.partition("{")
        if base.endswith("_count") and base.removesuffix("_count") in METRICS:
            figures[METRICS[base.removesuffix("_count")]]["count"] = float(value)
        elif base in METRICS and label.startswith('quantile="'):
            q = float(label.split('"')[1])
            figures[METRICS[base]][f"p{round(q * 100)}"] = float(value) * 1000
    return figures


def rendered_texts(names: tuple[str, ...]) -> dict[str, str]:
    """The adapter's own messages as a person sees them, in every language: text → name.

    Used to tell these apart from the engine's answers (e.g. "I saved your message", sent when
    the engine is slower than ENGINE_TIMEOUT).
    """
    renderer = ResponseRenderer(
        load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge")
    )
    return {
        renderer.render(name, lang)["text"].strip(): name for name in names for lang in LANGUAGES
    }
