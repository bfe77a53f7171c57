"""A terminal chat with the assistant (``make shell``), for trying it without Telegram.

It goes through the same engine, NLG and actions as Telegram will, with the language detected per
message the same way. Buttons are numbered; typing a number presses one.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from bot.config import ROOT
from bot.engine import EngineClient, EngineError
from bot.language import DEFAULT_LANGUAGE, detect
from bot.nlg import ResponseRenderer
from bot.responses import load_contacts, load_responses


async def chat(engine: EngineClient, stdin=sys.stdin, stdout=sys.stdout) -> None:
    """Read lines from ``stdin`` until EOF or /quit, print the bot's replies.

    When the engine fails, the person still gets the default answer with the hotline numbers,
    rendered locally from ``responses/``.
    """
    local = ResponseRenderer(load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge"))
    sender = f"shell-{uuid.uuid4().hex[:12]}"
    language: str | None = None  # unknown until the person writes
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
        language = language or DEFAULT_LANGUAGE
        try:
            replies = await engine.send(sender, text, {"language": language})
        except EngineError:
            print(f"bot: {local.render('utter_default', language)['text']}", file=stdout)
            continue
        buttons = []
        for reply in replies:
            if reply.get("text"):
                print(f"bot: {reply['text']}", file=stdout)
            for b in reply.get("buttons") or []:
                buttons.append(b)
                print(f"   [{len(buttons)}] {b['title']}", file=stdout)
