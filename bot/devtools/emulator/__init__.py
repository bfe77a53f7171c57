"""A local Telegram Bot API emulator for tests, benchmarks and a demo without a token.

Entry point and CLI: ``bot.devtools.telegram_emulator``.
"""

from bot.devtools.emulator.client import EmulatorClient, EmulatorError
from bot.devtools.emulator.model import ApiError
from bot.devtools.emulator.server import RunningEmulator, create_app, running_emulator
from bot.devtools.emulator.state import Emulator

__all__ = [
    "ApiError",
    "Emulator",
    "EmulatorClient",
    "EmulatorError",
    "RunningEmulator",
    "create_app",
    "running_emulator",
]
