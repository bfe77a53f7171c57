"""The emulator's state and the rules that act on it: chats, the update queue, webhook delivery.

One in-process object that both faces (the Bot API and the "user side") change, so a test can
drive a conversation and inspect every detail without going through HTTP twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from bot.devtools.emulator.model import (
    DEFAULT_BOT_ID,
    OPT_IN_UPDATES,
    ApiError,
    Chat,
    Fault,
    PendingUpdate,
    StoredMessage,
    bad_request,
    bot_user,
)

log = logging.getLogger(__name__)

DELETE_WINDOW_HOURS = 48


def update_chat(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (its message's, or a button press's message's), else its
    sender; None when it has neither. Parallel webhook delivery keeps each chat's order."""
    for kind, body in update.items():
        if kind == "update_id" or not isinstance(body, dict):
            continue
        message = body.get("message") if kind == "callback_query" else body
        chat = (message or {}).get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and "id" in chat:
            return int(chat["id"])
        sender = body.get("from")
        if isinstance(sender, dict) and "id" in sender:
            return int(sender["id"])
    return None


class Emulator:
    """Everything the fake Telegram knows. Not thread-safe: use it from the server's event loop."""

    def __init__(
        self,
        *,
        webhook_retries: int = 3,
        webhook_backoff: float = 0.05,
        webhook_timeout: float = 10.0,
        webhook_backoff_max: float | None = None,
        webhook_parallel: bool = False,
    ) -> None:
        self.webhook_retries = webhook_retries
        # Telegram posts to a webhook over up to ``max_connections`` connections at once, one
        # update of a chat at a time. Off by default: the tests that follow one delivery after
        # another rely on the strict order; the soak of the replicas needs the parallelism.
        self.webhook_parallel = webhook_parallel
        self.webhook_backoff = webhook_backoff
        # Cap on the pause between attempts, so a test can have Telegram keep trying for a
        # while (a bot service restarting, a claim going stale) without pauses of minutes.
        self.webhook_backoff_max = webhook_backoff_max
        self.webhook_timeout = webhook_timeout
        self._webhook_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._wakeup = asyncio.Event()
        self.reset()

    # ------------------------------------------------------------------ bookkeeping

    def reset(self) -> None:
        """Forget everything (tests share one running emulator)."""
        if self._webhook_task:
            self._webhook_task.cancel()
            self._webhook_task = None
        self.bot_id = DEFAULT_BOT_ID
        self.clock_offset = 0.0
        self.chats: dict[int, Chat] = {}
        self.pending: list[PendingUpdate] = []
        self.history: dict[int, dict[str, Any]] = {}
        self._update_ids = itertools.count(100_000_001)
        self._seq = itertools.count(1)
        self.last_seq = 0
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self._callback_ids = itertools.count(1)
        self.allowed_updates: list[str] = []
        self.faults: list[Fault] = []
        self.call_log: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.descriptions: dict[tuple[str, str], str] = {}
        self.webhook: dict[str, Any] = {}
        self.webhook_stats = {"delivered": 0, "failed_attempts": 0, "dropped": 0}
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.last_webhook_error: tuple[int, str] | None = None
        self._poll_generation = 0
        self.closed = False
        self._notify()

    async def aclose(self) -> None:
        if self._webhook_task:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._session:
            await self._session.close()
            self._session = None

    def now(self) -> int:
        """Unix time as Telegram reports it, shifted by ``clock_offset`` seconds."""
        return int(time.time() + self.clock_offset)

    def advance_clock(self, seconds: float) -> None:
        self.clock_offset += seconds

    def age_messages(self, chat_id: int, hours: float) -> None:
        """Make every message in the chat ``hours`` older (for the 48-hour delete rule)."""
        for message in self.chat(chat_id).messages.values():
            message.date -= int(hours * 3600)
            message.payload["date"] = message.date

    def next_seq(self) -> int:
        self.last_seq = next(self._seq)
        return self.last_seq

    def _notify(self) -> None:
        """Wake every long-poll (getUpdates, event waits) — they re-check their condition."""
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        event = self._wakeup
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    def log_call(self, method: str, params: dict[str, Any], status: int, ok: bool) -> None:
        """Keep a JSON-safe copy (uploaded files become a size note) for tests to query."""
        safe = {
            k: v if not isinstance(v, bytes | bytearray) else f"<{len(v)} bytes>"
            for k, v in params.items()
        }
        self.call_log.append(
            {"method": method, "params": safe, "time": time.time(), "status": status, "ok": ok}
        )

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        if method is None:
            return list(self.call_log)
        return [c for c in self.call_log if c["method"].lower() == method.lower()]

    # ------------------------------------------------------------------ faults

    def inject_fault(
        self, method: str, status: int, count: int = 1, retry_after: int | None = None
    ) -> None:
        """Make the next ``count`` calls of ``method`` (or ``"*"``) fail with ``status``."""
        self.faults.append(Fault(method.lower(), int(status), int(count), retry_after))

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method in ("*", method.lower()):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ chats

    def chat(self, chat_id: Any) -> Chat:
        """The chat the bot addresses, or Telegram's ``chat not found``."""
        try:
            chat = self.chats.get(int(chat_id))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def ensure_chat(
        self,
        user: dict[str, Any],
        chat_type: str = "private",
        chat_id: int | None = None,
    ) -> Chat:
        if chat_id is None:
            chat_id = {"private": user["id"], "supergroup": -1_000_000_000_000 - user["id"]}.get(
                chat_type, -user["id"]
            )
        chat = self.chats.get(chat_id)
        if chat is None:
            title = None if chat_type == "private" else f"Test group {abs(chat_id)}"
            chat = self.chats[chat_id] = Chat(chat_id, chat_type, user, title=title)
        elif chat_type == "private":
            chat.user = user
        return chat

    def add_event(self, chat: Chat, event: dict[str, Any]) -> dict[str, Any]:
        event = {"seq": self.next_seq(), **event}
        chat.events.append(event)
        self._notify()
        return event

    def store_message(
        self,
        chat: Chat,
        *,
        direction: str,
        kind: str,
        payload: dict[str, Any],
        text: str | None = None,
        plain_text: str | None = None,
        parse_mode: str | None = None,
        reply_markup: dict[str, Any] | None = None,
    ) -> StoredMessage:
        message = StoredMessage(
            chat_id=chat.id,
            message_id=payload["message_id"],
            seq=self.next_seq(),
            direction=direction,
            kind=kind,
            date=payload["date"],
            payload=payload,
            text=text,
            plain_text=plain_text,
            parse_mode=parse_mode,
            reply_markup=reply_markup,
        )
        chat.messages[message.message_id] = message
        chat.events.append(message)
        self._notify()
        return message

    def touch(self, message: StoredMessage) -> None:
        """Record that a message changed so long-polls (the web page) fetch it again."""
        message.changed_seq = self.next_seq()
        self._notify()

    def events(self, chat_id: int, after: int = 0) -> tuple[list[dict], list[dict]]:
        """New entries after ``after`` and older messages changed (edited/deleted) since then."""
        chat = self.chats.get(chat_id)
        if chat is None:
            return [], []
        new: list[dict[str, Any]] = []
        changed: list[dict[str, Any]] = []
        for event in chat.events:
            if isinstance(event, StoredMessage):
                if event.seq > after:
                    new.append(event.view())
                elif event.changed_seq > after:
                    changed.append(event.view())
            elif event["seq"] > after:
                new.append(dict(event))
        return new, changed

    # ------------------------------------------------------------------ updates

    def add_update(self, kind: str, obj: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, kind: obj}
        self.history[update_id] = update
        self.pending.append(PendingUpdate(update))
        self._notify()
        self._kick_webhook()
        return update_id

    def redeliver(self, update_id: int) -> None:
        """Queue an already-sent update again, as Telegram does when it saw no confirmation."""
        update = self.history.get(int(update_id))
        if update is None:
            raise KeyError(update_id)
        self.pending.append(PendingUpdate(update, redelivered=True))
        self._notify()
        self._kick_webhook()

    def _allowed(self, item: PendingUpdate) -> bool:
        allowed = self.webhook.get("allowed_updates") if self.webhook else self.allowed_updates
        if allowed:
            return item.type in allowed
        return item.type not in OPT_IN_UPDATES

    def confirm(self, offset: int) -> None:
        """getUpdates' ``offset``: forget confirmed updates (negative: keep the last -offset)."""
        if offset < 0:
            self.pending = self.pending[offset:]
            return
        self.pending = [p for p in self.pending if p.update_id >= offset or p.redelivered]

    async def get_updates(
        self, offset: int | None, limit: int, timeout: float, allowed: list[str] | None
    ) -> list[dict[str, Any]]:
        if self.webhook:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        if allowed is not None:
            self.allowed_updates = list(allowed)
        self._poll_generation += 1
        generation = self._poll_generation
        if offset is not None:
            self.confirm(offset)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self.pending = [p for p in self.pending if self._allowed(p)]
            batch = self.pending[: max(1, min(100, limit))]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0:
                break
            await self.wait_change(remaining)
            if self._poll_generation != generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
        for item in batch:
            item.redelivered = False
        return [item.update for item in batch]

    # ------------------------------------------------------------------ webhook

    def set_webhook(
        self,
        url: str,
        secret_token: str | None,
        allowed_updates: list[str] | None,
        drop_pending: bool,
        max_connections: int = 40,
    ) -> None:
        if drop_pending:
            self.pending.clear()
        if not url:
            self.delete_webhook(False)
            return
        self.webhook = {
            "url": url,
            "secret_token": secret_token,
            "allowed_updates": list(allowed_updates or []),
            "max_connections": max_connections,
        }
        self.last_webhook_error = None
        if self._webhook_task:
            self._webhook_task.cancel()
            self._webhook_task = None
        self._kick_webhook()

    def delete_webhook(self, drop_pending: bool) -> None:
        if drop_pending:
            self.pending.clear()
        self.webhook = {}
        if self._webhook_task:
            self._webhook_task.cancel()
            self._webhook_task = None
        self._notify()

    def webhook_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self.pending),
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["allowed_updates"]:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        if self.last_webhook_error:
            info["last_error_date"], info["last_error_message"] = self.last_webhook_error
        return info

    def _kick_webhook(self) -> None:
        if self.webhook and (self._webhook_task is None or self._webhook_task.done()):
            self._webhook_task = asyncio.get_running_loop().create_task(self._webhook_loop())

    async def _webhook_loop(self) -> None:
        """Deliver queued updates one at a time, in order, retrying each a few times."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        if self.webhook_parallel:
            await self._parallel_webhook_loop()
            return
        while self.webhook:
            self.pending = [p for p in self.pending if self._allowed(p)]
            if not self.pending:
                await self.wait_change(3600)
                continue
            await self._deliver(self.pending[0])

    async def _deliver(self, item: PendingUpdate) -> None:
        """Post one update (with retries); it leaves the queue delivered or dropped."""
        delivered = await self._post_with_retries(item.update)
        if item in self.pending:
            self.pending.remove(item)
        if not delivered:
            self.webhook_stats["dropped"] += 1
        self._notify()

    async def _parallel_webhook_loop(self) -> None:
        """Up to ``max_connections`` deliveries at once, a chat's updates one after another."""
        busy: dict[int | None, asyncio.Task[None]] = {}  # chat → its delivery in flight
        try:
            while self.webhook:
                self.pending = [p for p in self.pending if self._allowed(p)]
                for chat in [c for c, task in busy.items() if task.done()]:
                    del busy[chat]
                limit = int(self.webhook.get("max_connections") or 40)
                waiting: set[int | None] = set()
                for item in list(self.pending):
                    chat = update_chat(item.update)
                    if len(busy) >= limit:
                        break
                    if chat in busy or chat in waiting:
                        waiting.add(chat)  # behind the chat's earlier update
                        continue
                    busy[chat] = asyncio.get_running_loop().create_task(self._deliver(item))
                    waiting.add(chat)
                await self.wait_change(3600)
        finally:
            for task in busy.values():
                task.cancel()

    async def _post_with_retries(self, update: dict[str, Any]) -> bool:
        assert self._session is not None
        headers = {}
        if self.webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = self.webhook["secret_token"]
        url = self.webhook["url"]
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
        for attempt in range(self.webhook_retries + 1):
            if attempt:
                pause = self.webhook_backoff * 2 ** (attempt - 1)
                if self.webhook_backoff_max is not None:
                    pause = min(pause, self.webhook_backoff_max)
                await asyncio.sleep(pause)
            try:
                async with self._session.post(
                    url, json=update, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    await response.read()
                error = (
                    None if 200 <= status < 300 else f"Wrong response from the webhook: {status}"
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, error = 0, f"Connection failed: {exc.__class__.__name__}"
            self.webhook_deliveries.append(
                {"update_id": update["update_id"], "attempt": attempt + 1, "status": status}
            )
            if error is None:
                self.webhook_stats["delivered"] += 1
                return True
            self.webhook_stats["failed_attempts"] += 1
            self.last_webhook_error = (self.now(), error)
            log.info("webhook delivery of %s failed: %s", update["update_id"], error)
        return False

    # ------------------------------------------------------------------ the bot's side

    def bot_message_payload(self, chat: Chat, **content: Any) -> dict[str, Any]:
        payload = {
            "message_id": chat.take_message_id(),
            "from": bot_user(self.bot_id),
            "chat": chat.as_telegram(),
            "date": self.now(),
        }
        payload.update({k: v for k, v in content.items() if v is not None})
        return payload

    def bot_message(self, chat_id: Any, message_id: Any, *, to_edit: bool) -> StoredMessage:
        chat = self.chat(chat_id)
        try:
            message = chat.messages.get(int(message_id))
        except (TypeError, ValueError):
            message = None
        if message is None or message.deleted:
            raise bad_request(
                "message to edit not found" if to_edit else "message to delete not found"
            )
        return message

    def check_not_blocked(self, chat: Chat) -> None:
        if chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")

    def delete_message(self, chat_id: Any, message_id: Any) -> None:
        message = self.bot_message(chat_id, message_id, to_edit=False)
        chat = self.chats[message.chat_id]
        own = message.direction == "out"
        if not own and chat.type != "private":
            raise bad_request("message can't be deleted")
        if self.now() - message.date >= DELETE_WINDOW_HOURS * 3600:
            raise bad_request("message can't be deleted")
        message.deleted = True
        self.touch(message)

    def answer_callback(self, query_id: str, text: str | None, show_alert: bool) -> None:
        query = self.callback_queries.get(str(query_id))
        if query is None or query["answered"]:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        query["answered"] = True
        chat = self.chats[query["chat_id"]]
        self.add_event(
            chat,
            {
                "direction": "callback_answer",
                "callback_query_id": str(query_id),
                "message_id": query["message_id"],
                "text": text,
                "show_alert": show_alert,
                "kind": "callback_answer",
            },
        )


EMULATOR_KEY = web.AppKey("emulator", Emulator)
