"""Let the emergency intent win whenever the classifier gives it a real chance.

Why: the costs are lopsided. Answering a non-urgent message with the emergency numbers costs the
person one extra message; missing someone who is locked in or being moved right now may cost far
more. So when DIET gives ``emergency`` at least ``threshold`` probability — even if another intent
scored higher, or the FallbackClassifier asked to clarify — the message is treated as an emergency.
The threshold was set from that reasoning (a one-in-four chance of danger is enough to show the
numbers), not tuned on the held-out split; `make eval` shows what it costs in false alarms.

Runs after DIETClassifier and FallbackClassifier. The reported confidence stays the classifier's
own emergency probability, and ``intent_ranking`` is left untouched for analysis.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Text, Type

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
)
from rasa.shared.nlu.training_data.message import Message

logger = logging.getLogger(__name__)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class EmergencyPriority(GraphComponent, IntentClassifier):
    """Promote ``intent`` to the prediction when its probability reaches ``threshold``."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [IntentClassifier]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"intent": "emergency", "threshold": 0.25}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.intent = str(config["intent"])
        self.threshold = float(config["threshold"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "EmergencyPriority":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            current = message.get(INTENT) or {}
            if current.get(INTENT_NAME_KEY) == self.intent:
                continue
            ranking = message.get(INTENT_RANKING_KEY) or []
            score = next(
                (
                    r.get(PREDICTED_CONFIDENCE_KEY, 0.0)
                    for r in ranking
                    if r.get(INTENT_NAME_KEY) == self.intent
                ),
                0.0,
            )
            if score >= self.threshold:
                logger.debug(
                    "promoting %s (%.3f) over %s",
                    self.intent,
                    score,
                    current.get(INTENT_NAME_KEY),
                )
                message.set(
                    INTENT,
                    {INTENT_NAME_KEY: self.intent, PREDICTED_CONFIDENCE_KEY: score},
                    add_to_output=True,
                )
        return messages
