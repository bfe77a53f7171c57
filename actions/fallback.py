"""Low NLU confidence: a city typed after we asked for one, otherwise a clarifying question."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of
from actions.shelters import ActionShelter, _city_from_message


class ActionFallback(Action):
    """After "which city?", a bare city name ("Gəncə", "в Гяндже") is an answer, not noise."""

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if tracker.get_slot("awaiting_city") and _city_from_message(tracker):
            return await ActionShelter().run(dispatcher, tracker, domain)
        out = context.get().renderer.render("utter_clarify", language_of(tracker))
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        return []
