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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from telegram import Bot
from telegram.constants import ChatAction
from telegram.error import TelegramError, TimedOut

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
from bot.storage.transient import DatabaseUnavailable
from bot.telegram.delivery import BlockedByUser, Outgoing, PayloadTokens, Sender
from bot.telegram.flood import FloodGuard
from bot.telegram.state import ChatState, ChatStore, Claim
from bot.telegram.turns import (
    TURN_LIMIT,
    EngineTurns,
    custom_actions_of_turn,
    events_of_turn,
    last_user_key,
)
from bot.tracker_eraser import TrackerEraser

log = logging.getLogger(__name__)

# Telegram never delivers more than 4096 characters; anything longer came from elsewhere and is
# cut, with a note to the person. The engine gets at most this much.
MAX_INPUT = 4096
LANGUAGE_PAYLOAD = re.compile(r'^/change_language\{"language":\s*"(az|ru|en)"\}$')


IN_PROGRESS: Any = object()
# A kept message's lease outlives the longest engine turn (bot/telegram/turns.py), so it only
# runs out when the replica holding it died; the retry loop reads the queue in batches.
PENDING_LEASE = TURN_LIMIT + 30.0
PENDING_BATCH = 50
LISTEN = {"event": "action", "name": "action_listen"}


def outgoing(replies: list[dict[str, Any]]) -> list[Outgoing]:
    """The engine's REST replies as messages to send (empty ones dropped)."""
    return [
        Outgoing(r.get("text") or "", r.get("buttons") or [])
        for r in replies
        if r.get("text") or r.get("buttons")
    ]


def message_key_for(update_id: int | None) -> str:
    """The ``message_key`` of the engine turn for one Telegram update.

    Derived from the update id, not random, so that whoever processes the update again (the
    same update redelivered after the process that claimed it died) finds the turn the engine
    already ran in its tracker and delivers it instead of running it twice.
    """
    return f"tg{update_id}" if update_id is not None else uuid.uuid4().hex


def replies_in_tracker(tracker: dict[str, Any], message_key: str) -> Any:
    """The bot's replies to the user message tagged ``message_key`` in an engine tracker.

    None when the engine never saw the message; ``IN_PROGRESS`` when it saw it but has not
    finished the turn (no ``action_listen`` after it yet). Replies up to the person's next
    message count, so those of a failed action run again later are found too.
    """
    turn = events_of_turn(tracker, message_key) if message_key else None
    if turn is None:
        return None
    replies: list[dict[str, Any]] = []
    listened = False
    for event in turn:
        if event.get("event") == "bot":
            data = event.get("data") or {}
            replies.append({"text": event.get("text"), "buttons": data.get("buttons") or []})
        if event.get("event") == "action" and event.get("name") == "action_listen":
            listened = True
    return replies if listened else IN_PROGRESS


@contextlib.contextmanager
def _after_the_answer(what: str, key: str) -> Iterator[None]:
    """Bookkeeping once the person has the answer: a database outage is logged, not raised."""
    try:
        yield
    except DatabaseUnavailable:
        log.warning("database unreachable: %s of %s not written", what, key)


