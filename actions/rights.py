"""Victims' rights in plain language, each with a "tell me more" button."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import context
from actions.context import language_of, pick


class ActionRights(Action):
    """Without a chosen right: the list of rights. With one (button payload): its details,
    the provisions it rests on and the source, flagged when unverified."""

    def name(self) -> str:
        return "action_rights"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        ctx = context.get()
        lang = language_of(tracker)
        rights = await ctx.repo.rights()
        chosen = next(
            (
                e.get("value")
                for e in tracker.latest_message.get("entities") or []
                if e.get("entity") == "right_id"
            ),
            None,
        )
        unverified = ctx.renderer.render("text_unverified", lang)["text"]
        right = next((r for r in rights if r.id == chosen), None)
        if right is not None:
            provisions = {p.id: p for p in await ctx.repo.provisions()}
            law = "; ".join(
                f"{pick(provisions[i].texts.get('act'), lang)}, {provisions[i].article}"
                for i in right.law
                if i in provisions
            )
            out = ctx.renderer.render(
                "utter_right_detail",
                lang,
                {
                    "title": pick(right.texts.get("title"), lang),
                    "details": pick(right.texts.get("details"), lang),
                    "law": law or "—",
                    "source": right.source,
                    "unverified": "" if right.verified else f"\n{unverified}",
                },
            )
            dispatcher.utter_message(text=out["text"], buttons=out["buttons"])
            return []
        items = "\n".join(
            f"• {pick(r.texts.get('title'), lang)}: {pick(r.texts.get('summary'), lang)}"
            + ("" if r.verified else f" {unverified}")
            for r in rights
        )
        out = ctx.renderer.render("utter_rights_list", lang, {"items": items})
        buttons = [
            {
                "title": pick(r.texts.get("title"), lang),
                "payload": f'/ask_rights{{"right_id": "{r.id}"}}',
            }
            for r in rights
        ]
        dispatcher.utter_message(text=out["text"], buttons=buttons)
        return []
