"""The ``ctip`` command: run the assistant, chat in a terminal.

``ctip run`` is what ``make run`` calls: it starts the bot service and the engine on the contract
ports (DESIGN.md §2) and stops both on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from bot.config import Settings
from bot.language import warm_up
from bot.shell import chat
from bot.stack import port_in_use, running_stack

log = logging.getLogger("ctip")

NO_TOKEN_HELP = """\
TELEGRAM_BOT_TOKEN is not set, so the assistant is not connected to Telegram.
Chat with it locally in another terminal:  make shell
(or set TELEGRAM_BOT_TOKEN and restart to serve Telegram)."""


async def _run(settings: Settings) -> None:
    warm_up()
    work_dir = settings.var_dir / "engine"
    async with running_stack(settings, engine_port=5005, work_dir=work_dir) as stack:
        log.info("bot service on %s, engine on %s", stack.bot_url, settings.engine_url)
        if not settings.telegram_token:
            print(NO_TOKEN_HELP, flush=True)
        print("Ready. Ctrl-C stops the engine and the service.", flush=True)
        await asyncio.Event().wait()


async def _shell(settings: Settings) -> None:
    warm_up()
    if port_in_use(5005):
        from bot.engine import EngineClient

        async with EngineClient(settings.engine_url, settings.rasa_token) as engine:
            if await engine.ready():
                await chat(engine)
                return
    print("Starting the engine (about a minute to load the model)…", flush=True)
    async with running_stack(
        settings, engine_port=5005, work_dir=settings.var_dir / "engine"
    ) as stack:
        await chat(stack.engine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the engine and the bot service")
    sub.add_parser("shell", help="chat with the assistant in this terminal")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings.from_env()
    Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
    try:
        if args.command == "run":
            asyncio.run(_run(settings))
        elif args.command == "shell":
            asyncio.run(_shell(settings))
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
