"""Cities in a conversation, shared by the actions that answer "where": shelters and contacts.

Why one module: both actions ask "which city?" with the same buttons, take the city from the same
places (this message's entity, then the remembered slot), list organisations the same way (unverified
ones flagged), and a bare city typed after the question must reach the action that asked it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rasa_sdk import Tracker

from actions import context
from actions.context import pick
from bot.storage.repo import Nearby

CITY_BUTTONS = ("Bakı", "Gəncə", "Sumqayıt", "Mingəçevir", "Lənkəran", "Şəki", "Naxçıvan")
# Actions that ask for the city and take a bare typed city as the answer (see actions/fallback.py).
CITY_ASKERS = ("action_shelter", "action_contacts")


def city_from_message(tracker: Tracker) -> str | None:
    """The canonical city name the NLU found in this message, if any."""
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == "city" and entity.get("value"):
            return str(entity["value"])
    return None


def city_namer(known: dict[str, Any], lang: str) -> Callable[[str], str]:
    """The city's name in the conversation's language (the canonical name is Azerbaijani)."""

    def shown(name: str) -> str:
        city = known.get(name)
        return str((city.names or {}).get(lang) or name) if city else name

    return shown


def city_buttons(intent: str) -> list[dict[str, str]]:
    """One button per large city; the payload repeats ``intent`` so the same rule answers it."""
    return [
        {"title": name, "payload": f"/{intent}{json.dumps({'city': name}, ensure_ascii=False)}"}
        for name in CITY_BUTTONS
    ]


def city_question_asker(tracker: Tracker) -> tuple[str | None, str | None]:
    """Which action last asked for the city, and the intent of the message it was answering.

    The fallback needs both: a bare "Gəncə" is an answer to that action, about that need. Read
    from the conversation's events so that no extra slot is needed.
    """
    events = list(tracker.events or [])
    for i in range(len(events) - 1, -1, -1):
        event = events[i]
        if event.get("event") == "action" and event.get("name") in CITY_ASKERS:
            for earlier in reversed(events[:i]):
                if earlier.get("event") == "user":
                    intent = ((earlier.get("parse_data") or {}).get("intent") or {}).get("name")
                    return str(event["name"]), intent
            return str(event["name"]), None
    return None, None


def organisation_lines(
    nearby: list[Nearby],
    lang: str,
    phones: dict[str, Any],
    unverified: str,
    city_name: Callable[[str], str],
    icon: str = "🏠",
) -> list[str]:
    """``🏠 name — city (~km)``, what it offers, its number; unverified facts flagged."""
    lines = []
    for n in nearby:
        org = n.organisation
        line = f"{icon} {pick(org.texts.get('name'), lang)} — {city_name(n.city)}"
        if n.km >= 5:
            line += f" (~{n.km:.0f} {context.get().renderer.render('text_km', lang)['text']})"
        line += f"\n   {pick(org.texts.get('offers'), lang)}"
        if org.phone:
            contact = phones.get(org.phone)
            if contact is not None:
                line += f"\n   📞 {contact.number}" + ("" if contact.verified else f" {unverified}")
        if not org.verified:
            line += f"\n   {unverified}"
        lines.append(line)
    return lines
