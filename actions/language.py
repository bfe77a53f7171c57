"""Changing the conversation's language on request."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from bot.language import LANGUAGES


class ActionChangeLanguage(Action):
    """Switch to the named language, or offer the three as buttons when none is named.

    The ``language`` slot records only explicit choices, so it outranks per-message detection
    (DESIGN.md §4). The confirmation passes ``language`` as an argument because the NLG call for
    this message happens before the slot event is applied.
    """

    def name(self) -> str:
        return "action_change_language"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        chosen = next(
            (
                str(e.get("value")).lower()
                for e in tracker.latest_message.get("entities", [])
                if e.get("entity") == "language" and str(e.get("value")).lower() in LANGUAGES
            ),
            None,
        )
        if chosen is None:
            dispatcher.utter_message(response="utter_ask_language")
            return []
        dispatcher.utter_message(response="utter_language_changed", language=chosen)
        return [SlotSet("language", chosen)]
