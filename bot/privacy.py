"""Pseudonymous ids: what every log line, engine tracker and table uses instead of Telegram ids.

Why HMAC-SHA256 with SECRET_KEY: the same person always maps to the same key (conversations and
escalations stay linked), the key cannot be reversed or recomputed from a Telegram id without the
secret, and rotating the secret severs every link at once.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "u_"


def pseudonymise(telegram_id: int | str, secret_key: str) -> str:
    """``u_`` + 32 hex characters (128 bits) of HMAC-SHA256(secret, "tg:<id>")."""
    if not secret_key:
        raise ValueError("SECRET_KEY is empty: refusing to pseudonymise with no secret")
    digest = hmac.new(secret_key.encode(), f"tg:{telegram_id}".encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest[:32]
