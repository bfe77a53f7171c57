"""The soak benchmark's check (benchmarks/bench_soak.py): lost and duplicated replies are found.

Why a test: `make bench` exits non-zero on a lost or duplicated reply; a check that never fires
would hide exactly the regressions the soak exists to show.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from benchmarks.bench_soak import Person, Soak, Turn, judge, parse_args

NOTES = {"Sorry, I saved your message.": "text_tg_engine_down", "Here it is:": "text_tg_late_reply"}


def person(turns: list[Turn], seen_at: float = 0.5) -> Person:
    soak = Soak(600, 1, 1.0, 1.0, 60, 60, 30, 1, None)
    p = Person(1, "en", None, soak, NOTES, lambda: 0.0, random.Random(1))  # type: ignore[arg-type]
    p.turns = turns
    p.seen = {seq: seen_at for seq in range(100)}
    return p


def chat(*entries: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"seq": i + 1, "direction": d, "plain_text": t} for i, (d, t) in enumerate(entries)]


def tracker(*turns: tuple[str, list[str]]) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    for text, replies in turns:
        events.append({"event": "user", "text": text})
        events += [{"event": "bot", "text": r, "data": {}} for r in replies]
    return {"events": events}


def test_every_reply_once_is_clean() -> None:
    p = person([Turn("command", "/help", 0.0, 1.0), Turn("text", "hi", 2.0, 3.0)])
    verdicts, anomalies = judge(
        p,
        chat(("in", "/help"), ("out", "help"), ("in", "hi"), ("out", "Hello"), ("out", "Menu")),
        tracker(("hi", ["Hello", "Menu"])),
    )
    assert anomalies == []
    assert [(v.lost, v.duplicated, v.late) for v in verdicts] == [(0, 0, False), (0, 0, False)]


def test_lost_and_duplicated_replies_are_counted() -> None:
    p = person([Turn("text", "hi", 0.0, 1.0), Turn("text", "bye", 2.0, 3.0)])
    verdicts, _ = judge(
        p,
        chat(("in", "hi"), ("out", "Hello"), ("in", "bye"), ("out", "Bye"), ("out", "Bye")),
        tracker(("hi", ["Hello", "Menu"]), ("bye", ["Bye"])),
    )
    assert [(v.lost, v.duplicated) for v in verdicts] == [(1, 0), (0, 1)]


def test_engine_timeout_is_an_error_not_a_duplicate() -> None:
    p = person([Turn("text", "hi", 0.0, 9.0)])
    verdicts, _ = judge(
        p,
        chat(
            ("in", "hi"),
            ("out", "Sorry, I saved your message."),
            ("out", "Here it is:"),
            ("out", "Hello"),
        ),  # fmt: skip
        tracker(("hi", ["Hello"])),
    )
    (v,) = verdicts
    assert (v.lost, v.duplicated, v.errors) == (0, 0, 1)


def test_answer_after_the_person_stopped_waiting_is_late() -> None:
    p = person([Turn("text", "hi", 0.0, 1.0)])
    p.seen = {1: 0.1}  # the reply (seq 2) was never seen while the person waited
    verdicts, _ = judge(p, chat(("in", "hi"), ("out", "Hello")), tracker(("hi", ["Hello"])))
    assert verdicts[0].late and verdicts[0].latency is None


def test_message_the_engine_never_saw_is_flagged() -> None:
    p = person([Turn("text", "hi", 0.0, 60.0)])
    verdicts, _ = judge(p, chat(("in", "hi")), tracker())
    assert verdicts[0].lost == 1 and not verdicts[0].reached_engine


def test_the_production_profile_needs_postgresql_and_redis() -> None:
    """Two engines on SQLite files or without the lock store would not be the production
    profile: refused before anything starts."""
    for argv in (
        ["--profile", "production"],
        ["--profile", "production", "--redis-url", "redis://127.0.0.1:6379/3"],
        ["--profile", "production", "--database-url", "postgresql://u@h/soak"],
    ):
        with pytest.raises(SystemExit):
            parse_args(argv)
    soak = parse_args(["--profile", "production", "--database-url", "postgresql://u@h/soak",
                       "--redis-url", "redis://127.0.0.1:6379/3"])  # fmt: skip
    assert (soak.profile, soak.redis_url) == ("production", "redis://127.0.0.1:6379/3")
    assert parse_args([]).profile == "single"
