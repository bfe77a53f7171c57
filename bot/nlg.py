"""Render responses in the conversation's language: the engine's NLG endpoint, served at /nlg.

Rasa 3.6 POSTs ``{response, arguments, tracker, channel}`` for every ``utter_*`` it wants to say
and takes back ``{text, buttons}``. Rendering here rather than in ``domain.yml`` keeps every text
in one file per language and lets the language be decided per turn.
"""

from __future__ import annotations

import random
from typing import Any

from bot.language import DEFAULT_LANGUAGE, LANGUAGES
from bot.responses import PLACEHOLDER, Contact


def conversation_language(tracker: dict[str, Any] | None, arguments: dict[str, Any]) -> str:
    """Pick the language to answer in.

    Precedence: an action's explicit ``language`` argument (e.g. right after a language change,
    before the slot event is applied) > the ``language`` slot (set only by an explicit choice) >
    the language the client detected for the latest message (message metadata) > English.
    """
    candidates = [arguments.get("language")]
    if tracker:
        candidates.append((tracker.get("slots") or {}).get("language"))
        latest = tracker.get("latest_message") or {}
        candidates.append((latest.get("metadata") or {}).get("language"))
    for code in candidates:
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


class ResponseRenderer:
    """Fills the texts of ``responses/`` for one language, numbers from ``knowledge/``."""

    def __init__(
        self,
        responses: dict[str, dict[str, list[dict[str, Any]]]],
        contacts: dict[str, Contact],
        rng: random.Random | None = None,
    ) -> None:
        self.responses = responses
        self.contacts = contacts
        self._rng = rng or random.Random()

    def has(self, name: str) -> bool:
        return name in self.responses[DEFAULT_LANGUAGE]

    def _fill(self, text: str, values: dict[str, Any]) -> str:
        def repl(match: Any) -> str:
            key = match.group(1)
            if key.startswith("tel_"):
                contact = self.contacts.get(key[4:])
                if contact is not None:
                    return contact.number
            value = values.get(key)
            return "" if value is None else str(value)

        return PLACEHOLDER.sub(repl, text)

    def render(
        self, name: str, language: str, values: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Return ``{"text", "buttons"}`` for response ``name`` in ``language``.

        An unknown response name renders ``utter_default`` rather than failing: the person must
        still get an answer with the hotline numbers.
        """
        values = values or {}
        lang = language if language in LANGUAGES else DEFAULT_LANGUAGE
        table = self.responses[lang]
        variations = table.get(name) or table["utter_default"]
        variation = self._rng.choice(variations)
        buttons = [
            {"title": self._fill(b["title"], values), "payload": b["payload"]}
            for b in variation.get("buttons", [])
        ]
        return {"text": self._fill(variation.get("text", ""), values), "buttons": buttons}

    def render_for_engine(self, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one NLG request from the engine."""
        tracker = body.get("tracker") or {}
        arguments = body.get("arguments") or {}
        language = conversation_language(tracker, arguments)
        values = {**(tracker.get("slots") or {}), **arguments}
        return self.render(body.get("response", ""), language, values)
