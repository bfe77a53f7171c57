"""Engine turns that outlive the person's wait, and when to try a failed one again.

Why this exists: the person must get an answer within ``ENGINE_TIMEOUT`` (the hotline numbers,
if nothing better), but the engine's turn must not be abandoned at that moment. Rasa's REST
channel *cancels* a turn whose HTTP client went away (``rest.message.received.timeout`` in its
log): closing the request at our timeout threw the turn away, the retry sent the message again,
and with an action slower than the timeout every retry was cancelled the same way — the answer
never came, while the action ran (with its side effects) once per retry. So the request stays
open in the background for up to ``TURN_LIMIT``; the retry loop takes the result from here when
it comes, instead of sending the message a second time while the first turn still runs.

Failed attempts back off (2, 4, 8 … 30 s) so that a turn failing for a known reason (the action
server is down) is not re-run every couple of seconds; the state is per process and lost on a
restart, which only means one early retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.engine import EngineClient

# Rasa waits up to 300 s for one custom action (rasa.core.constants.DEFAULT_REQUEST_TIMEOUT) and
# then finishes the turn without it; a turn still open after that is not coming back.
TURN_LIMIT = 330.0
BACKOFF_FIRST = 2.0
BACKOFF_MAX = 30.0
# A finished turn nobody collected (its pending message was erased by /forget) is dropped.
UNCLAIMED_AFTER = 600.0

Replies = list[dict[str, Any]]

# Rasa 3.6's own actions (rasa.shared.core.constants.DEFAULT_ACTION_NAMES): run inside the
# engine, never at our action server, so they cannot fail the way a custom action does.
RASA_ACTIONS = frozenset(
    {
        "action_listen",
        "action_restart",
        "action_session_start",
        "action_default_fallback",
        "action_deactivate_loop",
        "action_revert_fallback_events",
        "action_default_ask_affirmation",
        "action_default_ask_rephrase",
        "action_two_stage_fallback",
        "action_unlikely_intent",
        "action_back",
        "action_extract_slots",
    }
)


def last_user_key(tracker: dict[str, Any]) -> str | None:
    """The ``message_key`` of the last user message in a tracker (None if it has none)."""
    for event in reversed(tracker.get("events") or []):
        if event.get("event") == "user":
            return (event.get("metadata") or {}).get("message_key")
    return None


def events_of_turn(tracker: dict[str, Any], message_key: str) -> list[dict[str, Any]] | None:
    """The events after the user message tagged ``message_key``, up to the person's next
    message; None when the tracker has no such message (the engine never saw it)."""
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
    turn: list[dict[str, Any]] = []
    for event in events[start + 1 :]:
        if event.get("event") == "user":
            break
        turn.append(event)
    return turn


def custom_actions_of_turn(tracker: dict[str, Any], message_key: str) -> list[str]:
    """The custom actions (those served by our /webhook) the engine ran in the turn of the user
    message tagged ``message_key``, in order. For a turn that said nothing these are the ones
    that failed: Rasa records a failed action as executed, without its events."""
    names: list[str] = []
    for event in events_of_turn(tracker, message_key) or []:
        name = event.get("name") or ""
        custom = name.startswith("action_") and name not in RASA_ACTIONS
        if event.get("event") == "action" and custom and name not in names:
            names.append(name)
    return names


@dataclass
class _Turn:
    task: asyncio.Task[Replies]
    started: float


class EngineTurns:
    """Engine turns keyed by ``message_key``: started once, awaited by whoever needs them."""

    def __init__(
        self, engine: EngineClient, on_done: Callable[[], None], limit: float = TURN_LIMIT
    ) -> None:
        self.engine = engine
        self.on_done = on_done  # wakes the retry loop: a late answer is ready to deliver
        self.limit = limit
        self._turns: dict[str, _Turn] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # key → (failed attempts, next due)

    def _start(self, sender: str, text: str, metadata: dict[str, Any]) -> asyncio.Task[Replies]:
        key = metadata["message_key"]
        turn = self._turns.get(key)
        if turn is None:
            task = asyncio.create_task(
                self.engine.send(sender, text, metadata, timeout=self.limit),
                name=f"ctip-turn-{key[:8]}",
            )
            task.add_done_callback(lambda _: self.on_done())
            turn = self._turns[key] = _Turn(task, time.monotonic())
        return turn.task

    async def run(self, sender: str, text: str, metadata: dict[str, Any], wait: float) -> Replies:
        """Start the turn (or join the one already running for this ``message_key``) and wait
        up to ``wait`` seconds for its replies.

        Raises ``TimeoutError`` when the engine is slower (the turn goes on; ``finished`` hands
        out its result later) and ``EngineError`` when the turn failed.
        """
        key = metadata["message_key"]
        task = self._start(sender, text, metadata)
        try:
            replies = await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            raise
        except BaseException:
            if task.done():
                self._turns.pop(key, None)
            raise
        self._turns.pop(key, None)
        return replies

    def running(self, key: str) -> bool:
        """True while the engine is still working on this message."""
        turn = self._turns.get(key)
        return turn is not None and not turn.task.done()

    def finished(self, key: str) -> Replies | None:
        """The replies of a turn that finished after its caller stopped waiting (once), or None
        when there is none or it failed (then the caller asks the engine's tracker)."""
        turn = self._turns.get(key)
        if turn is None or not turn.task.done():
            return None
        del self._turns[key]
        if turn.task.cancelled() or turn.task.exception() is not None:
            return None
        return turn.task.result()

    # -- backoff -----------------------------------------------------------------------------
    def failed(self, key: str) -> None:
        """Note a failed attempt at this message: the next one waits 2, 4, 8 … 30 s."""
        count, _ = self._failures.get(key, (0, 0.0))
        delay = min(BACKOFF_FIRST * 2**count, BACKOFF_MAX)
        self._failures[key] = (count + 1, time.monotonic() + delay)

    def due(self, key: str) -> bool:
        """Whether the background retry may try this message now."""
        _, due = self._failures.get(key, (0, 0.0))
        return time.monotonic() >= due

    def done_with(self, key: str) -> None:
        """The message was answered (or erased): forget its failures."""
        self._failures.pop(key, None)

    def prune(self, live_keys: set[str]) -> None:
        """Drop state of messages that no longer wait (erased meanwhile)."""
        now = time.monotonic()
        for key in [k for k in self._failures if k not in live_keys]:
            del self._failures[key]
        for key, turn in list(self._turns.items()):
            if turn.task.done() and key not in live_keys and now - turn.started > UNCLAIMED_AFTER:
                del self._turns[key]
                with contextlib.suppress(BaseException):
                    turn.task.exception()  # retrieved: no "exception never retrieved" noise

    async def close(self) -> None:
        """Cancel what still runs (service shutdown); the messages stay pending in the DB."""
        tasks = [t.task for t in self._turns.values() if not t.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._turns.clear()
