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
    Integer,
    String,
    Text,
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
    """A request for a human (DESIGN.md §5): queued → assigned → closed | abandoned."""

    __tablename__ = "escalations"

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
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
