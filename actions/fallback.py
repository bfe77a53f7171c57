"""Low NLU confidence: a city typed after we asked for one, otherwise a clarifying question."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context, records
from actions.contacts import ActionContacts
from actions.context import language_of
from actions.places import city_from_message, city_question_asker
from actions.shelters import ActionShelter
from bot.storage.cases import transcript_from_events


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
        lang = language_of(tracker)
        out = context.get().renderer.render("utter_clarify", lang)
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        if consecutive_fallbacks(tracker) == REPEATED_FALLBACKS:
            # The bot keeps failing this person: offer a human rather than a third guess.
            repo, transcript = context.get().repo, transcript_from_events(tracker.events)
            await records.keep(
                "a case",
                lambda: repo.record_escalation(
                    tracker.sender_id, "repeated_fallback", "normal", lang, transcript=transcript
                ),
            )
            handoff = context.handoff_text(lang)
            dispatcher.utter_message(text=handoff["text"], buttons=handoff["buttons"])
        return []


REPEATED_FALLBACKS = 3


def consecutive_fallbacks(tracker: Tracker) -> int:
    """How many of the person's latest messages in a row the NLU could not place."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent != "nlu_fallback":
            break
        count += 1
    return count
