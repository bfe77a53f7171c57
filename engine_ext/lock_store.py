"""A Redis ticket-lock store whose every change is one atomic Redis transaction.

Why: Rasa 3.6's ``RedisLockStore`` changes a lock by GET, edit in Python, SET. Inside one
engine that is safe (the calls are synchronous, so nothing runs in between), but two engines
serving the same person interleave: both read the lock, both issue ticket N, both believe they
hold it and run the person's turns at the same time. The SQL tracker store then counts the rows
the other engine just wrote as its own and drops the second turn's events, so a message the
person sent is lost from the conversation (seen in CI: 2 of 5 parallel messages). Here each
read-edit-write runs under Redis ``WATCH``/``MULTI`` (redis-py's ``transaction`` retries it when
another engine changed the key in between), so tickets are unique and served in order across
engines. The data format is Rasa's own ``TicketLock``, so engines of both kinds could share it.

Two smaller changes, for the same reason of several engines:

* a lock whose last ticket is gone is deleted in the same transaction that removed it, and a
  lock left by a crashed engine expires in Redis with its last ticket, instead of staying forever;
* a waiting turn looks again every ``POLL_SECONDS`` instead of Rasa's 1 s, so a person's
  second message, queued behind the first, is not delayed a whole second for nothing.

Configured in ``deploy/endpoints.yml`` as ``type: engine_ext.lock_store.AtomicRedisLockStore``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, Optional, Text, Tuple

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

logger = logging.getLogger(__name__)

# An edit of one conversation's lock: gets the stored lock (None if there is none) and returns
# the lock to store (None or empty: delete it) and the value the operation returns.
LockEdit = Callable[[Optional[TicketLock]], Tuple[Optional[TicketLock], Any]]


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` with atomic ticket operations (see the module docstring)."""

    POLL_SECONDS = 0.05

    def __init__(self, endpoint_config: Optional[EndpointConfig] = None, **kwargs: Any) -> None:
        """Rasa builds a custom lock store as ``cls(endpoint_config=…)``; tests pass kwargs."""
        if endpoint_config is not None:
            kwargs = {
                "host": endpoint_config.url or "localhost",
                **endpoint_config.kwargs,
                **kwargs,
            }
        super().__init__(**kwargs)

    def _transact(self, conversation_id: Text, edit: LockEdit) -> Any:
        """Run ``edit`` on the stored lock as one transaction, retried if another engine wrote."""
        key = self.key_prefix + conversation_id

        def attempt(pipe: Any) -> Any:
            raw = pipe.get(key)  # after WATCH the pipeline runs commands at once
            lock = TicketLock.from_dict(json.loads(raw)) if raw else None
            lock, result = edit(lock)
            pipe.multi()
            if lock is None or not lock.is_someone_waiting():
                pipe.delete(key)
            else:
                pipe.set(key, lock.dumps())
                # With its last ticket the lock is of no use to anyone: a crashed engine's
                # lock disappears by itself. A whole second past it, against rounding.
                last = max(ticket.expires for ticket in lock.tickets)
                pipe.pexpireat(key, int(last * 1000) + 1000)
            return result

        return self.red.transaction(attempt, key, value_from_callable=True)

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = LOCK_LIFETIME) -> int:
        """Append a ticket numbered after the last one issued, by any engine."""

        def edit(lock: Optional[TicketLock]) -> Tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        logger.debug(f"Issuing ticket for conversation '{conversation_id}'.")
        try:
            return self._transact(conversation_id, edit)
        except Exception as e:  # Rasa's contract: any failure here is a LockError
            raise LockError(f"Error while acquiring lock. Error:\n{e}") from e

    def update_lock(self, conversation_id: Text) -> None:
        """Drop expired tickets (a crashed engine's turn) so the next one is served."""

        def edit(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._transact(conversation_id, edit)

    def finish_serving(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove our ticket; the lock goes with it if nobody else holds one."""

        def edit(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._transact(conversation_id, edit)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Rasa's finish-then-delete-if-empty was two steps, and could delete a lock another
        engine had just issued a ticket on; here it is the one transaction above."""
        self.finish_serving(conversation_id, ticket_number)

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: Text,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: Optional[float] = None,
    ) -> AsyncGenerator[TicketLock, None]:
        """Rasa's ticket lock, polling every ``POLL_SECONDS`` unless told otherwise."""
        wait = self.POLL_SECONDS if wait_time_in_seconds is None else wait_time_in_seconds
        async with super().lock(conversation_id, lock_lifetime, wait) as ticket_lock:
            yield ticket_lock
