"""A terminal chat with the assistant (``make shell``), for trying it without Telegram.

It goes through the same engine, NLG and actions as Telegram will, with the language detected per
message the same way. Buttons are numbered; typing a number presses one.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from bot.engine import EngineClient, EngineError
from bot.language import DEFAULT_LANGUAGE, detect


async def chat(engine: EngineClient, stdin=sys.stdin, stdout=sys.stdout) -> None:
    """Read lines from ``stdin`` until EOF or /quit, print the bot's replies."""
    sender = f"shell-{uuid.uuid4().hex[:12]}"
    language = DEFAULT_LANGUAGE
    buttons: list[dict[str, str]] = []
    print("Type a message (az/ru/en). /quit to leave. Numbers press buttons.", file=stdout)
    loop = asyncio.get_running_loop()
    while True:
        print("> ", end="", file=stdout, flush=True)
        line = await loop.run_in_executor(None, stdin.readline)
        if not line or line.strip() == "/quit":
            return
        text = line.strip()
        if not text:
            continue
        if text.isdigit() and 0 < int(text) <= len(buttons):
            text = buttons[int(text) - 1]["payload"]
        else:
            language = detect(text, prior=language) or language
        try:
            replies = await engine.send(sender, text, {"language": language})
        except EngineError as exc:
            print(f"[engine unavailable: {exc}] In danger? Call 102 or 152.", file=stdout)
            continue
        buttons = []
        for reply in replies:
            if reply.get("text"):
                print(f"bot: {reply['text']}", file=stdout)
            for b in reply.get("buttons") or []:
                buttons.append(b)
                print(f"   [{len(buttons)}] {b['title']}", file=stdout)
