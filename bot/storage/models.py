"""Tables. Knowledge tables mirror ``knowledge/*.yml`` (loaded by ``ctip kb load``); the rest hold
what the assistant records about conversations, always under a pseudonymous ``user_key``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Provenance:
    """Every knowledge row says where it comes from and whether it was confirmed."""

    source: Mapped[str] = mapped_column(Text)
    checked: Mapped[dt.date] = mapped_column(Date)
    verified: Mapped[bool] = mapped_column(Boolean)


class KbContact(Provenance, Base):
    __tablename__ = "kb_contacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[str] = mapped_column(String(32))
    hours: Mapped[str | None] = mapped_column(String(64))
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)  # name / note → {az, ru, en}
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)
    cities: Mapped[list[str]] = mapped_column(JSON, default=list)


class KbCity(Provenance, Base):
    __tablename__ = "kb_cities"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    names: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {az, ru, en} for display
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)


class KbOrganisation(Provenance, Base):
    __tablename__ = "kb_organisations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)  # name / offers / address
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    cities: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone: Mapped[str | None] = mapped_column(ForeignKey("kb_contacts.id"))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    shelter: Mapped[bool] = mapped_column(Boolean, default=False)
    serves: Mapped[list[str]] = mapped_column(JSON, default=list)
    needs: Mapped[list[str]] = mapped_column(JSON, default=list)


class KbRight(Provenance, Base):
    __tablename__ = "kb_rights"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)  # title / summary / details
    law: Mapped[list[str]] = mapped_column(JSON, default=list)


class KbProvision(Provenance, Base):
    __tablename__ = "kb_provisions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    article: Mapped[str] = mapped_column(String(32))
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)  # act / title / summary / keywords


class Escalation(Base):
    """A case: a person's request for a human (DESIGN.md §5), queued → assigned → closed.

    At most one open case (queued or assigned) per person, enforced by a partial unique index.
    Who handles the chat follows from it: no open case → the bot; queued → waiting (the bot still
    answers); assigned → a human (the engine is not called).
    """

    __tablename__ = "escalations"
    __table_args__ = (
        Index(
            "uq_escalations_open_per_user",
            "user_key",
            unique=True,
            sqlite_where=text("status IN ('queued', 'assigned')"),
            postgresql_where=text("status IN ('queued', 'assigned')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    reason: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # Operator side (issue 5). ``code`` is what alerts and the console show instead of any id.
    code: Mapped[str | None] = mapped_column(String(16), unique=True)
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("console_users.id"))
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    first_reply_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(32))
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    risk_flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    alerted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class CaseMessage(Base):
    """One line of a case's transcript: the person, the bot, an operator, or an internal note.

    ``text`` is set to NULL by the retention purge (closed cases past RETENTION_DAYS without a
    legal hold); the row stays for the statistics.
    """

    __tablename__ = "case_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    user_key: Mapped[str] = mapped_column(String(64), index=True)
    author: Mapped[str] = mapped_column(String(16))  # person | bot | operator | note | system
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("console_users.id"))
    text: Mapped[str | None] = mapped_column(Text)
    # Operator replies: pending | delivered | failed | blocked.
    delivery: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class ConsoleUser(Base):
    """An operator, supervisor or admin of the console."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # operator | supervisor | admin
    password_hash: Mapped[str] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(String(64))  # None until enrolled
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code is used once
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ConsoleSession(Base):
    """A login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("console_users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)  # TOTP passed
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginAttempt(Base):
    """Failed logins by username and by client address, for throttling across replicas."""

    __tablename__ = "console_login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AuditEvent(Base):
    """Append-only audit log: database triggers refuse UPDATE and DELETE (migration 0004).

    Never message text: ``detail`` holds ids, codes and counts only.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # console username, "system" or a user_key
    action: Mapped[str] = mapped_column(String(32), index=True)
    case_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Screening(Base):
    """A completed or stopped screening: answers per indicator and the resulting risk."""

    __tablename__ = "screenings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(64), index=True)
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    score: Mapped[int] = mapped_column(Integer)
    risk: Mapped[str] = mapped_column(String(16))
    completed: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TelegramChat(Base):
    """The one place a raw Telegram chat id is kept: needed to deliver late replies (retries,
    operators). Everything else refers to the person by ``user_key``; ``/forget`` deletes the row.
    """

    __tablename__ = "tg_chats"

    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    language: Mapped[str | None] = mapped_column(String(2))  # explicit choice (/language)
    last_language: Mapped[str | None] = mapped_column(String(2))  # detected on the last message
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TelegramUpdate(Base):
    """Update ids seen, so a redelivered update is processed once, across restarts and replicas.

    ``processing`` rows older than a few minutes are taken over: the replica that claimed them
    died before finishing, and the redelivery must not be lost.
    """

    __tablename__ = "tg_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16), default="processing")
    claimed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class TelegramMessage(Base):
    """Ids (never text) of the messages in a chat for 48 h, so ``/forget`` can delete them from
    the person's phone: Telegram lets a bot delete messages in a private chat only that long.
    """

    __tablename__ = "tg_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(64), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )


class PendingMessage(Base):
    """A message the engine could not answer (down or too slow): kept until it is answered.

    The text is stored only here and only until the retry succeeds; ``/forget`` deletes it.
    """

    __tablename__ = "tg_pending"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_key: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2))
    # Sent to the engine as metadata: a retry first looks for it in the tracker, so a turn the
    # engine finished after our timeout is delivered, not run twice.
    message_key: Mapped[str] = mapped_column(String(32), default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Held by the replica answering it (several replicas run the retry loop): another replica
    # leaves the message alone until the lease runs out (the holder died) — answered once.
    leased_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
