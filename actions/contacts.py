"""Phone numbers and organisations for a need and a city, with unverified ones flagged."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of, pick
from actions.places import (
    city_buttons,
    city_from_message,
    city_namer,
    city_question_asker,
    organisation_lines,
)

# Which contacts answer which intent; the order of ``needs`` in knowledge/contacts.yml decides.
NEED_BY_INTENT = {
    "ask_hotline": "hotline",
    "emergency": "emergency",
    "ask_legal_aid": "legal_aid",
    "ask_shelter": "shelter",
    "documents_taken": "documents",
    "unpaid_wages": "wages",
}
# In danger nobody is asked a question first: the numbers, and local ones only if the city is known.
NEVER_ASK_CITY = frozenset({"emergency"})
NATIONWIDE = "all"
MAX_LOCAL = 3
NEAR_KM = 5.0


def contact_line(contact: Any, lang: str, unverified: str, where: str = "") -> str:
    """``📞 152 — Anti-trafficking hotline (24/7) [Baku] — note`` plus the unverified flag."""
    parts = [f"📞 {contact.number} — {pick(contact.texts.get('name'), lang)}"]
    if contact.hours:
        parts.append(f"({contact.hours})")
    if where:
        parts.append(f"[{where}]")
    note = pick(contact.texts.get("note"), lang)
    line = " ".join(parts) + (f" — {note}" if note else "")
    return line + ("" if contact.verified else f" {unverified}")


def is_nationwide(cities: list[str] | None) -> bool:
    """``cities: [all]`` (contacts) or no city at all (a national body) serves everyone."""
    return not cities or NATIONWIDE in cities


class ActionContacts(Action):
    """Numbers for the need behind the person's message (hotline by default), and for their city.

    National numbers always come first. A need is local when knowledge/ lists an organisation or
    a number for it that serves only some cities (legal aid, shelter …): then the organisations
    serving the person's city are added, or the nearest ones. The city comes from this message,
    then from the ``city`` slot; when it matters and is unknown, the person is asked with the
    same buttons as for shelters, and a bare typed city answers it (actions/fallback.py).
    """

    def name(self) -> str:
        return "action_contacts"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        intent = self._intent(tracker)
        need = NEED_BY_INTENT.get(intent, "hotline")
        city = city_from_message(tracker) or tracker.get_slot("city")
        known = {c.name: c for c in await ctx.repo.cities()}
        shown = city_namer(known, lang)
        unverified = ctx.renderer.render("text_unverified", lang)["text"]

        contacts = await ctx.repo.contacts(need) or await ctx.repo.contacts("hotline")
        organisations = await ctx.repo.organisations(need)
        local = any(not is_nationwide(c.cities) for c in contacts) or any(
            not is_nationwide(o.cities) for o in organisations
        )
        in_city = city if city in known else None

        lines = []
        for c in contacts:
            if is_nationwide(c.cities):
                lines.append(contact_line(c, lang, unverified))
            elif in_city is None:  # city unknown: say where the number works
                where = ", ".join(shown(n) for n in c.cities or [])
                lines.append(contact_line(c, lang, unverified, where))
            elif in_city in (c.cities or []):
                lines.append(contact_line(c, lang, unverified))
        out = ctx.renderer.render("utter_contacts", lang, {"items": "\n".join(lines)})
        text = out["text"]
        if local and in_city is not None:
            extra = await self._local_part(in_city, need, lang, known, unverified)
            text += f"\n\n{extra}" if extra else ""
        dispatcher.utter_message(text=text, buttons=out["buttons"])

        if not local or need in NEVER_ASK_CITY or in_city is not None:
            return [SlotSet("awaiting_city", False)] if tracker.get_slot("awaiting_city") else []
        ask = ctx.renderer.render("text_contacts_ask_city", lang)["text"]
        if city:  # named, but not a city we know
            unknown = ctx.renderer.render("text_contacts_city_unknown", lang, {"city": city})
            ask = unknown["text"] + "\n" + ask
        dispatcher.utter_message(text=ask, buttons=city_buttons(intent or "ask_hotline"))
        return [SlotSet("awaiting_city", True), SlotSet("city", None)]

    @staticmethod
    def _intent(tracker: Tracker) -> str:
        """This message's intent; for a bare city after our question, the question's intent."""
        intent = (tracker.latest_message.get("intent") or {}).get("name") or ""
        if intent not in NEED_BY_INTENT and tracker.get_slot("awaiting_city"):
            asker, asked_for = city_question_asker(tracker)
            if asker == "action_contacts" and asked_for:
                return asked_for
        return intent

    @staticmethod
    async def _local_part(
        city: str, need: str, lang: str, known: dict[str, Any], unverified: str
    ) -> str:
        """Organisations serving ``city`` for ``need``, else the nearest ones with distances;
        empty when knowledge/ has no organisation for the need (the numbers are the answer)."""
        ctx = context.get()
        shown = city_namer(known, lang)
        nearby = await ctx.repo.nearest(need, known[city].lat, known[city].lon)
        if not nearby:
            return ""
        here = [n for n in nearby if n.km < NEAR_KM]
        chosen, response = (
            (here, "text_contacts_local") if here else (nearby, "text_contacts_nearest")
        )
        phones = {c.id: c for c in await ctx.repo.contacts()}
        lines = organisation_lines(chosen[:MAX_LOCAL], lang, phones, unverified, shown, icon="🏢")
        items = "\n".join(lines)
        return ctx.renderer.render(response, lang, {"place": shown(city), "items": items})["text"]
