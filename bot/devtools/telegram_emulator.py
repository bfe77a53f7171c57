"""A local Telegram Bot API emulator: ``python -m bot.devtools.telegram_emulator``.

Why our own: tests and benchmarks need Telegram's real answers (its error texts, 429 with
retry_after, 48-hour delete rule, webhook retries) without a network or a token, and ``make run``
needs a way to chat with the bot locally. The implementation lives in ``bot.devtools.emulator``;
this module is the stable import path and the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from bot.devtools.emulator import (
    ApiError,
    Emulator,
    EmulatorClient,
    EmulatorError,
    RunningEmulator,
    create_app,
    running_emulator,
)

__all__ = [
    "ApiError",
    "Emulator",
    "EmulatorClient",
    "EmulatorError",
    "RunningEmulator",
    "create_app",
    "running_emulator",
    "main",
]


async def _serve(host: str, port: int, webhook_parallel: bool) -> None:
    emulator = Emulator(webhook_parallel=webhook_parallel)
    async with running_emulator(host, port, emulator) as emu:
        print(f"Telegram emulator: chat page {emu.url}/", flush=True)
        print(f"Bot API base URL (TELEGRAM_API_BASE_URL): {emu.bot_api_base}", flush=True)
        print("Any token like 123456:test works. Ctrl-C stops.", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument(
        "--webhook-parallel",
        action="store_true",
        help="post to a webhook over max_connections connections at once, as Telegram does "
        "(each chat's updates still one after another); default one update at a time",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.webhook_parallel))


if __name__ == "__main__":
    main()
