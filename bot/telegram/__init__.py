"""The Telegram adapter: python-telegram-bot 22 in front of the engine (DESIGN.md §4)."""
