"""Console accounts: argon2 passwords, TOTP second factor, roles.

Why these choices: argon2id (argon2-cffi's ``PasswordHasher``, with its current default
parameters; old hashes are upgraded at the next login) is the OWASP recommendation for password
storage; TOTP (pyotp) works with any authenticator app and needs no phone number, which matters
for a hotline whose staff should not be reachable through it.

Enrolment state without an extra column: a user is *enrolled* once a code has been accepted,
i.e. ``totp_last_step`` is set. Before that, ``totp_secret`` holds the pending secret shown at
first login (kept across reloads so a scanned QR code stays valid). ``reset_totp`` clears both.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import hmac
import re
import secrets
import string

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.console import audit
from bot.storage.models import ConsoleSession, ConsoleUser

ROLES = ("operator", "supervisor", "admin")
ISSUER = "ctip-assistant"
MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 is happy with more, but nobody types a megabyte at a login form
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
TOTP_WINDOW = 1  # one 30 s step either side: clock drift and typing time

_hasher = PasswordHasher()


class AccountError(ValueError):
    """A request the account rules refuse; the message is fit to show to the admin."""


class WrongPassword(AccountError):
    """The current password given to change it was wrong (counted like a failed login)."""


@functools.cache
def dummy_hash() -> str:
    """A hash of nothing anyone knows: unknown usernames are verified against it so a login
    takes as long whether the account exists or not."""
    return _hasher.hash(secrets.token_urlsafe(32))


def normalise_username(username: str) -> str:
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME.match(name):
        raise AccountError(
            "A username is 2–64 characters: letters, digits, and . _ @ - "
            "(starting with a letter or digit)."
        )
    return name


def check_password_policy(password: str) -> None:
    """At least 12 characters and not all of one kind (only letters, only digits …)."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"The password must be at least {MIN_PASSWORD} characters long.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"The password must be at most {MAX_PASSWORD} characters long.")
    classes = [
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ]
    if sum(classes) < 2:
        raise AccountError(
            "The password must mix at least two kinds of characters "
            "(lower case, upper case, digits, symbols)."
        )


