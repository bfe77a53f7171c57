"""Where to find a shelter: by shared location, by named city, or ask for the city."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of, pick

CITY_BUTTONS = ("Bakı", "Gəncə", "Sumqayıt", "Mingəçevir", "Lənkəran", "Şəki", "Naxçıvan")
MAX_SHOWN = 4


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _city_from_message(tracker: Tracker) -> str | None:
    for entity in tracker.latest_message.get("entities") or []:
        if entity.get("entity") == "city" and entity.get("value"):
            return str(entity["value"])
    return None


class ActionShelter(Action):
    """Shelters and assistance centres near the person.

    Location wins over a city (it is more precise); a city named in this message wins over one
    remembered from earlier. With neither, the person is asked for the city, with buttons for the
    largest ones, and told they can share their location.
    """

    def name(self) -> str:
        return "action_shelter"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        lat, lon = _float(tracker.get_slot("latitude")), _float(tracker.get_slot("longitude"))
        city = _city_from_message(tracker) or tracker.get_slot("city")
        known = {c.name: c for c in await ctx.repo.cities()}

        def shown(name: str) -> str:
            """The city's name in the conversation's language (canonical is Azerbaijani)."""
            c = known.get(name)
            return str((c.names or {}).get(lang) or name) if c else name

        if lat is None or lon is None:
            if not city:
                out = ctx.renderer.render("utter_ask_city", lang)
                buttons = [
                    {"title": name, "payload": f'/ask_shelter{{"city": "{name}"}}'}
                    for name in CITY_BUTTONS
                ]
                dispatcher.utter_message(text=out["text"], buttons=buttons)
                return [SlotSet("awaiting_city", True)]
            if city not in known:
                out = ctx.renderer.render("utter_city_unknown", lang, {"city": city})
                dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
                return [SlotSet("awaiting_city", True), SlotSet("city", None)]
            lat, lon = known[city].lat, known[city].lon
        nearby = await ctx.repo.nearest("shelter", lat, lon)
        phones = {c.id: c for c in await ctx.repo.contacts()}  # one query, not one per shelter
        unverified = ctx.renderer.render("text_unverified", lang)["text"]
        lines = []
        for n in nearby[:MAX_SHOWN]:
            org = n.organisation
            line = f"🏠 {pick(org.texts.get('name'), lang)} — {shown(n.city)}"
            if n.km >= 5:
                line += f" (~{n.km:.0f} km)"
            line += f"\n   {pick(org.texts.get('offers'), lang)}"
            if org.phone:
                contact = phones.get(org.phone)
                if contact is not None:
                    line += f"\n   📞 {contact.number}" + (
                        "" if contact.verified else f" {unverified}"
                    )
            if not org.verified:
                line += f"\n   {unverified}"
            lines.append(line)
        place = shown(city) if city else ctx.renderer.render("text_your_location", lang)["text"]
        out = ctx.renderer.render(
            "utter_shelters", lang, {"place": place, "items": "\n".join(lines)}
        )
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        return [
            SlotSet("awaiting_city", False),
            SlotSet("latitude", None),
            SlotSet("longitude", None),
        ]
