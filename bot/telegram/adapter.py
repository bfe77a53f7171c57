"""What the Telegram adapter does with a person's message, independent of how PTB delivers it.

The order follows DESIGN.md §4: who the person is (pseudonymous key, language), the safety net,
then the engine with a timeout; when the engine fails the person gets the hotline numbers and the
message waits in the database until the engine can answer it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bot import metrics
from bot.console import audit
from bot.engine import EngineClient, EngineError
from bot.language import DEFAULT_LANGUAGE, detect, normalize_code
from bot.nlg import ResponseRenderer
from bot.privacy import pseudonymise
from bot.safety import is_emergency
from bot.staffed_hours import StaffedHours
from bot.storage.cases import CaseStore, transcript_from_events
from bot.storage.repo import Repository
from bot.telegram.delivery import BlockedByUser, Outgoing, PayloadTokens, Sender
from bot.telegram.state import ChatState, ChatStore
from bot.tracker_eraser import TrackerEraser

log = logging.getLogger(__name__)

# Telegram never delivers more than 4096 characters; anything longer came from elsewhere and is
# cut, with a note to the person. The engine gets at most this much.
MAX_INPUT = 4096
LANGUAGE_PAYLOAD = re.compile(r'^/change_language\{"language":\s*"(az|ru|en)"\}$')


IN_PROGRESS: Any = object()


class FloodGuard:
    """At most ``limit`` messages per person per ``window`` seconds reach the engine.

    Why: one person (or a script) sending hundreds of messages would take the engine's time from
    everybody else. Past the limit the person is told once per window to slow down; danger
    phrases still get the emergency answer (the caller checks the safety net first). Kept per
    replica, in memory: a rough brake, not an exact quota.
    """

    def __init__(self, limit: int = 20, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._warned: dict[str, float] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        times = self._seen.setdefault(key, deque())
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        if len(self._seen) > 10_000:  # forget people who went quiet
            for k in [k for k, t in self._seen.items() if not t or now - t[-1] > self.window]:
                self._seen.pop(k, None)
                self._warned.pop(k, None)
        return True

    def should_warn(self, key: str, now: float | None = None) -> bool:
        """True once per window for a person over the limit."""
        now = time.monotonic() if now is None else now
        if now - self._warned.get(key, -self.window - 1) > self.window:
            self._warned[key] = now
            return True
        return False


def outgoing(replies: list[dict[str, Any]]) -> list[Outgoing]:
    """The engine's REST replies as messages to send (empty ones dropped)."""
    return [
        Outgoing(r.get("text") or "", r.get("buttons") or [])
        for r in replies
        if r.get("text") or r.get("buttons")
    ]


def replies_in_tracker(tracker: dict[str, Any], message_key: str) -> Any:
    """The bot's replies to the user message tagged ``message_key`` in an engine tracker.

    None when the engine never saw the message; ``IN_PROGRESS`` when it saw it but has not
    finished the turn (no ``action_listen`` after it yet).
    """
    if not message_key:
        return None
    events = tracker.get("events") or []
    start = None
    for i, event in enumerate(events):
        if (
            event.get("event") == "user"
            and (event.get("metadata") or {}).get("message_key") == message_key
        ):
            start = i
    if start is None:
        return None
    replies: list[dict[str, Any]] = []
    for event in events[start + 1 :]:
        if event.get("event") == "user":
            break
        if event.get("event") == "bot":
            data = event.get("data") or {}
            replies.append({"text": event.get("text"), "buttons": data.get("buttons") or []})
        if event.get("event") == "action" and event.get("name") == "action_listen":
            return replies
    return IN_PROGRESS


@dataclass(frozen=True)
class Person:
    """The sender of one update as the adapter sees them: no name, no Telegram id in logs."""

    key: str  # pseudonymous id: what logs, the engine and the tables use
    chat_id: int  # raw Telegram chat id: only to send messages
    language: str  # the language to answer this turn in
    state: ChatState
    received_at: float = 0.0  # perf_counter when the adapter got the update (for /metrics)