def generate_password() -> str:
    """A one-time password for a new account (shown to the admin once)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(16))
        try:
            check_password_policy(password)
        except AccountError:
            continue
        return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(user: ConsoleUser, password: str) -> bool:
    """Check ``password``; upgrade the stored hash when the hasher's parameters changed
    (the caller commits)."""
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return True


async def find_user(db: AsyncSession, username: str) -> ConsoleUser | None:
    return await db.scalar(
        select(ConsoleUser).where(ConsoleUser.username == normalise_username(username))
    )


async def authenticate(db: AsyncSession, username: str, password: str) -> ConsoleUser | None:
    """The active user with this username and password, or None — in about the same time
    either way (a dummy hash is checked for unknown or inactive users)."""
    user = await find_user(db, username)
    if user is None or not user.active or len(password) > MAX_PASSWORD:
        with contextlib.suppress(VerificationError):
            await asyncio.to_thread(_hasher.verify, dummy_hash(), password[:MAX_PASSWORD])
        return None
    # argon2 takes tens of milliseconds by design: off the event loop.
    return user if await asyncio.to_thread(verify_password, user, password) else None


async def create_user(
    sessions: async_sessionmaker, username: str, role: str, password: str, *, actor: str = "system"
) -> ConsoleUser:
    """Create an account (TOTP is enrolled at its first login) and audit it."""
    name = check_username(username)
    if role not in ROLES:
        raise AccountError(f"The role must be one of: {', '.join(ROLES)}.")
    check_password_policy(password)
    user = ConsoleUser(
        username=name,
        role=role,
        password_hash=await asyncio.to_thread(hash_password, password),
        active=True,
    )
    try:
        async with sessions() as db, db.begin():
            db.add(user)
            await db.flush()
            await audit.record(db, actor, "user_created", target=name, role=role)
    except IntegrityError:
        raise AccountError(f"The username {name!r} is taken.") from None
    return user


async def list_users(sessions: async_sessionmaker) -> list[ConsoleUser]:
    async with sessions() as db:
        return list((await db.scalars(select(ConsoleUser).order_by(ConsoleUser.username))).all())


def is_enrolled(user: ConsoleUser) -> bool:
    return user.totp_secret is not None and user.totp_last_step is not None


def pending_secret(user: ConsoleUser) -> str:
    """The secret to enrol with, created on first use (the caller commits)."""
    if user.totp_secret is None or user.totp_last_step is not None:
        user.totp_secret = pyotp.random_base32()
        user.totp_last_step = None
    return user.totp_secret


def provisioning_uri(user: ConsoleUser) -> str:
    """``otpauth://`` URI for authenticator apps (issuer ``ctip-assistant``)."""
    return pyotp.TOTP(pending_secret(user)).provisioning_uri(name=user.username, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """The enrolment QR code as an SVG ``data:`` URI (the CSP allows ``img-src data:``; an
    inline ``<svg>`` would need styles the CSP forbids)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def verify_totp(user: ConsoleUser, code: str, now: dt.datetime | None = None) -> bool:
    """Accept a code of the current step ±1, once: a code whose step is not newer than the last
    accepted one is refused, so an observed code cannot be replayed. Sets ``totp_last_step``
    (which also marks enrolment done); the caller commits."""
    if user.totp_secret is None:
        return False
    code = re.sub(r"\s+", "", code or "")
    if not re.fullmatch(r"\d{6}", code):
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now or dt.datetime.now(dt.UTC))
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False
            user.totp_last_step = step
            return True
    return False


async def _change_user(
    sessions: async_sessionmaker, user_id: int, actor: str, action: str, **changes: object
) -> ConsoleUser:
    async with sessions() as db, db.begin():
        user = await db.get(ConsoleUser, user_id)
        if user is None:
            raise AccountError("No such user.")
        for field, value in changes.items():
            setattr(user, field, value)
        # Whatever changed, the user's open sessions end with it.
        await db.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))
        await audit.record(db, actor, action, target=user.username)
    return user


async def change_password(
    sessions: async_sessionmaker, user_id: int, current: str, new: str, repeated: str
) -> ConsoleUser:
    """The user's own change: the current password first (a session left open on a shared
    computer must not be enough to take the account over), then the policy. Every session of
    the account ends, this one included: the user logs in again with the new password."""
    async with sessions() as db:
        user = await db.get(ConsoleUser, user_id)
    if user is None or not user.active:
        raise AccountError("No such user.")
    if len(current) > MAX_PASSWORD or not await asyncio.to_thread(verify_password, user, current):
        raise WrongPassword("The current password is wrong.")
    if new != repeated:
        raise AccountError("The two new passwords differ.")
    if hmac.compare_digest(new.encode(), current.encode()):
        raise AccountError("The new password must differ from the current one.")
    check_password_policy(new)
    hashed = await asyncio.to_thread(hash_password, new)
    return await _change_user(
        sessions, user_id, user.username, "password_changed", password_hash=hashed
    )


async def reset_password(
    sessions: async_sessionmaker, user_id: int, actor: str
) -> tuple[ConsoleUser, str]:
    """An admin's reset for a forgotten password: a new one-time password, shown once, and the
    account's sessions end. The authenticator stays: a reset password alone does not let anyone
    in who does not also hold the owner's phone (reset that separately if it is lost too)."""
    password = generate_password()
    hashed = await asyncio.to_thread(hash_password, password)
    user = await _change_user(sessions, user_id, actor, "password_reset", password_hash=hashed)
    return user, password


async def deactivate_user(sessions: async_sessionmaker, user_id: int, actor: str) -> ConsoleUser:
    """Disable an account and end its sessions (rows stay: cases and the audit refer to it)."""
    return await _change_user(sessions, user_id, actor, "user_deactivated", active=False)


async def reset_totp(sessions: async_sessionmaker, user_id: int, actor: str) -> ConsoleUser:
    """Forget the second factor (lost phone): the user enrols again at the next login."""
    return await _change_user(
        sessions, user_id, actor, "totp_reset", totp_secret=None, totp_last_step=None
    )
