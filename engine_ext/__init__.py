"""Code the Rasa 3.6 engine loads at run time (Python 3.10, the engine's venv).

It must import only what the engine's venv has: Rasa and its dependencies, never our service.
"""
