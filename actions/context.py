"""What the actions share with the bot service: the database repository and the text renderer.

Why a module-level context: rasa-sdk instantiates action classes itself, without arguments. The
bot service configures this once at start-up (``bot.server.create_app``); tests configure it with
their own database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

from bot.nlg import ResponseRenderer, conversation_language
from bot.staffed_hours import StaffedHours
from bot.storage.repo import Repository


@dataclass
class ActionContext:
    repo: Repository
    renderer: ResponseRenderer
    hours: StaffedHours = field(default_factory=lambda: StaffedHours.parse("always"))


_context: ActionContext | None = None


def configure(
    repo: Repository, renderer: ResponseRenderer, hours: StaffedHours | None = None
) -> None:
    global _context
    _context = ActionContext(repo, renderer, hours or StaffedHours.parse("always"))


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


RISK_BY_INTENT = {
    "emergency": "danger",
    "documents_taken": "documents",
    "unpaid_wages": "wages",
    "forced_labour": "forced_labour",
    "sexual_exploitation": "sexual_exploitation",
}


def risk_flags(tracker: Tracker) -> list[str]:
    """What the person said that an operator should see first (from the intents so far)."""
    flags: list[str] = []
    for event in tracker.events:
        if event.get("event") == "user":
            flag = RISK_BY_INTENT.get(
                ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            )
            if flag and flag not in flags:
                flags.append(flag)
    return flags


def handoff_text(lang: str) -> dict[str, Any]:
    """ "An operator will write here" in staffed hours; otherwise when, and the 24/7 phone."""
    ctx = get()
    if ctx.hours.staffed():
        return ctx.renderer.render("text_case_queued", lang)
    return ctx.renderer.render("text_case_after_hours", lang, {"hours": ctx.hours.describe()})