@dataclass(frozen=True)
class Person:
    """The sender of one update as the adapter sees them: no name, no Telegram id in logs."""

    key: str  # pseudonymous id: what logs, the engine and the tables use
    chat_id: int  # raw Telegram chat id: only to send messages
    language: str  # the language to answer this turn in
    state: ChatState
    received_at: float = 0.0  # perf_counter when the adapter got the update (for /metrics)
    update_id: int | None = None  # the Telegram update being answered (None: no update)
    # The update's claim was taken over: its engine turn may already be in the tracker.
    retaken: bool = False
    # What the person already got for this update while the database was unreachable:
    # "emergency" (not sent again) or "fallback" (the answer says sorry for the wait).
    offline: str | None = None


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
        flood: FloodGuard | None = None,
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
        self.flood = flood or FloodGuard()
        # How long a person waits for the engine before getting the hotline numbers; the turn
        # itself goes on (see bot/telegram/turns.py).
        self.reply_timeout = engine.timeout.total or 5.0
        self.turns = EngineTurns(engine, self._wake.set)
        self._leased: set[int] = set()  # kept messages whose lease this replica holds

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
        await self.turns.close()

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
        *,
        mine: bool = False,
        on_first_failure: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Claim, Person | None, str | None]:
        """Claim the update and identify the sender (one short transaction). Returns the claim,
        the person (None unless the claim is granted) and the language detected in ``text`` (to
        remember). ``mine``, ``on_first_failure``: see ``ChatStore.claim_and_read``. Raises
        ``DatabaseUnavailable``."""
        received_at = time.perf_counter()
        key = self.key_of(user_id)
        claim, state = await self.chats.claim_and_read(
            update_id, key, chat_id, mine=mine, on_first_failure=on_first_failure
        )
        if state is None:
            return claim, None, None
        code = normalize_code(language_code)
        detected = detect(text, prior=state.last_language or code) if text else None
        person = self._person(key, chat_id, state, detected, language_code)
        person = replace(
            person,
            received_at=received_at,
            update_id=update_id,
            retaken=claim is Claim.RETAKEN,
        )
        return claim, person, detected

    def offline_person(
        self, user_id: int, chat_id: int, language_code: str | None, text: str | None
    ) -> Person:
        """The sender as far as the update alone tells, for when the database cannot: the
        language of this text (Telegram's ``language_code`` as the prior), no chat state."""
        code = normalize_code(language_code)
        language = (detect(text, prior=code) if text else None) or code or DEFAULT_LANGUAGE
        state = ChatState(self.key_of(user_id), chat_id, None, None, False)
        return Person(state.user_key, chat_id, language, state)

    async def answer_offline(self, person: Person, *, emergency: bool) -> str | None:
        """Answer without the database (it is unreachable): the emergency answer in danger,
        else the hotline numbers and "I saved your message" (the update is kept to be answered
        properly later). Returns what was sent, ``"emergency"`` or ``"fallback"``, or None when
        nothing could be sent."""
        kind = "emergency" if emergency else "fallback"
        name = "utter_emergency" if kind == "emergency" else "text_tg_engine_down"
        try:
            await self.sender.send(person.chat_id, [self.text(name, person.language)])
        except Exception as exc:  # blocked, Telegram down: nothing more to do without a DB
            log.warning("could not answer %s without the database: %s", person.key, exc)
            return None
        log.info("answered %s without the database (%s)", person.key, kind)
        return kind

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
        """Send replies; remember their ids for /forget. False when the person blocked the bot.

        What is written after sending is best effort: once the person has the answer, a
        database outage must not turn the turn into a failure (it would be answered again).
        """
        try:
            ids = await self.sender.send(person.chat_id, replies)
            if on_sent is not None:
                on_sent()
        except BlockedByUser:
            log.info("%s blocked the bot; not sending", person.key)
            with _after_the_answer("the blocked flag", person.key):
                await self.chats.set_blocked(person.key, True)
            return False
        if track:
            with _after_the_answer("message ids for /forget", person.key):
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
            person = replace(person, language=match.group(1))
        await self.converse(person, payload)

    async def _within_limits(self, person: Person) -> bool:
        """The flood brake: False (and, once per window, a polite note) when over the limit."""
        if await self.flood.allow(person.key):
            return True
        log.info("%s is over the message limit; message not processed", person.key)
        if await self.flood.should_warn(person.key):
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
        """Send ``text`` to the engine and deliver its replies; on failure, fall back and keep it.

        Failure is: the engine is down, errs, is slower than ``reply_timeout`` (its turn goes on
        and its answer follows), or finishes the turn without a single message — what Rasa does
        when a custom action is refused, fails or times out. In every case the person gets the
        hotline numbers now and the message waits in ``tg_pending`` for the real answer.
        """
        async with self._locked(person.key):
            out: list[Outgoing] | None = None
            engine_seconds = 0.0
            message_key = message_key_for(person.update_id)
            if not person.state.has_pending or await self._flush_pending(person.key):
                typing = asyncio.create_task(self._keep_typing(person.chat_id))
                engine_started = time.perf_counter()
                metadata = {"language": person.language, "message_key": message_key}
                try:
                    # A turn of this message still running here (the update came back after
                    # our own failed attempt) is joined, not looked up or started again.
                    found = None
                    if not self.turns.running(message_key):
                        found = await self._turn_already_run(person, message_key)
                    if found is IN_PROGRESS:
                        raise EngineError("the engine is still on this turn")
                    replies = found if found is not None else await self.turns.run(
                        person.key, text, metadata, self.reply_timeout
                    )  # fmt: skip
                    out = outgoing(replies)
                    if not out:
                        log.warning("engine turn for %s said nothing (failed action?)", person.key)
                        self.turns.failed(message_key)
                        out = None
                except EngineError as exc:
                    log.warning("engine failed for %s: %s", person.key, exc)
                except TimeoutError:
                    log.warning("engine slower than %.0f s for %s", self.reply_timeout, person.key)
                finally:
                    typing.cancel()
                engine_seconds = time.perf_counter() - engine_started
            if out is None:
                await self._keep(person, text, message_key)
        answered = out is not None
        if out is None and person.offline == "fallback":
            return  # they already have the numbers and "I saved your message" for this update
        if out is None:
            out = [self.text("text_tg_engine_down", person.language)]
        elif person.offline == "fallback":  # they were told "I saved your message"
            out.insert(0, self.text("text_tg_late_reply", person.language))

        def measure() -> None:
            if answered and person.received_at:
                total = time.perf_counter() - person.received_at
                metrics.ENGINE_TURN.observe(engine_seconds)
                metrics.ADAPTER_TURN.observe(total)
                metrics.ADAPTER_OVERHEAD.observe(max(0.0, total - engine_seconds))

        try:
            await self.deliver(person, (prefix or []) + out, on_sent=measure)
        except TelegramError as exc:
            if not answered or isinstance(exc, TimedOut):
                # Not answered: the message already waits and its answer comes with it.
                # Timed out: Telegram may have the message; sending again could double it.
                raise
            # Telegram failed past our retries: keep the message so the retry loop delivers
            # the engine's answer from its tracker (found by message_key, not run again).
            log.warning("answer for %s not delivered (%s); kept for a retry", person.key, exc)
            async with self._locked(person.key):
                await self._keep(person, text, message_key)
            return
        if person.state.case_status == "queued" and person.state.case_id is not None:
            # Waiting for a human: the operator will read what the bot said meanwhile.
            await self._log_turn(person, text, out)

    async def _keep(self, person: Person, text: str, message_key: str) -> None:
        """Keep an unanswered message in ``tg_pending``, leased to this replica: its engine turn
        may still be running here, so no other replica should send it again meanwhile."""
        pending_id = await self.chats.add_pending(person.key, text, person.language, message_key)
        if await self.chats.lease_pending(pending_id, PENDING_LEASE):
            self._leased.add(pending_id)
        self._wake.set()

    async def _turn_already_run(self, person: Person, message_key: str) -> Any:
        """For an update whose claim was taken over: the replies of its engine turn when the
        process that died had already run it (``IN_PROGRESS`` while the engine is still on it),
        else None. Costs a tracker read, so only taken-over updates pay it."""
        if not person.retaken:
            return None
        found = replies_in_tracker(await self.engine.tracker(person.key), message_key)
        if found is not None:
            log.info("%s: turn of a taken-over update found in the engine's tracker", person.key)
        return found

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
        if person.offline != "emergency":  # else they got it while the database was away
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
        """Answer one waiting message; False when the engine still cannot (caller holds the
        person's lock).

        Never runs a turn twice: a turn still running for this message is waited for; one that
        finished after the person stopped waiting is delivered from its result or, failing that,
        from the engine's tracker (found by ``message_key``). Only a turn the engine never saw,
        or one that ended without a word (a failed action; rewound first, so the conversation
        state is as before it), is sent again.
        """
        key = item.message_key
        if self.turns.running(key):
            return False
        if item.id not in self._leased:
            if not await self.chats.lease_pending(item.id, PENDING_LEASE):
                return False  # another replica is answering it
            self._leased.add(item.id)
        try:
            replies = self.turns.finished(key)
            if replies is None:
                replies = await self._replies_from_tracker(item)
            if replies is None:
                metadata = {"language": item.language, "message_key": key}
                replies = await self.turns.run(
                    item.user_key, item.text, metadata, self.reply_timeout
                )
        except TimeoutError:
            return False  # still running: its end wakes the retry loop
        except EngineError:
            await self._attempt_failed(item)
            return False
        if not outgoing(replies):
            await self._attempt_failed(item)
            return False
        state = await self.chats.get(item.user_key)
        if state is not None and not state.blocked:
            person = Person(item.user_key, state.chat_id, item.language, state)
            out = [self.text("text_tg_late_reply", item.language)] + outgoing(replies)
            try:
                await self.deliver(person, out)
            except TimedOut:  # Telegram may have it: sending again could double it
                log.warning("late answer for %s timed out; not sent again", item.user_key)
            except TelegramError as exc:  # kept: the next round delivers it from the tracker
                log.warning("late answer for %s not delivered: %s", item.user_key, exc)
                await self._attempt_failed(item)
                return False
        await self.chats.drop_pending(item.id)
        self._leased.discard(item.id)
        self.turns.done_with(key)
        return True

    async def _replies_from_tracker(self, item: Any) -> list[dict[str, Any]] | None:
        """The engine's answer to ``item`` if it gave one; None to send the message (again).

        A turn that ended without a message failed: Rasa recorded its custom action as run but
        dropped the action's events and replies. That action is run again where the turn left
        it (``/execute``), then the engine listens again — not the whole turn, which would meet
        a changed state (after the screening's last answer the form is already closed, so the
        answer again would be a bare "yes"). Rasa's ``rewind`` cannot undo such a turn: it
        replays a form's steps compacted and loses the form.
        """
        tracker = await self.engine.tracker(item.user_key)
        found = replies_in_tracker(tracker, item.message_key)
        if found is IN_PROGRESS:
            raise TimeoutError
        if found is None or outgoing(found):
            return found
        actions = custom_actions_of_turn(tracker, item.message_key)
        if not actions or last_user_key(tracker) != item.message_key:
            return None  # nothing to re-run here (or the conversation moved on): ask again
        replies: list[dict[str, Any]] = []
        try:
            for name in actions:
                replies += await self.engine.execute(item.user_key, name)
        finally:
            await self.engine.add_event(item.user_key, LISTEN)
        return replies

    async def _attempt_failed(self, item: Any) -> None:
        self.turns.failed(item.message_key)
        await self.chats.bump_pending(item.id)
        if item.id in self._leased:  # any replica may try it next
            self._leased.discard(item.id)
            await self.chats.release_pending(item.id)

    async def _retry_loop(self) -> None:
        """Rounds every ``retry_interval`` (2 s) while messages wait, every 5 intervals
        otherwise; woken at once when a message starts waiting or a slow turn ends. While the
        engine is down a round costs one refused connection, so a message waits at most one
        interval after the engine is ready again."""
        while True:
            try:
                waiting = await self._retry_round()
            except Exception:
                log.exception("retry round failed")
                waiting = True
            interval = self.retry_interval if waiting else self.retry_interval * 5
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()

    async def _retry_round(self) -> bool:
        """Try the waiting messages once; True when some are still waiting.

        One person's stuck message (a slow turn, a failing action) holds back only that
        person's later messages, which must stay in order, not everybody else's.
        """
        waiting = await self.chats.pending(limit=PENDING_BATCH)
        self.turns.prune({item.message_key for item in waiting})
        if len(waiting) < PENDING_BATCH:  # the whole queue is in view: drop leases of gone rows
            self._leased &= {item.id for item in waiting}
        if not waiting:
            return False
        if not await self.engine.ready():
            return True
        held_back: set[str] = set()
        for item in waiting:
            if item.user_key in held_back:
                continue
            if not self.turns.due(item.message_key):
                held_back.add(item.user_key)
                continue
            async with self._locked(item.user_key):
                still_there = any(p.id == item.id for p in await self.chats.pending(item.user_key))
                if still_there and not await self._answer_pending(item):
                    held_back.add(item.user_key)
        return bool(await self.chats.pending())

    async def _purge_loop(self) -> None:
        while True:
            try:
                await self.chats.purge(self.retention_days)
                await self.cases.purge_texts(self.retention_days)
                if self.eraser is not None:  # the engine's copy of the conversations too
                    removed = await self.eraser.purge(self.retention_days)
                    if removed:
                        log.info("retention: %d old engine events removed", removed)
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
            if not await self.cases.claim_alert(case.id):
                continue  # another replica is alerting it
            try:
                await self.bot.send_message(self.operators_chat_id, text)
            except TelegramError as exc:
                log.warning("alert for case %s failed: %s", case.code, exc)
                await self.cases.release_alert(case.id)
                continue
            sent += 1
        return sent

    async def _alert_loop(self) -> None:
        while True:
            await asyncio.sleep(30)
            try:
                await self.alert_waiting()
            except Exception:
                log.exception("alert round failed")
