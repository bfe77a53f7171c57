"""Phone numbers for a need, from the knowledge base, with unverified ones flagged."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of, pick

# Which contacts answer which intent; the order of ``needs`` in knowledge/contacts.yml decides.
NEED_BY_INTENT = {
    "ask_hotline": "hotline",
    "emergency": "emergency",
    "ask_legal_aid": "legal_aid",
    "documents_taken": "documents",
    "unpaid_wages": "wages",
}


def contact_line(contact: Any, lang: str, unverified: str) -> str:
    """``📞 152 — Anti-trafficking hotline (24/7) — note`` plus the unverified flag."""
    parts = [f"📞 {contact.number} — {pick(contact.texts.get('name'), lang)}"]
    if contact.hours:
        parts.append(f"({contact.hours})")
    note = pick(contact.texts.get("note"), lang)
    line = " ".join(parts) + (f" — {note}" if note else "")
    return line + ("" if contact.verified else f" {unverified}")


class ActionContacts(Action):
    """List the numbers for the need behind the person's message (hotline by default)."""

    def name(self) -> str:
        return "action_contacts"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        need = NEED_BY_INTENT.get(intent or "", "hotline")
        contacts = await ctx.repo.contacts(need) or await ctx.repo.contacts("hotline")
        unverified = ctx.renderer.render("text_unverified", lang)["text"]
        items = "\n".join(contact_line(c, lang, unverified) for c in contacts)
        out = ctx.renderer.render("utter_contacts", lang, {"items": items})
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        return []
