"""Login throttling, in the database so every replica sees the same counts.

Failures (wrong password or wrong TOTP code) are rows in ``console_login_attempts``. While a
username has ≥ 5 failures or a client address ≥ 20 in the last 15 minutes, further attempts are
refused without checking anything — with the same answer whether the account exists or not.
Refused attempts are not recorded, so the lock ends 15 minutes after the failures that caused it.
A fully successful login clears the username's failures.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import LoginAttempt

WINDOW = dt.timedelta(minutes=15)
MAX_PER_USERNAME = 5
MAX_PER_ADDRESS = 20
KEEP = dt.timedelta(days=1)  # rows older than this are pruned as new ones arrive
MESSAGE = "Too many failed attempts. Wait 15 minutes and try again."


def _key(value: str) -> str:
    return value.strip().lower()[:64]


async def is_blocked(
    db: AsyncSession, username: str, address: str, now: dt.datetime | None = None
) -> bool:
    since = (now or dt.datetime.now(dt.UTC)) - WINDOW
    by_user = await db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.username == _key(username), LoginAttempt.at >= since)
    )
    if by_user >= MAX_PER_USERNAME:
        return True
    by_address = await db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(LoginAttempt.address == address[:64], LoginAttempt.at >= since)
    )
    return by_address >= MAX_PER_ADDRESS


async def record_failure(
    db: AsyncSession, username: str, address: str, now: dt.datetime | None = None
) -> None:
    """Count a failure (the caller commits) and prune rows nobody will count again."""
    now = now or dt.datetime.now(dt.UTC)
    db.add(LoginAttempt(username=_key(username), address=address[:64], at=now))
    await db.execute(delete(LoginAttempt).where(LoginAttempt.at < now - KEEP))


async def clear(db: AsyncSession, username: str) -> None:
    """Forget a username's failures after it passed both factors."""
    await db.execute(delete(LoginAttempt).where(LoginAttempt.username == _key(username)))


async def failures(db: AsyncSession, username: str, address: str) -> int:
    """Recent failures for the username or the address (tests, diagnostics)."""
    since = dt.datetime.now(dt.UTC) - WINDOW
    return await db.scalar(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            or_(LoginAttempt.username == _key(username), LoginAttempt.address == address[:64]),
            LoginAttempt.at >= since,
        )
    )
