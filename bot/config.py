"""Settings from the environment, with the embedded defaults `make run` relies on.

Why one frozen object: every module reads the same values, tests build their own ``Settings``
with other ports and paths instead of patching globals.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _secret_key(var_dir: Path) -> str:
    """Return SECRET_KEY, generating and keeping one in ``var/`` on first run when unset."""
    env = os.environ.get("SECRET_KEY")
    if env:
        return env
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


@dataclass(frozen=True)
class Settings:
    """Runtime configuration; see DESIGN.md §2 for the contract of each variable."""

    root: Path = ROOT
    bot_host: str = "127.0.0.1"
    bot_port: int = 8080
    engine_url: str = "http://127.0.0.1:5005"
    rasa_token: str | None = None
    database_url: str = f"sqlite:///{ROOT / 'var' / 'ctip.db'}"
    telegram_token: str | None = None
    telegram_api_base_url: str | None = None
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: str | None = None
    secret_key: str = field(default="", repr=False)
    engine_timeout: float = 5.0
    # Seconds before an update claimed but not finished is taken over (its process died).
    telegram_claim_timeout: float = 120.0
    # The engine's SQL tracker store, so /forget can erase a conversation (set by running_stack).
    tracker_store_url: str | None = None
    retention_days: int = 30
    # Operators (issue 5): when they are at their desks, and where alerts go.
    staffed_hours: str = "Mon-Fri 09:00-18:00"
    staffed_tz: str = "Asia/Baku"
    alert_after_minutes: float = 5.0
    operators_chat_id: int | None = None
    console_url: str = "http://127.0.0.1:8080"
    # Updates acknowledged while the database was down, until processed (bot/telegram/spool.py).
    spool_dir: Path | None = None
    # Production profile (docs/deploy.md): Redis for limits shared by the replicas.
    redis_url: str | None = None
    flood_limit: int = 20  # messages per person per flood_window seconds
    flood_window: float = 60.0

    @property
    def responses_dir(self) -> Path:
        return self.root / "responses"

    @property
    def knowledge_dir(self) -> Path:
        return self.root / "knowledge"

    @property
    def var_dir(self) -> Path:
        return self.root / "var"

    @classmethod
    def from_env(cls) -> Settings:
        """Read the process environment (values documented in README.md)."""
        env = os.environ
        var_dir = ROOT / "var"
        return cls(
            bot_host=env.get("BOT_HOST", "127.0.0.1"),
            bot_port=int(env.get("BOT_PORT", "8080")),
            engine_url=env.get("RASA_URL", "http://127.0.0.1:5005").rstrip("/"),
            rasa_token=env.get("RASA_TOKEN") or None,
            database_url=env.get("DATABASE_URL", f"sqlite:///{var_dir / 'ctip.db'}"),
            telegram_token=env.get("TELEGRAM_BOT_TOKEN") or None,
            telegram_api_base_url=env.get("TELEGRAM_API_BASE_URL") or None,
            telegram_webhook_url=env.get("TELEGRAM_WEBHOOK_URL") or None,
            telegram_webhook_secret=env.get("TELEGRAM_WEBHOOK_SECRET") or None,
            secret_key=_secret_key(var_dir),
            engine_timeout=float(env.get("ENGINE_TIMEOUT", "5")),
            telegram_claim_timeout=float(env.get("TELEGRAM_CLAIM_TIMEOUT", "120")),
            tracker_store_url=env.get("TRACKER_STORE_URL") or None,
            retention_days=int(env.get("RETENTION_DAYS", "30")),
            staffed_hours=env.get("STAFFED_HOURS", "Mon-Fri 09:00-18:00"),
            staffed_tz=env.get("STAFFED_TZ", "Asia/Baku"),
            alert_after_minutes=float(env.get("ALERT_AFTER_MINUTES", "5")),
            operators_chat_id=int(env["OPERATORS_CHAT_ID"])
            if env.get("OPERATORS_CHAT_ID")
            else None,
            console_url=env.get("CONSOLE_URL", "http://127.0.0.1:8080").rstrip("/"),
            spool_dir=Path(env["SPOOL_DIR"]) if env.get("SPOOL_DIR") else None,
            redis_url=env.get("REDIS_URL") or None,
            flood_limit=int(env.get("FLOOD_LIMIT", "20")),
            flood_window=float(env.get("FLOOD_WINDOW", "60")),
        )
