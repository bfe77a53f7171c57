"""Concurrency with order: updates of different chats run in parallel, one chat's run in order.

Why: PTB's default runs every update one after another (50 people wait for each other's engine
turns); ``concurrent_updates=True`` alone could answer one person's two quick messages out of
order. A lock per chat gives both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


def chat_key(update: object) -> int | None:
    """The chat an update belongs to (None for updates without one)."""
    if isinstance(update, Update):
        if update.effective_chat is not None:
            return update.effective_chat.id
        if update.effective_user is not None:
            return update.effective_user.id
    return None


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Serialises updates per chat; different chats run concurrently up to the maximum."""

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}
        # Called after each update, still in the chat's turn (polling: keep what failed).
        self.settle: Callable[[Update], None] | None = None

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = chat_key(update)
        if key is None:
            await coroutine
            if self.settle is not None and isinstance(update, Update):
                self.settle(update)
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                await coroutine
                if self.settle is not None and isinstance(update, Update):
                    self.settle(update)
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:  # nobody waits: free the lock (bounded memory)
                del self._users[key]
                del self._locks[key]

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to tear down: in-flight updates finish under PTB's own shutdown."""
