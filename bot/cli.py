"""The ``ctip`` command: run the assistant, chat in a terminal, manage console accounts.

``ctip run`` is what ``make run`` calls: it starts the bot service and the engine on the contract
ports (DESIGN.md §2) and stops both on Ctrl-C. ``ctip serve`` is the bot service alone and
``ctip engine`` one Rasa engine, for the production profile where engines and replicas are
separate processes (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bot.config import Settings
from bot.language import warm_up
from bot.shell import chat
from bot.stack import port_in_use, running_stack

log = logging.getLogger("ctip")

DEMO_TOKEN = "100000001:local-demo"  # accepted by the local emulator only


def _engine_port(settings: Settings) -> int:
    return urlparse(settings.engine_url).port or 5005


async def _run(settings: Settings) -> None:
    """Engine + bot service; without a Telegram token, also the local Bot API emulator and its
    web chat, so a person can try the assistant through the same PTB code path as production."""
    warm_up()
    work_dir = Path(os.environ.get("ENGINE_WORK_DIR") or settings.var_dir / "engine")
    async with contextlib.AsyncExitStack() as stack:
        if not settings.telegram_token:
            from bot.devtools.emulator import running_emulator

            port = int(os.environ.get("EMULATOR_PORT", "8081"))
            emulator = await stack.enter_async_context(running_emulator(port=port))
            settings = replace(
                settings, telegram_token=DEMO_TOKEN, telegram_api_base_url=emulator.url
            )
            print(
                "TELEGRAM_BOT_TOKEN is not set: serving the local Telegram emulator instead.\n"
                f"Chat with the assistant in a browser: {emulator.url}/",
                flush=True,
            )
        running = await stack.enter_async_context(
            running_stack(settings, engine_port=_engine_port(settings), work_dir=work_dir)
        )
        log.info("bot service on %s, engine on %s", running.bot_url, settings.engine_url)
        print(
            f"Operator console: {running.bot_url}/console/ (first account: "
            "`.venv/bin/ctip user add NAME --role admin`)\n"
            "Ready. Ctrl-C stops the engine and the service.",
            flush=True,
        )
        await asyncio.Event().wait()


async def _serve(settings: Settings) -> None:
    """The bot service alone (production: one of several replicas behind a load balancer, with
    engines started separately, docs/deploy.md). Nothing is spawned; SIGTERM stops it cleanly."""
    from bot.server import create_app, start_site

    warm_up()
    runner = await start_site(create_app(settings), settings.bot_host, settings.bot_port)
    log.info(
        "bot service on http://%s:%s (engine at %s)",
        settings.bot_host,
        settings.bot_port,
        settings.engine_url,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


async def _shell(settings: Settings) -> None:
    warm_up()
    if port_in_use(_engine_port(settings)):
        from bot.engine import EngineClient

        async with EngineClient(settings.engine_url, settings.rasa_token) as engine:
            if await engine.ready():
                await chat(engine)
                return
    print("Starting the engine (about a minute to load the model)…", flush=True)
    async with running_stack(
        settings, engine_port=_engine_port(settings), work_dir=settings.var_dir / "engine"
    ) as stack:
        await chat(stack.engine)


def _engine() -> int:
    """``ctip engine``: one production engine (PostgreSQL tracker store, Redis lock store, NLG
    and actions at the replicas' balancer), configured by environment only (docs/deploy.md).

    The process *becomes* Rasa (exec): systemd or the container runtime then signals and
    watches the engine itself, with no wrapper in between to forward signals or hide a crash.
    """
    from bot.config import ROOT
    from bot.engine_process import (
        PRODUCTION_ENDPOINTS,
        engine_command,
        engine_env,
        production_env,
    )

    env = os.environ
    missing = [
        name for name in ("TRACKER_STORE_URL", "LOCK_STORE_URL", "BOT_URL") if not env.get(name)
    ]
    if missing:
        print(f"ctip engine needs {', '.join(missing)} (docs/deploy.md)", file=sys.stderr)
        return 2
    try:
        derived = production_env(env["TRACKER_STORE_URL"], env["LOCK_STORE_URL"], env["BOT_URL"])
        cmd = engine_command(
            endpoints=PRODUCTION_ENDPOINTS,
            host=env.get("ENGINE_HOST", "127.0.0.1"),
            port=int(env.get("ENGINE_PORT", "5005")),
            token=env.get("RASA_TOKEN") or None,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"ctip engine: {exc}", file=sys.stderr)
        return 2
    print(
        f"ctip engine: on {cmd[cmd.index('-i') + 1]}:{cmd[cmd.index('-p') + 1]}, bot service at "
        f"{derived['CTIP_ENGINE_BOT_URL']}, lock store redis://{derived['CTIP_ENGINE_LOCK_HOST']}:"
        f"{derived['CTIP_ENGINE_LOCK_PORT']}/{derived['CTIP_ENGINE_LOCK_DB']}; loading the model",
        file=sys.stderr,
        flush=True,
    )
    os.chdir(ROOT)
    os.execve(cmd[0], cmd, {**engine_env(), **derived})
    return 0  # not reached: exec replaced this process


def _kb(settings: Settings, action: str) -> int:
    """``ctip kb check`` / ``ctip kb load``: validate knowledge/, then (load) write it to the DB."""
    from bot.knowledge import load_into, read_knowledge

    kb = read_knowledge(settings.knowledge_dir)
    if kb.errors:
        for error in kb.errors:
            print(error, file=sys.stderr)
        print(f"{len(kb.errors)} problem(s) in knowledge/", file=sys.stderr)
        return 1
    if action == "check":
        counts = {file: len(entries) for file, entries in kb.entries.items()}
        print(f"knowledge/ is valid: {counts}, cities: {len(kb.cities)}")
        return 0
    from bot.storage.db import make_engine, make_sessionmaker, startup_lock
    from bot.storage.schema import upgrade

    async def load() -> dict[str, int]:
        engine = make_engine(settings.database_url)
        try:  # the replicas' start-up lock: not while one of them is loading too
            async with startup_lock(settings.database_url):
                await asyncio.to_thread(upgrade, settings.database_url)
                async with make_sessionmaker(engine)() as session:
                    return await load_into(session, kb)
        finally:
            await engine.dispose()

    print(f"loaded into the database: {asyncio.run(load())}")
    return 0


def _read_password(from_stdin: bool) -> str:
    """From stdin (scripts, no echo issue) or typed twice without echo."""
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise ValueError("The two passwords differ.")
    return first


def _user(settings: Settings, args: argparse.Namespace) -> int:
    """``ctip user add`` (the first admin, and any account) / ``ctip user list``."""
    from bot.console import accounts
    from bot.storage.db import make_engine, make_sessionmaker
    from bot.storage.schema import upgrade

    upgrade(settings.database_url)

    async def run(password: str | None) -> None:
        engine = make_engine(settings.database_url)
        sessions = make_sessionmaker(engine)
        try:
            if args.action == "add":
                user = await accounts.create_user(sessions, args.username, args.role, password)
                print(f"created {user.role} {user.username!r}.")
                print("The authenticator (TOTP) is set up at the first login, at /console/login.")
                return
            for user in await accounts.list_users(sessions):
                status = "active" if user.active else "deactivated"
                totp = "totp" if accounts.is_enrolled(user) else "no totp yet"
                print(f"{user.username}\t{user.role}\t{status}\t{totp}")
        finally:
            await engine.dispose()

    try:
        password = _read_password(args.password_stdin) if args.action == "add" else None
        asyncio.run(run(password))
    except ValueError as exc:  # AccountError is a ValueError
        print(exc, file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ctip", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the engine and the bot service")
    sub.add_parser("serve", help="start the bot service only (engines run separately)")
    sub.add_parser("engine", help="start one production engine (PostgreSQL + Redis, from env)")
    sub.add_parser("shell", help="chat with the assistant in this terminal")
    db = sub.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    kb = sub.add_parser("kb", help="knowledge base")
    kb.add_argument("action", choices=["check", "load"])
    user = sub.add_parser("user", help="console accounts")
    user_sub = user.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add", help="create an account (TOTP is set up at first login)")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["operator", "supervisor", "admin"])
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    user_sub.add_parser("list", help="list accounts")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request URL at INFO, and Bot API URLs contain the bot token.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "engine":  # before Settings: an engine host needs no SECRET_KEY or var/
        return _engine()
    settings = Settings.from_env()
    Path(settings.var_dir).mkdir(parents=True, exist_ok=True)
    if args.command == "kb":
        return _kb(settings, args.action)
    if args.command == "user":
        return _user(settings, args)
    if args.command == "db":
        from bot.storage.schema import upgrade

        upgrade(settings.database_url)
        print("database schema is up to date")
        return 0
    try:
        if args.command == "run":
            asyncio.run(_until_signalled(_run(settings)))
        elif args.command == "serve":
            asyncio.run(_until_signalled(_serve(settings)))
        elif args.command == "shell":
            asyncio.run(_until_signalled(_shell(settings)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\nstopped", file=sys.stderr)
    return 0


async def _until_signalled(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main``; SIGTERM (systemd, `kill`, a benchmark) cancels it like Ctrl-C, so the
    engine and the service are stopped by the same clean-up code."""
    task = asyncio.ensure_future(main)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main())
