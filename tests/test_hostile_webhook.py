"""Hostile input at the Telegram webhook: generated updates (hypothesis) and malformed bodies
POSTed to a webhook-mode bot service, with the real engine and real PTB behind it.

What must hold whatever arrives: no 5xx (a 5xx makes Telegram redeliver the same poison forever)
and no crash — the next normal message is answered; a well-formed private message always gets
at least one reply (a person in trouble is never left in silence). Everyone here is made up.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.devtools.emulator import EmulatorClient, running_emulator
from bot.server import MAX_BODY
from bot.telegram.app import SECRET_HEADER
from tests.telegram_helpers import (
    WEBHOOK_SECRET,
    last_seq,
    new_user_id,
    say,
    texts,
    webhook_service,
)

pytestmark = pytest.mark.engine
JSON = {"Content-Type": "application/json", SECRET_HEADER: WEBHOOK_SECRET}
# Our own update ids, far from the emulator's (100_000_001 upwards), so the two never collide.
_update_ids = itertools.count(5_000_000_001)
EMULATOR_IDS = range(100_000_000, 110_000_000)


@dataclass
class Hook:
    """A webhook-mode service, its emulator, and made-up people the emulator knows (a pool, so
    no one of them reaches the flood limit during the run)."""

    url: str
    app: web.Application
    client: EmulatorClient
    people: list[int]
    _turn: itertools.count = field(default_factory=itertools.count)

    def person(self) -> int:
        return self.people[next(self._turn) % len(self.people)]

    async def post(self, body: bytes, headers: dict[str, str] | None = None) -> int:
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.url, data=body, headers=JSON if headers is None else headers) as r,
        ):
            await r.read()
            return r.status

    async def answers_normally(self) -> None:
        """A person's ordinary question, through the emulator and the webhook, is answered by
        the engine (not by an error fallback)."""
        replies = await say(self.client, self.person(), "where can I find a shelter in Baku?",
                            quiet=0.2)  # fmt: skip
        assert "Baku" in texts(replies), texts(replies)


@pytest_asyncio.fixture(scope="module")
async def hook(stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hook]:
    db = tmp_path_factory.mktemp("hostile-webhook") / "hook.db"
    async with (
        running_emulator() as emu,
        webhook_service(stack.settings, emu.url, database_url=f"sqlite:///{db}") as (url, app),
    ):
        people = [new_user_id() for _ in range(24)]
        for person in people:  # the emulator learns the chat; the bot answers /help locally
            await say(emu.client, person, "/help", quiet=0.05)
        yield Hook(url, app, emu.client, people)


# --- generated updates -----------------------------------------------------------------------

TRICKY = "\u200f\u200e\u202e\u200b\u200d\u2066\ufeff\x00\x07\x1b\x7f\t\r\n \u00a0\u2028\u0301"
chars = st.one_of(
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
    st.sampled_from(TRICKY + "🙂👩‍👩‍👧🏳️‍🌈<>&'\";/{}[]"),
    st.sampled_from("əıöüğşçİ абвгд xyz "),
)
message_texts = st.one_of(
    st.text(alphabet=chars, max_size=200),
    st.just(""),
    st.text(alphabet=" \n\t\u200b\u00a0", max_size=5),
    st.text(alphabet=chars, min_size=4097, max_size=4300),
    st.sampled_from(["/", "/start", "/start@someone_elses_bot", "/affirm", '/x{"a":', "//"]),
)
big_ints = st.sampled_from([2**31, 2**53 + 1, 2**63, 2**64 + 7, -(2**63) - 1, 10**30, -1, 0])
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    big_ints,
    st.floats(),  # NaN and ±Infinity too: Python's json writes and reads them
    st.text(alphabet=chars, max_size=30),
)
json_junk = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(alphabet=chars, max_size=10), inner, max_size=4),
    ),
    max_leaves=10,
)
fresh_ids = st.builds(lambda: next(_update_ids))
entities = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                ["bot_command", "bold", "url", "mention", "text_link", "custom_emoji", "spoiler"]
            ),
            "offset": st.integers(min_value=-5, max_value=10_000),
            "length": st.integers(min_value=-5, max_value=10_000),
        }
    ),
    max_size=3,
)
language_codes = st.one_of(st.none(), st.sampled_from(["az", "ru", "en", "tr", "x", ""]),
                           st.text(alphabet=chars, max_size=12))  # fmt: skip


def person_obj(user: int, name: str, code: str | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": user, "is_bot": False, "first_name": name}
    if code is not None:
        obj["language_code"] = code
    return obj


@st.composite
def private_updates(draw: st.DrawFn, user: int) -> dict[str, Any]:
    """What Telegram sends for a person's text, edit or button press in a private chat — with
    any text, entities, names and language codes."""
    name = draw(st.text(alphabet=chars, min_size=1, max_size=64))
    sender = person_obj(user, name, draw(language_codes))
    chat = {"id": user, "type": "private", "first_name": name}
    kind = draw(st.sampled_from(["message", "message", "message", "edited_message", "button"]))
    message: dict[str, Any] = {
        "message_id": draw(st.integers(min_value=1, max_value=2**31 - 1)),
        "date": 1767225600,
        "chat": chat,
        "from": sender,
        "text": draw(message_texts),
    }
    found = draw(entities)
    if found:
        message["entities"] = found
    if kind == "edited_message":
        message["edit_date"] = 1767225660
        return {"update_id": next(_update_ids), "edited_message": message}
    if kind == "button":
        shown = {**message, "from": {"id": 424242, "is_bot": True, "first_name": "Bot"}}
        data = draw(
            st.one_of(
                st.text(alphabet=chars, max_size=64),
                st.sampled_from(["p:deadbeef", "p:", "/", "/affirm", "/change_language{}"]),
            )
        )
        query = {"id": str(draw(st.integers(1, 2**62))), "from": sender,
                 "chat_instance": "-1", "message": shown, "data": data}  # fmt: skip
        return {"update_id": next(_update_ids), "callback_query": query}
    return {"update_id": next(_update_ids), "message": message}


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out: list[tuple] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    return out


@st.composite
def broken(draw: st.DrawFn, update: dict[str, Any]) -> dict[str, Any]:
    """``update`` with 1-3 fields dropped, replaced by junk of any type, or added."""
    update = copy.deepcopy(update)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(update)
        if not paths:
            break
        ids = [p for p in paths if p[-1] in ("id", "update_id")]
        # Ids are what the adapter keys on: give them extra attention.
        path = draw(st.sampled_from(ids if ids and draw(st.booleans()) else paths))
        parent = update
        for key in path[:-1]:
            parent = parent[key]
        if not isinstance(parent, dict):
            continue
        operation = draw(st.sampled_from(["drop", "junk", "junk", "extra"]))
        if operation == "drop":
            parent.pop(path[-1], None)
        elif operation == "junk":
            parent[path[-1]] = draw(json_junk)
        else:
            parent[draw(st.text(alphabet=chars, max_size=12))] = draw(json_junk)
    if update.get("update_id") in EMULATOR_IDS:
        update["update_id"] = next(_update_ids)
    return update


KINDS = ["message", "edited_message", "channel_post", "callback_query", "my_chat_member",
         "chat_member", "inline_query", "poll_answer", "message_reaction", "business_message",
         "purchased_paid_media", "a_kind_telegram_adds_next_year"]  # fmt: skip


@st.composite
def update_cases(draw: st.DrawFn, people: list[int]) -> tuple[dict[str, Any], int | None]:
    """An update and the chat that must get a reply (None when no reply is owed: broken
    updates, other kinds, groups)."""
    user = draw(st.sampled_from(people))
    well_formed = draw(private_updates(user))
    shape = draw(st.sampled_from(["valid", "valid", "broken", "broken", "other", "group"]))
    if shape == "valid":
        return well_formed, user
    if shape == "broken":
        return draw(broken(well_formed)), None
    if shape == "group":
        group = copy.deepcopy(well_formed)
        for value in group.values():
            if isinstance(value, dict) and "chat" in value:
                value["chat"] = {"id": -user, "type": "group", "title": "made-up group"}
        return group, None
    kind = draw(st.sampled_from(KINDS))
    update_id = draw(st.one_of(fresh_ids, big_ints, json_junk))
    return {"update_id": update_id, kind: draw(json_junk)}, None


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(data=st.data())
async def test_generated_updates_never_get_a_5xx_and_every_private_message_gets_a_reply(
    hook: Hook, data: st.DataObject
) -> None:
    update, owed = data.draw(update_cases(hook.people))
    body = json.dumps(update, ensure_ascii=False).encode()
    after = await last_seq(hook.client, owed) if owed is not None else 0
    status = await hook.post(body)
    assert status < 500, (status, update)
    assert status == 200
    if owed is not None:  # processed before the 200: the reply is already out
        got = await hook.client.wait_for(owed, count=1, after=after, timeout=10)
        assert all(e["parse_mode"] in ("HTML", None) for e in got)
    await hook.answers_normally()


# --- malformed bodies ------------------------------------------------------------------------


def _update_for(user: int, text: str = "where can I find a shelter in Baku?") -> dict[str, Any]:
    return {
        "update_id": next(_update_ids),
        "message": {
            "message_id": 7, "date": 1767225600, "text": text,
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Made-up"},
        },
    }  # fmt: skip


async def _nothing_sent(hook: Hook, user: int, after: int) -> bool:
    return not [e for e in await hook.client.transcript(user, after) if e["direction"] == "out"]


async def test_oversized_body_gets_413_and_nothing_is_processed(hook: Hook) -> None:
    user = hook.person()
    update = _update_for(user)
    update["padding"] = "x" * MAX_BODY  # a real update, padded past the limit
    after = await last_seq(hook.client, user)
    assert await hook.post(json.dumps(update).encode()) == 413
    assert await _nothing_sent(hook, user, after)
    await hook.answers_normally()


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("empty body", b"", 400),
        ("not JSON", b"{not json", 400),
        ("cut off", b'{"update_id": 5000000000, "message": {', 400),
        ("not UTF-8", b'{"update_id": 1, "x": "\xff\xfe"}', 400),
        ("deeply nested", b'{"update_id": 1, "m": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", 400),
        ("nested but parseable", b'{"update_id": 1, "message": ' + b"[" * 400 + b"]" * 400 + b"}",
         200),
        ("a list", b"[1, 2, 3]", 200),
        ("a string", b'"update"', 200),
        ("a number", b"42", 200),
        ("null", b"null", 200),
        ("NaN and Infinity", b'{"update_id": NaN, "message": {"message_id": Infinity}}', 200),
        ("an empty object", b"{}", 200),
    ],
)  # fmt: skip
async def test_malformed_json_is_refused_or_ignored_and_the_service_keeps_working(
    hook: Hook, name: str, body: bytes, expected: int
) -> None:
    """Invalid JSON → 400; JSON that is not an update → 200 and ignored (Telegram would retry
    anything else forever); never a 5xx; the next message is answered."""
    assert await hook.post(body) == expected, name
    await hook.answers_normally()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_wrong_content_type_gets_415_and_nothing_is_processed(
    hook: Hook, content_type: str | None
) -> None:
    user = hook.person()
    after = await last_seq(hook.client, user)
    headers = {SECRET_HEADER: WEBHOOK_SECRET}
    if content_type:
        headers["Content-Type"] = content_type
    assert await hook.post(json.dumps(_update_for(user)).encode(), headers) == 415
    assert await _nothing_sent(hook, user, after)
    await hook.answers_normally()


@pytest.mark.parametrize("secret", [None, "", "wrong", WEBHOOK_SECRET + "x", WEBHOOK_SECRET[:-1]])
async def test_wrong_or_missing_webhook_secret_gets_403_and_nothing_is_processed(
    hook: Hook, secret: str | None
) -> None:
    user = hook.person()
    after = await last_seq(hook.client, user)
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    assert await hook.post(json.dumps(_update_for(user)).encode(), headers) == 403
    assert await hook.post(b"{not json", headers) == 403  # refused before the body is read
    assert await _nothing_sent(hook, user, after)
    await hook.answers_normally()


async def test_update_with_ids_of_the_wrong_type_or_size_is_ignored_without_a_5xx(
    hook: Hook,
) -> None:
    """Ids a forger can send and Telegram never does: a list as a chat id (unhashable: the
    per-chat processor cannot key on it), ids past 64 bits (the database refuses them)."""
    user = hook.person()
    for chat_id, user_id, update_id in [
        ([user], user, next(_update_ids)),
        ({"id": user}, user, next(_update_ids)),
        (user, [user], next(_update_ids)),
        (2**64 + 1, 2**64 + 1, next(_update_ids)),
        (user, user, 2**64 + 1),
        (user, user, -5),
        (user, user, "5000000000"),
        (True, True, next(_update_ids)),
    ]:
        update = _update_for(user)
        update["update_id"] = update_id
        update["message"]["chat"]["id"] = chat_id
        update["message"]["from"]["id"] = user_id
        after = await last_seq(hook.client, user)
        assert await hook.post(json.dumps(update).encode()) == 200, (chat_id, user_id, update_id)
        assert await _nothing_sent(hook, user, after)
    await hook.answers_normally()
