"""Custom Rasa NLU components. Imported by the engine (Python 3.10, rasa 3.6) only."""
