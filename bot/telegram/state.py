"""What the adapter remembers per chat, in the database: who the chat belongs to, which updates
were seen, which message ids ``/forget`` must delete, and messages waiting for the engine.

Why the database and not memory: idempotency and pending messages must survive a restart, and
several bot-service replicas share them (DESIGN.md §6).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, select, true, update
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
from bot.storage.transient import RETRY_DELAYS, retried, with_retries

# A claimed update not finished after this long belongs to a replica that died: take it over.
# Default of TELEGRAM_CLAIM_TIMEOUT; it must exceed the longest turn (engine timeout, delivery
# retries), or a slow live replica would be taken over and the message answered twice.
STALE_CLAIM = dt.timedelta(minutes=2)
# Telegram lets a bot delete messages of a private chat for 48 hours; ids older than that are useless.
DELETABLE_FOR = dt.timedelta(hours=48)
UPDATE_IDS_KEPT = dt.timedelta(days=7)


class Claim(enum.Enum):
    """What claiming an update id found, and so what to do with the update."""

    NEW = "new"  # first sight: process it
    # Left ``processing`` by a process that died (stale), or by an earlier attempt of this
    # process that failed: process it, but its engine turn may already have run.
    RETAKEN = "retaken"
    DONE = "done"  # finished before: drop it (and acknowledge it)
    BUSY = "busy"  # another process is on it right now: drop it, but do not acknowledge

    @property
    def granted(self) -> bool:
        return self in (Claim.NEW, Claim.RETAKEN)


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
    """Async access to the ``tg_*`` tables.

    Every method is one short transaction, retried through a brief database outage
    (``bot.storage.transient``); ``DatabaseUnavailable`` when the outage lasts.
    """

    def __init__(
        self, sessions: async_sessionmaker, claim_timeout: dt.timedelta = STALE_CLAIM
    ) -> None:
        self.sessions = sessions
        self.claim_timeout = claim_timeout

    # -- idempotency -------------------------------------------------------------------------
    async def claim_update(self, update_id: int, *, mine: bool = False) -> Claim:
        """Claim ``update_id`` for this process (see ``Claim``). ``mine``: a ``processing``
        claim on it was left by this process (an attempt that failed) and is taken over; such a
        repeat attempt is not retried (it will be repeated anyway) so as not to hold up the
        chat's next messages while the database is still away."""
        attempts = 0

        async def attempt() -> Claim:
            nonlocal attempts
            attempts += 1  # a retry may find the claim its lost-ack predecessor committed
            return await self._claim_update(update_id, mine or attempts > 1)

        return await with_retries(attempt, delays=() if mine else RETRY_DELAYS)

    async def _claim_update(self, update_id: int, mine: bool) -> Claim:
        async with self.sessions() as s:
            s.add(TelegramUpdate(update_id=update_id, status="processing", claimed_at=utcnow()))
            try:
                await s.commit()
                return Claim.NEW
            except IntegrityError:
                await s.rollback()
        return await self._take_over(update_id, mine)

    async def _take_over(self, update_id: int, mine: bool) -> Claim:
        """RETAKEN when the existing claim is stale (or ``mine``), else DONE or BUSY."""
        async with self.sessions() as s:
            abandoned = TelegramUpdate.claimed_at < utcnow() - self.claim_timeout
            result = await s.execute(
                update(TelegramUpdate)
                .where(
                    TelegramUpdate.update_id == update_id,
                    TelegramUpdate.status == "processing",
                    true() if mine else abandoned,
                )
                .values(claimed_at=utcnow())
            )
            status = None
            if result.rowcount != 1:
                status = await s.scalar(
                    select(TelegramUpdate.status).where(TelegramUpdate.update_id == update_id)
                )
            await s.commit()
        if result.rowcount == 1:
            return Claim.RETAKEN
        return Claim.DONE if status == "done" else Claim.BUSY

    async def claim_and_read(
        self,
        update_id: int,
        user_key: str,
        chat_id: int,
        *,
        mine: bool = False,
        on_first_failure: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Claim, ChatState | None]:
        """Claim the update and read the chat's state in one short transaction (the only
        database work before the engine); the state is None unless the claim is granted.
        ``mine``: see ``claim_update``; ``on_first_failure``: see ``with_retries``.

        The chat row is created on first contact; refreshing it (language, last seen, the
        message id for /forget) waits until the reply is out: ``remember``.
        """
        attempts = 0

        async def attempt() -> tuple[Claim, ChatState | None]:
            nonlocal attempts
            attempts += 1
            return await self._claim_and_read(update_id, user_key, chat_id, mine or attempts > 1)

        return await with_retries(
            attempt, delays=() if mine else RETRY_DELAYS, on_first_failure=on_first_failure
        )

    async def _claim_and_read(
        self, update_id: int, user_key: str, chat_id: int, mine: bool
    ) -> tuple[Claim, ChatState | None]:
        async with self.sessions() as s:
            s.add(TelegramUpdate(update_id=update_id, status="processing", claimed_at=utcnow()))
            try:
                await s.flush()
            except IntegrityError:
                await s.rollback()
                claim = await self._take_over(update_id, mine)
                if not claim.granted:
                    return claim, None
                return claim, await self._read_or_create(user_key, chat_id)
            state = await _read(s, user_key)
            if state is None:
                s.add(TelegramChat(user_key=user_key, chat_id=chat_id, blocked=False))
            try:
                await s.commit()
            except IntegrityError:  # the chat row was created by another replica meanwhile
                await s.rollback()
                claim = await self._claim_update(update_id, mine)
                if not claim.granted:
                    return claim, None
                return claim, await self._read_or_create(user_key, chat_id)
        if state is None:
            return Claim.NEW, ChatState(user_key, chat_id, None, None, False)
        return Claim.NEW, state

    async def _read_or_create(self, user_key: str, chat_id: int) -> ChatState:
        state, _ = await self._touch(user_key, chat_id)
        return state

    @retried
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

    @retried
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
        """Create or refresh the chat row (``_touch``), through a brief outage."""
        return await with_retries(lambda: self._touch(user_key, chat_id, language_of, message_id))

    async def _touch(
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

    @retried
    async def get(self, user_key: str) -> ChatState | None:
        async with self.sessions() as s:
            return await _read(s, user_key)

    @retried
    async def set_language(self, user_key: str, language: str) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(TelegramChat)
                .where(TelegramChat.user_key == user_key)
                .values(language=language, last_language=language)
            )
            await s.commit()

    @retried
    async def set_blocked(self, user_key: str, blocked: bool) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(TelegramChat)
                .where(TelegramChat.user_key == user_key)
                .values(blocked=blocked)
            )
            await s.commit()

    # -- message ids for /forget -------------------------------------------------------------
    @retried
    async def track(self, user_key: str, chat_id: int, message_ids: list[int]) -> None:
        if not message_ids:
            return
        async with self.sessions() as s:
            s.add_all(
                TelegramMessage(user_key=user_key, chat_id=chat_id, message_id=m)
                for m in message_ids
            )
            await s.commit()

    @retried
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
    @retried
    async def add_pending(
        self, user_key: str, text: str, language: str, message_key: str = ""
    ) -> int:
        """Keep a message for the engine. Idempotent per ``message_key``: a retry after a lost
        commit acknowledgement, or the same update processed again, must not queue it twice
        (it would be answered twice)."""
        async with self.sessions() as s:
            if message_key:
                existing = await s.scalar(
                    select(PendingMessage.id).where(
                        PendingMessage.user_key == user_key,
                        PendingMessage.message_key == message_key,
                    )
                )
                if existing is not None:
                    return int(existing)
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

    @retried
    async def pending(self, user_key: str | None = None, limit: int = 50) -> list[PendingMessage]:
        """Waiting messages, oldest first (of one person when ``user_key`` is given)."""
        query = select(PendingMessage).order_by(PendingMessage.id).limit(limit)
        if user_key is not None:
            query = query.where(PendingMessage.user_key == user_key)
        async with self.sessions() as s:
            return list(await s.scalars(query))

    @retried
    async def drop_pending(self, pending_id: int) -> None:
        async with self.sessions() as s:
            await s.execute(delete(PendingMessage).where(PendingMessage.id == pending_id))
            await s.commit()

    @retried
    async def lease_pending(self, pending_id: int, seconds: float) -> bool:
        """Take (or extend) the lease on a kept message; False while another replica holds it.

        Why: every replica runs the retry loop, and a person's next message may reach any of
        them; without a lease two replicas could answer the same kept message. The lease
        outlives the longest engine turn, so it only runs out when its holder died.
        """
        now = utcnow()
        async with self.sessions() as s:
            result = await s.execute(
                update(PendingMessage)
                .where(
                    PendingMessage.id == pending_id,
                    (PendingMessage.leased_until.is_(None)) | (PendingMessage.leased_until < now),
                )
                .values(leased_until=now + dt.timedelta(seconds=seconds))
            )
            await s.commit()
            return result.rowcount == 1

    @retried
    async def release_pending(self, pending_id: int) -> None:
        """Give the lease back (the attempt failed): any replica may try the message next."""
        async with self.sessions() as s:
            await s.execute(
                update(PendingMessage)
                .where(PendingMessage.id == pending_id)
                .values(leased_until=None)
            )
            await s.commit()

    @retried
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
