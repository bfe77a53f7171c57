"""What the case page shows: transcript lines, case facts, screening answers, canned replies.

Kept apart from the handlers so the page and its live stream describe a case the same way.
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.config import ROOT
from bot.language import LANGUAGES
from bot.responses import load_responses
from bot.storage.models import CaseMessage, Escalation, Screening

AUTHOR_LABELS = {
    "person": "Person",
    "bot": "Bot",
    "operator": "Operator",
    "note": "Internal note",
    "system": "System",
}
DELIVERY_LABELS = {
    "pending": "sending…",
    "delivered": "delivered",
    "failed": "failed — not delivered",
    "blocked": "not delivered — the person blocked the bot",
}
OUTCOME_LABELS = {
    "referred_shelter": "Referred to a shelter",
    "referred_legal_aid": "Referred to legal aid",
    "referred_police": "Referred to the police",
    "information_given": "Information given",
    "no_response": "No response from the person",
    "not_trafficking": "Not a trafficking case",
    "duplicate": "Duplicate",
    "other": "Other",
}
PURGED = "[text deleted after the retention period]"
CANNED_PREFIX = "text_canned_"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def when(value: dt.datetime | None) -> str:
    value = _aware(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def line(message: CaseMessage, names: dict[int, str]) -> dict[str, Any]:
    """One transcript line for the template and the stream (text escaped by whoever shows it)."""
    label = AUTHOR_LABELS.get(message.author, message.author)
    if message.author in ("operator", "note") and message.operator_id in names:
        label = f"{label} · {names[message.operator_id]}"
    delivery = message.delivery if message.author == "operator" else None
    return {
        "id": message.id,
        "author": message.author,
        "label": label,
        "text": message.text if message.text is not None else PURGED,
        "time": when(message.created_at),
        "delivery": delivery,
        "delivery_label": DELIVERY_LABELS.get(delivery or "", delivery or ""),
    }


def facts(case: Escalation, names: dict[int, str]) -> dict[str, Any]:
    """The case's state as the page header and the stream's ``case`` event show it."""
    return {
        "id": case.id,
        "code": case.code or "",
        "status": case.status,
        "priority": case.priority,
        "language": case.language,
        "reason": case.reason,
        "risk_flags": list(case.risk_flags or []),
        "assignee": names.get(case.assigned_to, "") if case.assigned_to else "",
        "legal_hold": bool(case.legal_hold),
        "outcome": case.outcome or "",
        "created": when(case.created_at),
        "claimed": when(case.claimed_at),
        "closed": when(case.closed_at),
    }


async def latest_screening(sessions: async_sessionmaker, user_key: str) -> Screening | None:
    async with sessions() as db:
        return await db.scalar(
            select(Screening)
            .where(Screening.user_key == user_key)
            .order_by(Screening.created_at.desc(), Screening.id.desc())
            .limit(1)
        )


def screening_rows(screening: Screening | None) -> list[tuple[str, str]]:
    """Indicator → yes / no / not answered, in a stable order."""
    if screening is None:
        return []
    labels = {True: "yes", False: "no", None: "not answered"}
    return [
        (key.replace("_", " "), labels.get(value, str(value)))
        for key, value in sorted((screening.answers or {}).items())
    ]


@functools.cache
def _canned(responses_dir: Path) -> dict[str, list[tuple[str, str]]]:
    responses = load_responses(responses_dir)
    return {
        lang: [
            (name[len(CANNED_PREFIX) :].replace("_", " "), variations[0].get("text", ""))
            for name, variations in responses[lang].items()
            if name.startswith(CANNED_PREFIX)
        ]
        for lang in LANGUAGES
    }


def canned_replies(settings: object, first: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Canned replies per language, the case's language first (az/ru/en in responses/*.yml)."""
    responses_dir = Path(getattr(settings, "responses_dir", ROOT / "responses"))
    by_language = _canned(responses_dir)
    order = [first, *[lang for lang in LANGUAGES if lang != first]]
    return [(lang, by_language.get(lang, [])) for lang in order if lang in by_language]
