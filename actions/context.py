"""What the actions share with the bot service: the database repository and the text renderer.

Why a module-level context: rasa-sdk instantiates action classes itself, without arguments. The
bot service configures this once at start-up (``bot.server.create_app``); tests configure it with
their own database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rasa_sdk import Tracker

from bot.nlg import ResponseRenderer, conversation_language
from bot.storage.repo import Repository


@dataclass
class ActionContext:
    repo: Repository
    renderer: ResponseRenderer


_context: ActionContext | None = None


def configure(repo: Repository, renderer: ResponseRenderer) -> None:
    global _context
    _context = ActionContext(repo, renderer)


def get() -> ActionContext:
    if _context is None:
        raise RuntimeError("actions.context.configure() was not called")
    return _context


def language_of(tracker: Tracker) -> str:
    """The conversation's language, by the same precedence as the NLG endpoint."""
    state: dict[str, Any] = {"slots": tracker.slots, "latest_message": tracker.latest_message}
    return conversation_language(state, {})


def pick(texts: dict[str, Any] | None, lang: str) -> str:
    """A knowledge text in ``lang`` (the checker guarantees all three exist)."""
    texts = texts or {}
    return str(texts.get(lang) or texts.get("en") or "")
