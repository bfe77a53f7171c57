"""Bot service replicas as production runs them: ``ctip serve`` processes, configured by env only.

Why subprocesses and not ``create_app`` in the test's loop: the production profile is several
processes that share nothing but PostgreSQL and Redis; in one process they would share module
state (the actions' context, metrics) and hide exactly the bugs these tests look for.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from bot.config import ROOT


def replica_env(**values: str) -> dict[str, str]:
    """The environment of one replica: this checkout's code, nothing inherited that configures
    the service (a developer's own DATABASE_URL or token must not leak into the test)."""
    ours = {
        "BOT_HOST", "BOT_PORT", "RASA_URL", "RASA_TOKEN", "DATABASE_URL", "SECRET_KEY",
        "TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "TELEGRAM_WEBHOOK_URL",
        "TELEGRAM_WEBHOOK_SECRET", "TRACKER_STORE_URL", "REDIS_URL", "KB_AUTOLOAD",
        "FLOOD_LIMIT", "FLOOD_WINDOW", "STAFFED_HOURS", "ENGINE_TIMEOUT", "LOCK_STORE_URL",
        "BOT_URL", "ENGINE_HOST", "ENGINE_PORT",
    }  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env["PYTHONPATH"] = str(ROOT)
    env.update(values)
    return env


def start_replica(env: dict[str, str], log_file: Path) -> subprocess.Popen[bytes]:
    """``ctip serve`` (as ``python -m bot.cli serve``, so this checkout's code runs)."""
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll ``/healthz`` until it answers 200; fail early when the process died."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"replica {url} exited with code {proc.returncode}")
            try:
                async with http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(5)) as r:
                    if r.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(f"replica {url} not healthy after {timeout:.0f}s")


def stop_replica(proc: subprocess.Popen[bytes], grace: float = 15.0) -> int | None:
    """SIGTERM (what systemd sends), then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
