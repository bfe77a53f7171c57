"""The bot service as a child process (`ctip serve`) that a test can SIGKILL like a crash."""

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


class ServiceProcess:
    """One `ctip serve` run; ``env`` is added to this process's environment."""

    def __init__(self, env: dict[str, str], port: int, log_file: Path) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_PORT": str(port), **env}
        self.port = port
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 90.0) -> ServiceProcess:
        """Spawn it and wait until it serves (its start-up sets the webhook first)."""
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot.cli", "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"ctip serve exited with {self.proc.returncode}: {self.log()}"
                    )
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise TimeoutError(f"ctip serve not up after {timeout:.0f}s: {self.log()}")

    def kill(self) -> None:
        """SIGKILL: no clean-up code runs, exactly like a crash or the OOM killer."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL when it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        """The tail of its log (for failure messages; it holds no message text at INFO)."""
        return self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
