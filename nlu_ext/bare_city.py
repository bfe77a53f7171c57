"""A message that is only a city name is an answer to "which city?", never an intent of its own.

Why: after the bot asks for the city, people type just "Gəncə", "Баку" or "in Ganja". A short
message like that has almost no intent features, so DIET guesses with high confidence from a few
characters (``Гянджа`` came out as ``affirm`` at 1.0, ``Gəncə`` as ``goodbye``), the
FallbackClassifier has nothing to catch, and the person got "how can I help?" instead of the
shelters of their city. ``action_fallback`` already routes a bare city to the action that asked;
this component makes sure such a message reaches it: when the only content of the message is one
``city`` entity (plus filler words like "in", "в", "город"), the intent becomes ``nlu_fallback``.

Runs last, after EmergencyPriority: a bare city name is not a report of danger (and the bot
service's safety net checks every message for danger phrases before the engine anyway).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text, Type

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import (
    ENTITIES,
    ENTITY_ATTRIBUTE_END,
    ENTITY_ATTRIBUTE_START,
    ENTITY_ATTRIBUTE_TYPE,
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message

from bot.textnorm import fold

# Words that may stand next to a bare city in an answer, folded (bot.textnorm.fold) like tokens.
FILLERS = frozenset(
    fold(word)
    for word in (
        # en
        "in", "at", "near", "from", "the", "city", "of", "i", "am", "i'm", "im", "please",
        # ru
        "в", "во", "из", "город", "городе", "г", "г.", "около", "рядом", "с", "я", "пожалуйста",
        # az
        "şəhəri", "şəhər", "şəhərində", "şəhərdə", "yaxın", "mən", "zəhmət", "olmasa",
    )
)  # fmt: skip
PUNCTUATION = ".,!?;:()\"'«»—-"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class BareCityAnswer(GraphComponent, IntentClassifier):
    """Set ``nlu_fallback`` for messages that consist of one city and filler words only."""

    @classmethod
    def required_components(cls) -> List[Type]:
        return [IntentClassifier, EntityExtractorMixin]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"entity": "city", "intent": "nlu_fallback"}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self.entity = str(config["entity"])
        self.intent = str(config["intent"])

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "BareCityAnswer":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            if is_bare(message.get(TEXT) or "", message.get(ENTITIES) or [], self.entity):
                message.set(
                    INTENT,
                    {INTENT_NAME_KEY: self.intent, PREDICTED_CONFIDENCE_KEY: 1.0},
                    add_to_output=True,
                )
        return messages


def is_bare(text: str, entities: List[Dict[Text, Any]], entity_type: str = "city") -> bool:
    """True when ``text`` is one ``entity_type`` entity and nothing but filler words around it."""
    spans = [e for e in entities if e.get(ENTITY_ATTRIBUTE_TYPE) == entity_type]
    if len(spans) != 1 or len(entities) != 1:
        return False
    start, end = spans[0].get(ENTITY_ATTRIBUTE_START), spans[0].get(ENTITY_ATTRIBUTE_END)
    if not isinstance(start, int) or not isinstance(end, int):
        return False
    rest = (text[:start] + " " + text[end:]).split()
    return all(fold(w.strip(PUNCTUATION)) in FILLERS for w in rest if w.strip(PUNCTUATION))
