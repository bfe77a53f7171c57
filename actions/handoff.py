"""Requests for a human: a case in the operators' queue, with the conversation so far."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context, records
from actions.context import handoff_text, language_of, risk_flags
from bot.storage.cases import transcript_from_events

PRIORITY_BY_INTENT = {"emergency": "urgent", "human_handoff": "high"}


class ActionHandoff(Action):
    """Record (or raise the priority of) this person's open escalation.

    For an explicit request it also tells the person how to reach a human now; after an emergency
    it stays silent, because the emergency answer has just been given.
    """

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        intent = (tracker.latest_message.get("intent") or {}).get("name") or "human_handoff"
        priority = PRIORITY_BY_INTENT.get(intent, "normal")
        transcript, flags = transcript_from_events(tracker.events), risk_flags(tracker)
        case = await records.keep(
            "a case",
            lambda: ctx.repo.record_escalation(
                tracker.sender_id, intent, priority, lang, transcript=transcript, risk_flags=flags
            ),
        )
        if intent != "emergency":
            if case is not None and case.status == "assigned":
                out = ctx.renderer.render("text_case_joined", lang)
            else:
                out = handoff_text(lang)
            dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        return []
