"""A whitespace tokenizer whose tokens are Turkic-lowercased and folded.

Why: the same Azerbaijani word arrives as ``şəhərdə``, ``seherde`` or ``sheherde``. Folding every
token (see ``bot.textnorm.fold``) before featurisation makes the word and char n-gram features of
all spellings identical, so training data in one spelling teaches the model the others. Token
offsets still point into the original text, so entity values are extracted as typed and then
normalised by the synonym mapper.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.training_data.message import Message

from bot.textnorm import fold


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False)
class FoldingWhitespaceTokenizer(WhitespaceTokenizer):
    """Whitespace tokenizer emitting folded token texts (offsets unchanged)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return WhitespaceTokenizer.get_default_config()

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens = super().tokenize(message, attribute)
        for token in tokens:
            folded = fold(token.text)
            token.text = folded
            token.lemma = folded
        return tokens
