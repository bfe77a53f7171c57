"""The engine's NLG client: Rasa's callback NLG, sending the conversation's state without its
event history.

Why: Rasa 3.6's ``CallbackNaturalLanguageGenerator`` posts the whole tracker, every event of the
session, for each response it asks for, and serialises it once more for a debug log line even
when debug logging is off. A turn then costs more the longer the conversation is:
``benchmarks/bench_history.py`` measured a turn at 200 messages 4.4 times slower than a fresh
one. Our NLG endpoint (``bot.nlg.ResponseRenderer.render_for_engine``) reads only the slots and
the latest message (for the language), so this sends the state at ``EventVerbosity.NONE``:
slots, latest message, active loop, latest action — constant in size.

Configured in both endpoints files as ``nlg: {type: engine_ext.nlg.StateOnlyNLG, url: …}``.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Text

from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
from rasa.core.nlg.callback import CallbackNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity
from rasa.shared.exceptions import RasaException
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)


class StateOnlyNLG(CallbackNaturalLanguageGenerator):
    """Callback NLG whose request carries the tracker's state, not its events."""

    def __init__(self, endpoint_config: EndpointConfig, domain: Domain | None = None) -> None:
        """Rasa builds a custom NLG as ``cls(endpoint_config=…, domain=…)``."""
        super().__init__(endpoint_config)

    async def generate(
        self,
        utter_action: Text,
        tracker: DialogueStateTracker,
        output_channel: Text,
        **kwargs: Any,
    ) -> Dict[Text, Any]:
        """The same request as Rasa's, with ``tracker`` at ``EventVerbosity.NONE``."""
        domain_responses = kwargs.pop("domain_responses", None)
        response_id = self.fetch_response_id(
            utter_action, tracker, output_channel, domain_responses
        )
        body = {
            "response": utter_action,
            "id": response_id,
            "arguments": kwargs,
            "tracker": tracker.current_state(EventVerbosity.NONE),
            "channel": {"name": output_channel},
        }
        response = await self.nlg_endpoint.request(
            method="post", json=body, timeout=DEFAULT_REQUEST_TIMEOUT
        )
        if isinstance(response, dict) and self.validate_response(response):
            return response
        raise RasaException("NLG web endpoint returned an invalid response.")
