"""Console settings from the environment.

Kept apart from :class:`bot.config.Settings` so the console's knobs (timeouts, proxy trust) live
next to the code that uses them; tests build a :class:`ConsoleConfig` directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ConsoleConfig:
    """``CONSOLE_IDLE_MINUTES`` (15), ``CONSOLE_TRUST_PROXY`` (0), ``CONSOLE_SECURE_COOKIES`` (0).

    The absolute session lifetime (8 h, a working shift) is fixed: a longer one only widens the
    window for a stolen cookie, a shorter one logs operators out mid-shift.
    """

    idle_minutes: int = 15
    absolute_hours: int = 8
    # Behind a reverse proxy: believe X-Forwarded-Proto / X-Forwarded-For from it.
    trust_proxy: bool = False
    # Force the Secure cookie attribute (when TLS ends somewhere we cannot see).
    secure_cookies: bool = False

    @classmethod
    def from_env(cls) -> ConsoleConfig:
        env = os.environ
        return cls(
            idle_minutes=int(env.get("CONSOLE_IDLE_MINUTES", "15")),
            trust_proxy=_flag(env.get("CONSOLE_TRUST_PROXY")),
            secure_cookies=_flag(env.get("CONSOLE_SECURE_COOKIES")),
        )
