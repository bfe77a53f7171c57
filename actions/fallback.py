"""Low NLU confidence: a city typed after we asked for one, otherwise a clarifying question."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.contacts import ActionContacts
from actions.context import language_of
from actions.places import city_from_message, city_question_asker
from actions.shelters import ActionShelter


class ActionFallback(Action):
    """After "which city?", a bare city name ("Gəncə", "в Гяндже") is an answer, not noise.

    It goes to the action that asked (shelters or contacts, read from the conversation's events);
    shelters when that cannot be told, as before contacts asked too.
    """

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if tracker.get_slot("awaiting_city") and city_from_message(tracker):
            asker, _ = city_question_asker(tracker)
            action = ActionContacts() if asker == "action_contacts" else ActionShelter()
            return await action.run(dispatcher, tracker, domain)
        out = context.get().renderer.render("utter_clarify", language_of(tracker))
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        return []
