"""Where to find a shelter: by shared location, by named city, or ask for the city."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of
from actions.places import city_buttons, city_from_message, city_namer, organisation_lines

MAX_SHOWN = 4


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
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
        city = city_from_message(tracker) or tracker.get_slot("city")
        known = {c.name: c for c in await ctx.repo.cities()}
        shown = city_namer(known, lang)

        if lat is None or lon is None:
            if not city:
                out = ctx.renderer.render("utter_ask_city", lang)
                dispatcher.utter_message(text=out["text"], buttons=city_buttons("ask_shelter"))
                return [SlotSet("awaiting_city", True)]
            if city not in known:
                out = ctx.renderer.render("utter_city_unknown", lang, {"city": city})
                dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
                return [SlotSet("awaiting_city", True), SlotSet("city", None)]
            lat, lon = known[city].lat, known[city].lon
        nearby = await ctx.repo.nearest("shelter", lat, lon)
        phones = {c.id: c for c in await ctx.repo.contacts()}  # one query, not one per shelter
        unverified = ctx.renderer.render("text_unverified", lang)["text"]
        lines = organisation_lines(nearby[:MAX_SHOWN], lang, phones, unverified, shown)
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