class TelegramAdapter:
    """Conversation logic shared by every PTB handler (and by the retry loop)."""

    def __init__(
        self,
        *,
        bot: Bot,
        engine: EngineClient,
        renderer: ResponseRenderer,
        chats: ChatStore,
        repo: Repository,
        secret_key: str,
        eraser: TrackerEraser | None = None,
        retention_days: int = 30,
        retry_interval: float = 2.0,
        hours: StaffedHours | None = None,
        alert_after_minutes: float = 5.0,
        operators_chat_id: int | None = None,
        console_url: str = "",
    ) -> None:
        self.bot = bot
        self.engine = engine
        self.renderer = renderer
        self.chats = chats
        self.repo = repo
        self.secret_key = secret_key
        self.eraser = eraser
        self.retention_days = retention_days
        self.retry_interval = retry_interval
        self.cases = CaseStore(chats.sessions)
        self.hours = hours or StaffedHours.parse("always")
        self.alert_after_minutes = alert_after_minutes
        self.operators_chat_id = operators_chat_id
        self.console_url = console_url
        self.tokens = PayloadTokens()
        self.sender = Sender(bot, self.tokens)
        self._person_locks: dict[str, asyncio.Lock] = {}
        self._lock_users: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.flood = FloodGuard()

    # -- lifecycle ---------------------------------------------------------------------------
    def start_background(self) -> None:
        """Start the retry loop for pending messages and the hourly retention purge."""
        self._tasks = [
            asyncio.create_task(self._retry_loop(), name="ctip-retry-pending"),
            asyncio.create_task(self._purge_loop(), name="ctip-retention"),
            asyncio.create_task(self._alert_loop(), name="ctip-alerts"),
        ]

    async def stop_background(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- who is writing ----------------------------------------------------------------------
    def key_of(self, telegram_user_id: int) -> str:
        return pseudonymise(telegram_user_id, self.secret_key)

    def _language_of(
        self, text: str | None, language_code: str | None
    ) -> Callable[[str | None], str | None]:
        code = normalize_code(language_code)

        def language_of(last: str | None) -> str | None:
            return detect(text, prior=last or code) if text else None

        return language_of

    def _person(
        self, key: str, chat_id: int, state: ChatState, detected: str | None, code: str | None
    ) -> Person:
        language = (
            state.language
            or detected
            or state.last_language
            or normalize_code(code)
            or DEFAULT_LANGUAGE
        )
        return Person(key, chat_id, language, state)

    async def person(
        self,
        user_id: int,
        chat_id: int,
        language_code: str | None,
        text: str | None = None,
        message_id: int | None = None,
    ) -> Person:
        """Identify the sender and decide the language of this turn.

        Precedence: an explicit choice (/language) > the language detected in this text, with
        the last detected language (or Telegram's ``language_code`` for a new person) as the prior
        for short texts > that prior > English.
        """
        key = self.key_of(user_id)
        language_of = self._language_of(text, language_code)
        state, detected = await self.chats.touch(key, chat_id, language_of, message_id)
        return self._person(key, chat_id, state, detected, language_code)

    async def begin(
        self,
        update_id: int,
        user_id: int,
        chat_id: int,
        language_code: str | None,
        text: str | None,
    ) -> tuple[Person, str | None] | None:
        """Claim the update and identify the sender (one short transaction); None for a
        duplicate. Returns the person and the language detected in ``text`` (to remember)."""
        received_at = time.perf_counter()
        key = self.key_of(user_id)
        state = await self.chats.claim_and_read(update_id, key, chat_id)
        if state is None:
            return None
        code = normalize_code(language_code)
        detected = detect(text, prior=state.last_language or code) if text else None
        person = self._person(key, chat_id, state, detected, language_code)
        return replace(person, received_at=received_at), detected

    @contextlib.asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[None]:
        """One turn at a time per person, shared by handlers and the retry loop."""
        lock = self._person_locks.setdefault(key, asyncio.Lock())
        self._lock_users[key] = self._lock_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[key] -= 1
            if not self._lock_users[key]:
                del self._lock_users[key]
                del self._person_locks[key]

    # -- rendering and sending ---------------------------------------------------------------
    def text(self, name: str, language: str, **values: Any) -> Outgoing:
        rendered = self.renderer.render(name, language, values)
        return Outgoing(rendered["text"], rendered["buttons"])

    async def deliver(
        self,
        person: Person,
        replies: list[Outgoing],
        *,
        track: bool = True,
        on_sent: Callable[[], None] | None = None,
    ) -> bool:
        """Send replies; remember their ids for /forget. False when the person blocked the bot."""
        try:
            ids = await self.sender.send(person.chat_id, replies)
            if on_sent is not None:
                on_sent()
        except BlockedByUser:
            log.info("%s blocked the bot; not sending", person.key)
            await self.chats.set_blocked(person.key, True)
            return False
        if track:
            await self.chats.track(person.key, person.chat_id, ids)
        return True

    # -- turns -------------------------------------------------------------------------------
    async def handle_text(self, person: Person, text: str) -> None:
        """A typed message: to the operator holding the chat, else safety net, then the engine."""
        # PostgreSQL (our tables, the engine's tracker store) refuses NUL in text: the message
        # would be lost with an error. Telegram does not send NUL; a forged update might.
        text = text.replace("\x00", "")
        if person.state.case_status == "assigned" and text.strip():
            await self.to_operator(person, text[:MAX_INPUT])
            if is_emergency(text):  # the operator sees it; the person still gets the numbers
                await self.deliver(person, [self.text("utter_emergency", person.language)])
            return
        if is_emergency(text):
            await self.emergency(person, reason="safety_net")
            return
        if not await self._within_limits(person):
            return
        if not text.strip():
            await self.deliver(person, [self.text("text_tg_empty", person.language)])
            return
        notes: list[Outgoing] = []
        if len(text) > MAX_INPUT:
            text = text[:MAX_INPUT]
            notes.append(self.text("text_tg_too_long", person.language))
        await self.converse(person, text, notes)

    async def handle_payload(self, person: Person, payload: str) -> None:
        """A button press or a location: an intent payload for the engine."""
        if person.state.case_status == "assigned":
            await self.to_operator(person, f"[button {payload[1:].split('{')[0]}]")
            return
        if not await self._within_limits(person):
            return
        match = LANGUAGE_PAYLOAD.match(payload)
        if match:
            await self.chats.set_language(person.key, match.group(1))
            person = Person(person.key, person.chat_id, match.group(1), person.state)
        await self.converse(person, payload)

    async def _within_limits(self, person: Person) -> bool:
        """The flood brake: False (and, once per window, a polite note) when over the limit."""
        if self.flood.allow(person.key):
            return True
        log.info("%s is over the message limit; message not processed", person.key)
        if self.flood.should_warn(person.key):
            await self.deliver(person, [self.text("text_tg_slow_down", person.language)])
        return False

    async def handle_location(self, person: Person, latitude: float, longitude: float) -> None:
        if person.state.case_status == "assigned":
            await self.to_operator(person, f"[location {latitude:.5f}, {longitude:.5f}]")
            return
        payload = "/share_location" + json.dumps(
            {"latitude": round(latitude, 6), "longitude": round(longitude, 6)}
        )
        await self.converse(person, payload)

    async def converse(
        self, person: Person, text: str, prefix: list[Outgoing] | None = None
    ) -> None:
        """Send ``text`` to the engine and deliver its replies; on failure, fall back and keep it."""
        async with self._locked(person.key):
            replies: list[dict[str, Any]] | None = None
            engine_seconds = 0.0
            message_key = uuid.uuid4().hex
            if not person.state.has_pending or await self._flush_pending(person.key):
                typing = asyncio.create_task(self._keep_typing(person.chat_id))
                engine_started = time.perf_counter()
                try:
                    replies = await self.engine.send(
                        person.key, text, {"language": person.language, "message_key": message_key}
                    )
                except EngineError as exc:
                    log.warning("engine failed for %s: %s", person.key, exc)
                finally:
                    typing.cancel()
                engine_seconds = time.perf_counter() - engine_started
            if replies is None:
                await self.chats.add_pending(person.key, text, person.language, message_key)
                self._wake.set()
        if replies is None:
            out = [self.text("text_tg_engine_down", person.language)]
        else:
            out = outgoing(replies)

        def measure() -> None:
            if replies is not None and person.received_at:
                total = time.perf_counter() - person.received_at
                metrics.ENGINE_TURN.observe(engine_seconds)
                metrics.ADAPTER_TURN.observe(total)
                metrics.ADAPTER_OVERHEAD.observe(max(0.0, total - engine_seconds))

        await self.deliver(person, (prefix or []) + out, on_sent=measure)
        if person.state.case_status == "queued" and person.state.case_id is not None:
            # Waiting for a human: the operator will read what the bot said meanwhile.
            await self._log_turn(person, text, out)

    async def _log_turn(self, person: Person, text: str, out: list[Outgoing]) -> None:
        assert person.state.case_id is not None
        shown = f"[button {text[1:].split('{')[0]}]" if text.startswith("/") else text
        try:
            await self.cases.add_message(person.state.case_id, person.key, "person", shown)
            for reply in out:
                await self.cases.add_message(person.state.case_id, person.key, "bot", reply.text)
        except Exception:  # the case may have been closed or erased meanwhile
            log.warning("could not add to the transcript of case %s", person.state.case_id)

    async def _keep_typing(self, chat_id: int) -> None:
        """'typing…' while the engine thinks (Telegram shows it for ~5 s per call)."""
        with contextlib.suppress(TelegramError, asyncio.CancelledError):
            await asyncio.sleep(0.3)  # quick answers need no indicator
            while True:
                await self.bot.send_chat_action(chat_id, ChatAction.TYPING)
                await asyncio.sleep(4.5)

    async def emergency(self, person: Person, *, reason: str) -> None:
        """The emergency answer rendered here, without the engine; then an urgent case."""
        started = time.perf_counter()
        await self.deliver(person, [self.text("utter_emergency", person.language)])
        log.info(
            "emergency answer to %s in %.1f ms (%s)",
            person.key,
            (time.perf_counter() - started) * 1000,
            reason,
        )
        try:
            await self.cases.open_case(
                person.key, reason, "urgent", person.language,
                transcript=await self._history(person.key), risk_flags=["danger"],
            )  # fmt: skip
        except Exception:  # the answer went out; a database problem must not hide that
            log.exception("could not record the urgent case for %s", person.key)

    async def _history(self, key: str) -> list[tuple[str, str]]:
        """The conversation so far, from the engine's tracker (nothing when it is down)."""
        try:
            tracker = await asyncio.wait_for(self.engine.tracker(key), timeout=2.0)
        except (EngineError, TimeoutError):
            return []
        return transcript_from_events(tracker.get("events") or [])

    async def request_human(self, person: Person) -> None:
        """/operator: open (or raise) a case; say when a person will answer."""
        case = await self.cases.open_case(
            person.key, "operator_command", "high", person.language,
            transcript=await self._history(person.key),
        )  # fmt: skip
        if case.status == "assigned":
            await self.deliver(person, [self.text("text_case_joined", person.language)])
        else:
            await self.deliver(person, [self.handoff_text(person.language)])

    def handoff_text(self, language: str) -> Outgoing:
        """ "An operator will write here" in staffed hours; otherwise when, and the 24/7 phone."""
        if self.hours.staffed():
            return self.text("text_case_queued", language)
        return self.text("text_case_after_hours", language, hours=self.hours.describe())

    async def to_operator(self, person: Person, text: str) -> None:
        """A message while an operator holds the chat: into the case, not to the engine."""
        assert person.state.case_id is not None
        await self.cases.add_message(person.state.case_id, person.key, "person", text)

    async def media_while_held(self, person: Person, kind: str) -> bool:
        """Voice, photo … while an operator holds the chat: noted for the operator. True when
        handled (the caller then sends nothing else)."""
        if person.state.case_status != "assigned":
            return False
        await self.to_operator(person, f"[{kind}]")
        await self.deliver(person, [self.text("text_case_waiting_media", person.language)])
        return True

    # -- the operator's side ---------------------------------------------------------------
    async def send_operator_reply(self, case_id: int, operator_id: int, text: str) -> str:
        """Relay an operator's reply; returns the delivery status stored with it:
        ``delivered``, ``blocked`` (the person blocked the bot) or ``failed``."""
        case = await self.cases.get(case_id)
        row = await self.cases.add_message(
            case_id, case.user_key, "operator", text, operator_id=operator_id, delivery="pending"
        )
        status = "failed"
        state = await self.chats.get(case.user_key)
        if state is not None:
            person = Person(case.user_key, state.chat_id, case.language, state)
            try:
                sent = await self.deliver(
                    person, [self.text("text_case_operator", case.language, text=text)]
                )
                status = "delivered" if sent else "blocked"
            except TelegramError as exc:
                log.warning("operator reply for case %s failed: %s", case.code, exc)
        await self.cases.set_delivery(row.id, status)
        return status

    async def announce(self, case_id: int, name: str) -> None:
        """Tell the person a human joined (``text_case_joined``) or left (``text_case_closed``)."""
        case = await self.cases.get(case_id)
        state = await self.chats.get(case.user_key)
        if state is None:
            return
        person = Person(case.user_key, state.chat_id, case.language, state)
        try:
            await self.deliver(person, [self.text(name, case.language)])
        except TelegramError as exc:
            log.warning("could not tell case %s's person (%s): %s", case.code, name, exc)

    async def forget(self, person: Person, command_message_id: int) -> dict[str, int]:
        """Erase the person's data and delete the chat's messages Telegram still allows."""
        ids = sorted({m for c, m in await self.chats.deletable(person.key)} | {command_message_id})
        deleted = 0
        for start in range(0, len(ids), 100):  # deleteMessages takes up to 100 ids
            chunk = ids[start : start + 100]
            try:
                await self.bot.delete_messages(person.chat_id, chunk)
                deleted += len(chunk)
            except TelegramError:
                for message_id in chunk:  # some were too old or already gone: one by one
                    with contextlib.suppress(TelegramError):
                        await self.bot.delete_message(person.chat_id, message_id)
                        deleted += 1
        async with self._locked(person.key):
            held = await self.cases.erase_person(person.key)  # the console shows it is gone
            counts = await self.chats.forget(person.key)
            counts["open_cases"] = len(held)
            if self.eraser is not None:
                counts["engine_events"] = await self.eraser.erase(person.key)
        counts["telegram_messages_deleted"] = deleted
        log.info("erased %s: %s", person.key, counts)
        try:  # who asked is not kept (that would undo the erasure): only that it happened
            await audit.record(
                self.chats.sessions, "person", "erasure",
                case_id=held[0].id if held else None,
                open_cases=len(held), deleted_count=deleted,
            )  # fmt: skip
        except Exception:
            log.exception("could not audit an erasure")
        # Not tracked: nothing about this person remains after this message.
        await self.deliver(person, [self.text("text_tg_forget_done", person.language)], track=False)
        return counts

    # -- background --------------------------------------------------------------------------
    async def _flush_pending(self, key: str) -> bool:
        """Answer this person's waiting messages first, in order (caller holds their lock).

        False when the engine still cannot answer them: the new message then waits behind them
        instead of costing the person a second timeout.
        """
        for item in await self.chats.pending(key):
            if not await self._answer_pending(item):
                return False
        return True

    async def _answer_pending(self, item: Any) -> bool:
        """Answer one waiting message; False when the engine still cannot.

        The engine may have finished the turn after our timeout: its tracker then holds the
        message (found by ``message_key``) and the replies, which are delivered as they are —
        sending the text again would run the turn twice.
        """
        try:
            found = replies_in_tracker(await self.engine.tracker(item.user_key), item.message_key)
            if found is IN_PROGRESS:
                return False
            replies = found
            if replies is None:
                metadata = {"language": item.language, "message_key": item.message_key}
                replies = await self.engine.send(item.user_key, item.text, metadata)
        except EngineError:
            await self.chats.bump_pending(item.id)
            return False
        state = await self.chats.get(item.user_key)
        await self.chats.drop_pending(item.id)
        if state is None or state.blocked:
            return True
        person = Person(item.user_key, state.chat_id, item.language, state)
        out = [self.text("text_tg_late_reply", item.language)] + outgoing(replies)
        await self.deliver(person, out)
        return True

    async def _retry_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.retry_interval * 5)
            self._wake.clear()
            try:
                while await self._retry_round():
                    await asyncio.sleep(self.retry_interval)
            except Exception:
                log.exception("retry round failed")

    async def _retry_round(self) -> bool:
        """Try the waiting messages once; True when some are still waiting."""
        waiting = await self.chats.pending()
        if not waiting:
            return False
        if not await self.engine.ready():
            return True
        for item in waiting:
            async with self._locked(item.user_key):
                still_there = any(p.id == item.id for p in await self.chats.pending(item.user_key))
                if still_there and not await self._answer_pending(item):
                    return True
        return bool(await self.chats.pending())

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.chats.purge(self.retention_days)
                await self.cases.purge_texts(self.retention_days)
            except Exception:
                log.exception("retention purge failed")
            await asyncio.sleep(3600)

    async def alert_waiting(self) -> int:
        """Tell the operators' Telegram chat about cases waiting too long: a case code and a
        link, never message text. Returns the number of alerts sent."""
        if self.operators_chat_id is None:
            return 0
        sent = 0
        for case in await self.cases.waiting_longer_than(self.alert_after_minutes):
            text = (
                f"Case {case.code} ({case.priority}) is waiting for an operator: "
                f"{self.console_url}/console/cases/{case.id}"
            )
            try:
                await self.bot.send_message(self.operators_chat_id, text)
            except TelegramError as exc:
                log.warning("alert for case %s failed: %s", case.code, exc)
                continue
            await self.cases.mark_alerted(case.id)
            sent += 1
        return sent

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(30)
            try:
                await self.alert_waiting()
            except Exception:
                log.exception("alert round failed")
