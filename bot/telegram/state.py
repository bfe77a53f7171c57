"""What the adapter remembers per chat, in the database: who the chat belongs to, which updates
were seen, which message ids ``/forget`` must delete, and messages waiting for the engine.

Why the database and not memory: idempotency and pending messages must survive a restart, and
several bot-service replicas share them (DESIGN.md §6).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.storage.models import (
    CaseMessage,
    Escalation,
    PendingMessage,
    Screening,
    TelegramChat,
    TelegramMessage,
    TelegramUpdate,
    utcnow,
)

# A claimed update not finished after this long belongs to a replica that died: take it over.
STALE_CLAIM = dt.timedelta(minutes=2)
# Telegram lets a bot delete messages of a private chat for 48 hours; ids older than that are useless.
DELETABLE_FOR = dt.timedelta(hours=48)
UPDATE_IDS_KEPT = dt.timedelta(days=7)


@dataclass(frozen=True)
class ChatState:
    user_key: str
    chat_id: int
    language: str | None  # explicit choice
    last_language: str | None
    blocked: bool
    # Who handles the chat: no open case → the bot; "queued" → waiting (the bot still answers);
    # "assigned" → a human (the engine is not called).
    case_id: int | None = None
    case_status: str | None = None
    has_pending: bool = False  # messages still waiting for the engine


def _state(
    row: TelegramChat, case: tuple[int, str] | None = None, has_pending: bool = False
) -> ChatState:
    return ChatState(
        row.user_key, row.chat_id, row.language, row.last_language, row.blocked,
        case[0] if case else None, case[1] if case else None, has_pending,
    )  # fmt: skip


async def _read(s: Any, user_key: str) -> ChatState | None:
    """The chat, its open case and whether messages wait for the engine: ONE query (each
    statement through aiosqlite costs about a millisecond here, on every message's path)."""
    waiting = (
        select(PendingMessage.id).where(PendingMessage.user_key == TelegramChat.user_key).exists()
    )
    row = (
        await s.execute(
            select(TelegramChat, Escalation.id, Escalation.status, waiting)
            .outerjoin(
                Escalation,
                and_(
                    Escalation.user_key == TelegramChat.user_key,
                    Escalation.status.in_(("queued", "assigned")),
                ),
            )
            .where(TelegramChat.user_key == user_key)
        )
    ).first()
    if row is None:
        return None
    chat, case_id, case_status, has_pending = row
    case = (int(case_id), str(case_status)) if case_id is not None else None
    return _state(chat, case, bool(has_pending))


class ChatStore:
    """Async access to the ``tg_*`` tables."""

    def __init__(self, sessions: async_sessionmaker) -> None:
        self.sessions = sessions

    # -- idempotency -------------------------------------------------------------------------
    async def claim_update(self, update_id: int) -> bool:
        """True when this replica should process ``update_id`` (first sight, or a stale claim)."""
        async with self.sessions() as s:
            s.add(TelegramUpdate(update_id=update_id, status="processing", claimed_at=utcnow()))
            try:
                await s.commit()
                return True
            except IntegrityError:
                await s.rollback()
        return await self._take_over(update_id)

    async def _take_over(self, update_id: int) -> bool:
        async with self.sessions() as s:
            result = await s.execute(
                update(TelegramUpdate)
                .where(
                    TelegramUpdate.update_id == update_id,
                    TelegramUpdate.status == "processing",
                    TelegramUpdate.claimed_at < utcnow() - STALE_CLAIM,
                )
                .values(claimed_at=utcnow())
            )
            await s.commit()
            return result.rowcount == 1

    async def claim_and_read(self, update_id: int, user_key: str, chat_id: int) -> ChatState | None:
        """Claim the update and read the chat's state in one short transaction (the only
        database work before the engine); None when the update was already processed.

        The chat row is created on first contact; refreshing it (language, last seen, the
        message id for /forget) waits until the reply is out: ``remember``.
        """
        async with self.sessions() as s:
            s.add(TelegramUpdate(update_id=update_id, status="processing", claimed_at=utcnow()))
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                if not await self._take_over(update_id):
                    return None
                return await self._read_or_create(user_key, chat_id)
            state = await _read(s, user_key)
            if state is None:
                s.add(TelegramChat(user_key=user_key, chat_id=chat_id, blocked=False))
            try:
                await s.commit()
            except IntegrityError:  # the chat row was created by another replica meanwhile
                await s.rollback()
                if not await self.claim_update(update_id):
                    return None
                return await self._read_or_create(user_key, chat_id)
        if state is None:
            return ChatState(user_key, chat_id, None, None, False)
        return state

    async def _read_or_create(self, user_key: str, chat_id: int) -> ChatState:
        state, _ = await self.touch(user_key, chat_id)
        return state

    async def remember(
        self,
        update_id: int,
        user_key: str,
        chat_id: int,
        detected: str | None,
        message_id: int | None,
    ) -> None:
        """After the reply: refresh the chat row, keep the message id (48 h, for /forget) and
        mark the update done — one transaction, off the person's waiting time."""
        values: dict[str, Any] = {"chat_id": chat_id, "blocked": False, "last_seen": utcnow()}
        if detected:
            values["last_language"] = detected
        async with self.sessions() as s:
            await s.execute(
                update(TelegramChat).where(TelegramChat.user_key == user_key).values(**values)
            )
            if message_id is not None:
                s.add(TelegramMessage(user_key=user_key, chat_id=chat_id, message_id=message_id))
            await s.execute(
                update(TelegramUpdate)
                .where(TelegramUpdate.update_id == update_id)
                .values(status="done")
            )
            await s.commit()

    async def finish_update(self, update_id: int) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(TelegramUpdate)
                .where(TelegramUpdate.update_id == update_id)
                .values(status="done")
            )
            await s.commit()

    # -- chats -------------------------------------------------------------------------------
    async def touch(
        self,
        user_key: str,
        chat_id: int,
        language_of: Callable[[str | None], str | None] = lambda last: None,
        message_id: int | None = None,
    ) -> tuple[ChatState, str | None]:
        """Create or refresh the chat row in one transaction (one commit per incoming message).

        ``language_of(last_language)`` detects the language of this message given the last one
        (the prior for short texts); the result is remembered and returned with the state. The
        message id, when given, is kept for /forget.
        """
        async with self.sessions() as s:
            row = await s.get(TelegramChat, user_key)
            if row is None:
                row = TelegramChat(user_key=user_key, chat_id=chat_id, blocked=False)
                s.add(row)
            detected = language_of(row.last_language)
            row.chat_id = chat_id
            row.blocked = False
            row.last_seen = utcnow()
            if detected:
                row.last_language = detected
            if message_id is not None:
                s.add(TelegramMessage(user_key=user_key, chat_id=chat_id, message_id=message_id))
            try:
                await s.commit()
            except IntegrityError:  # another replica created it at the same moment
                await s.rollback()
            state = await _read(s, user_key)
            if state is None:
                raise RuntimeError(f"chat row of {user_key} vanished")
            return state, detected

    async def get(self, user_key: str) -> ChatState | None:
        async with self.sessions() as s:
            return await _read(s, user_key)

    async def set_language(self, user_key: str, language: str) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(TelegramChat)
                .where(TelegramChat.user_key == user_key)
                .values(language=language, last_language=language)
            )
            await s.commit()

    async def set_blocked(self, user_key: str, blocked: bool) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(TelegramChat)
                .where(TelegramChat.user_key == user_key)
                .values(blocked=blocked)
            )
            await s.commit()

    # -- message ids for /forget -------------------------------------------------------------
    async def track(self, user_key: str, chat_id: int, message_ids: list[int]) -> None:
        if not message_ids:
            return
        async with self.sessions() as s:
            s.add_all(
                TelegramMessage(user_key=user_key, chat_id=chat_id, message_id=m)
                for m in message_ids
            )
            await s.commit()

    async def deletable(self, user_key: str) -> list[tuple[int, int]]:
        """``(chat_id, message_id)`` of this person's chat still inside Telegram's 48 h."""
        async with self.sessions() as s:
            rows = await s.execute(
                select(TelegramMessage.chat_id, TelegramMessage.message_id)
                .where(
                    TelegramMessage.user_key == user_key,
                    TelegramMessage.sent_at > utcnow() - DELETABLE_FOR,
                )
                .order_by(TelegramMessage.message_id)
            )
            return [(int(c), int(m)) for c, m in rows.all()]

    # -- messages waiting for the engine ------------------------------------------------------
    async def add_pending(
        self, user_key: str, text: str, language: str, message_key: str = ""
    ) -> int:
        async with self.sessions() as s:
            row = PendingMessage(
                user_key=user_key,
                text=text,
                language=language,
                attempts=0,
                message_key=message_key,
            )
            s.add(row)
            await s.commit()
            return row.id

    async def pending(self, user_key: str | None = None, limit: int = 50) -> list[PendingMessage]:
        """Waiting messages, oldest first (of one person when ``user_key`` is given)."""
        query = select(PendingMessage).order_by(PendingMessage.id).limit(limit)
        if user_key is not None:
            query = query.where(PendingMessage.user_key == user_key)
        async with self.sessions() as s:
            return list(await s.scalars(query))

    async def drop_pending(self, pending_id: int) -> None:
        async with self.sessions() as s:
            await s.execute(delete(PendingMessage).where(PendingMessage.id == pending_id))
            await s.commit()

    async def bump_pending(self, pending_id: int) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(PendingMessage)
                .where(PendingMessage.id == pending_id)
                .values(attempts=PendingMessage.attempts + 1)
            )
            await s.commit()

    # -- erasure and retention ---------------------------------------------------------------
    async def forget(self, user_key: str) -> dict[str, int]:
        """Delete every row about this person; returns counts per table (for the audit)."""
        counts: dict[str, int] = {}
        async with self.sessions() as s:
            models = (
                TelegramMessage, PendingMessage, CaseMessage, Escalation, Screening, TelegramChat
            )  # fmt: skip
            for model in models:
                result = await s.execute(delete(model).where(model.user_key == user_key))
                counts[model.__tablename__] = result.rowcount or 0
            await s.commit()
        return counts

    async def purge(self, retention_days: int = 30) -> None:
        """Retention: message ids past 48 h, update ids past a week, screenings past
        ``retention_days`` (case texts: ``CaseStore.purge_texts``, which honours legal holds)."""
        now = utcnow()
        kept = now - dt.timedelta(days=retention_days)
        async with self.sessions() as s:
            await s.execute(
                delete(TelegramMessage).where(TelegramMessage.sent_at < now - DELETABLE_FOR)
            )
            await s.execute(
                delete(TelegramUpdate).where(TelegramUpdate.claimed_at < now - UPDATE_IDS_KEPT)
            )
            await s.execute(delete(Screening).where(Screening.created_at < kept))
            await s.commit()
