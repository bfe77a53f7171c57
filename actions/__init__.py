"""Custom actions (rasa-sdk), served by the bot service at ``/webhook``.

Why in-process rather than ``rasa run actions``: one fewer process and port to run and watch,
and the actions share the bot's settings, database and renderer. The executor is rasa-sdk's own,
so the wire format is exactly what the engine expects.
"""
