"""ctip-assistant bot service.

Kept import-light on purpose: the Rasa engine imports ``bot.textnorm`` through the
custom tokenizer in ``nlu_ext`` and must not pull in our service dependencies.
"""
