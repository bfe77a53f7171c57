"""The screening form's result: ILO indicators of forced labour and trafficking → a risk level.

Why this scoring: the ILO's indicators distinguish signs that on their own point strongly to
forced labour (restricted movement, violence, threats, retained documents, debt bondage,
deception) from those that matter in combination (isolation, withheld wages, abusive conditions,
excessive overtime, abuse of vulnerability). High risk: two strong signs, or one strong and two
others. The result is a prompt to talk to the hotline, never a legal finding.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import context, records
from actions.context import language_of
from bot.storage.cases import transcript_from_events

STRONG = (
    "ind_deception",
    "ind_restricted_movement",
    "ind_violence",
    "ind_threats",
    "ind_documents_retained",
    "ind_debt_bondage",
)
MEDIUM = (
    "ind_isolation",
    "ind_wages_withheld",
    "ind_abusive_conditions",
    "ind_excessive_overtime",
    "ind_abuse_of_vulnerability",
)
INDICATORS = STRONG + MEDIUM


def assess(answers: dict[str, bool | None]) -> tuple[int, str]:
    """Return (number of yes answers, risk level low | medium | high)."""
    strong = sum(bool(answers.get(k)) for k in STRONG)
    medium = sum(bool(answers.get(k)) for k in MEDIUM)
    if strong >= 2 or (strong >= 1 and medium >= 2):
        risk = "high"
    elif strong >= 1 or medium >= 2:
        risk = "medium"
    else:
        risk = "low"
    return strong + medium, risk


class ActionScreeningResult(Action):
    """Tell the person the result in plain words, record it, offer a human when risk is high."""

    def name(self) -> str:
        return "action_screening_result"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        answers = {k: tracker.get_slot(k) for k in INDICATORS}
        answered = sum(v is not None for v in answers.values())
        completed = answered == len(INDICATORS)
        score, risk = assess(answers)
        given = {k: v for k, v in answers.items() if v is not None}
        await records.keep(
            "a screening",
            lambda: ctx.repo.record_screening(tracker.sender_id, given, score, risk, completed),
        )
        if not completed and risk != "high":
            out = ctx.renderer.render("utter_screening_stopped", lang)
        else:
            out = ctx.renderer.render(f"utter_screening_{risk}", lang, {"score": score})
        dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
        if risk == "high":
            transcript = transcript_from_events(tracker.events)
            flags = ["screening_high", *(k for k, v in answers.items() if v)]
            await records.keep(
                "a case",
                lambda: ctx.repo.record_escalation(
                    tracker.sender_id,
                    "screening_high",
                    "high",
                    lang,
                    transcript=transcript,
                    risk_flags=flags,
                ),
            )
        return [SlotSet(k, None) for k in INDICATORS]
