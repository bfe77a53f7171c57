"""The pure parts of fault handling: reading a turn out of a tracker, backoff of failed tries."""

from __future__ import annotations

import time

from bot.telegram.adapter import IN_PROGRESS, replies_in_tracker
from bot.telegram.turns import EngineTurns, custom_actions_of_turn, last_user_key


def user(key: str, text: str = "hi") -> dict:
    return {"event": "user", "text": text, "metadata": {"message_key": key}}


def action(name: str) -> dict:
    return {"event": "action", "name": name}


def bot(text: str) -> dict:
    return {"event": "bot", "text": text, "data": {}}


def test_a_failed_action_is_found_in_a_silent_turn() -> None:
    events = [
        user("k1"),
        action("action_extract_slots"),
        action("screening_form"),
        {"event": "active_loop", "name": None},
        action("action_screening_result"),
        action("action_listen"),
    ]
    tracker = {"events": events}
    assert replies_in_tracker(tracker, "k1") == []  # finished, said nothing
    assert custom_actions_of_turn(tracker, "k1") == ["action_screening_result"]
    assert last_user_key(tracker) == "k1"


def test_replies_of_a_rerun_action_count_for_the_message() -> None:
    events = [
        user("k1"),
        action("action_shelter"),
        action("action_listen"),
        action("action_shelter"),  # run again by the retry (/execute)
        bot("Help near Baku"),
        action("action_listen"),
        user("k2"),
        bot("not this one"),
    ]
    found = replies_in_tracker({"events": events}, "k1")
    assert [r["text"] for r in found] == ["Help near Baku"]


def test_a_turn_without_listen_is_in_progress_and_an_unknown_key_is_none() -> None:
    tracker = {"events": [user("k1"), action("action_shelter")]}
    assert replies_in_tracker(tracker, "k1") is IN_PROGRESS
    assert replies_in_tracker(tracker, "other") is None
    assert custom_actions_of_turn(tracker, "other") == []


def test_failed_attempts_back_off_and_are_forgotten_when_answered() -> None:
    turns = EngineTurns(engine=None, on_done=lambda: None)  # type: ignore[arg-type]
    assert turns.due("k")
    turns.failed("k")
    assert not turns.due("k")  # 2 s from now
    turns._failures["k"] = (5, 0.0)  # as if the last delay had passed
    assert turns.due("k")
    turns.failed("k")
    count, due = turns._failures["k"]
    assert count == 6 and 29 < due - time.monotonic() <= 30  # capped at 30 s
    turns.done_with("k")
    assert turns.due("k") and "k" not in turns._failures
