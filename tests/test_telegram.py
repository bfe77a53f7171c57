"""The Telegram adapter end to end: real PTB ↔ the Bot API emulator over HTTP ↔ the real engine
↔ actions ↔ SQLite. Made-up people only."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.config import ROOT
from bot.nlg import ResponseRenderer
from bot.privacy import pseudonymise
from bot.responses import load_contacts, load_responses
from bot.server import DB, TELEGRAM
from bot.storage.db import make_sessionmaker
from bot.storage.models import Escalation, PendingMessage, TelegramChat
from bot.telegram.delivery import Outgoing
from tests.telegram_helpers import (
    bot_messages,
    buttons,
    engine_paused,
    eventually,
    last_seq,
    new_user_id,
    say,
    texts,
)

pytestmark = pytest.mark.engine
RENDER = ResponseRenderer(load_responses(ROOT / "responses"), load_contacts(ROOT / "knowledge"))
LANGS = ["az", "ru", "en"]


def local(name: str, lang: str) -> str:
    return RENDER.render(name, lang)["text"]


@pytest.fixture
def client(stack, emulator):
    return emulator.client


def service(stack):
    return stack.app[TELEGRAM]


async def test_command_menu_is_set_in_three_languages(stack, client) -> None:
    for lang in LANGS:
        commands = await client.commands(language_code=lang)
        assert [c["command"] for c in commands] == [
            "start",
            "help",
            "language",
            "sos",
            "operator",
            "privacy",
            "forget",
        ]
        assert commands[3]["description"] == local("text_tg_cmd_sos", lang)
    default = await client.commands()
    assert [c["command"] for c in default][:2] == ["start", "help"]


@pytest.mark.parametrize("lang", LANGS)
async def test_start_greets_with_numbers_and_language_choice(stack, client, contacts, lang) -> None:
    user = new_user_id()
    replies = await say(client, user, "/start", language_code=lang, count=2)
    body = texts(replies)
    assert local("utter_greet", lang).splitlines()[0] in body
    assert contacts["police"].number in body and contacts["trafficking_hotline"].number in body
    titles = [b["text"] for b in buttons(replies[-1])]
    assert titles == ["Azərbaycanca", "Русский", "English"]


@pytest.mark.parametrize(
    ("lang", "text", "expect"),
    [
        ("en", "where can I find a safe shelter in Baku?", "Baku"),
        ("ru", "где найти приют в Баку?", "Баку"),
        ("az", "Bakida siginacaq harda var?", "Bakı"),
    ],
)
async def test_free_text_reaches_the_engine_and_answers_in_the_language(
    stack, client, lang, text, expect
) -> None:
    user = new_user_id()
    replies = await say(client, user, text, language_code="en")
    assert expect in texts(replies)
    assert all(r["parse_mode"] == "HTML" for r in replies)


async def test_button_press_changes_language_and_is_answered(stack, client, responses) -> None:
    user = new_user_id()
    replies = await say(client, user, "/language", language_code="en")
    ru = next(b for b in buttons(replies[-1]) if b["text"] == "Русский")
    after = await last_seq(client, user)
    await client.press(user, replies[-1]["message_id"], ru["callback_data"])
    answer = await bot_messages(client, user, after)
    assert local("utter_language_changed", "ru") in texts(answer)
    answered = [c for c in await client.calls("answerCallbackQuery")]
    assert answered, "the callback query was not answered"
    # The explicit choice now outranks detection, even for English text.
    replies = await say(client, user, "thanks")
    assert any(ch in texts(replies) for ch in "абвгдеёжзийклмнопрстуфхцчшщыэюя")


@pytest.mark.parametrize("kind", ["sticker", "voice", "photo", "video", "document", "contact"])
async def test_media_gets_a_kind_answer_in_the_persons_language(stack, client, kind) -> None:
    user = new_user_id()
    await say(client, user, "привет", language_code="ru")
    after = await last_seq(client, user)
    await client.send_media(user, kind, language_code="ru")
    replies = await bot_messages(client, user, after)
    assert texts(replies) == local("text_tg_media", "ru")


async def test_groups_get_one_pointer_to_the_private_chat(stack, client) -> None:
    user = new_user_id()
    group = -user
    after = await last_seq(client, group)
    await client.send_text(user, "hello bot", chat_type="group", chat_id=group)
    replies = await bot_messages(client, group, after)
    assert texts(replies) == local("text_tg_group", "en")
    after = await last_seq(client, group)
    await client.send_text(user, "my passport was taken", chat_type="group", chat_id=group)
    with pytest.raises(TimeoutError):
        await client.wait_for(group, count=1, after=after, timeout=1.5)


async def test_unknown_command_empty_and_huge_texts(stack, client) -> None:
    user = new_user_id()
    replies = await say(client, user, "/weather")
    assert texts(replies) == local("text_tg_unknown_command", "en")
    replies = await say(client, user, "   ")
    assert texts(replies) == local("text_tg_empty", "en")
    huge = "My employer took my passport and does not pay me. " * 120  # ~6,000 characters
    replies = await say(client, user, huge, count=2)
    assert local("text_tg_too_long", "en") in texts(replies)
    assert len(replies) >= 2  # the note and the engine's answer


async def test_edited_message_is_answered_again(stack, client) -> None:
    user = new_user_id()
    first = await client.send_text(user, "helo", language_code="en")
    await bot_messages(client, user, 0)
    after = await last_seq(client, user)
    await client.edit_text(user, first["message_id"], "where can I find a shelter in Baku?")
    replies = await bot_messages(client, user, after)
    assert "Baku" in texts(replies)


async def test_safety_net_and_sos_answer_without_the_engine(stack, client, contacts) -> None:
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    with engine_paused(stack.engine_proc.pid):
        replies = await say(client, user, "/sos", language_code="az", quiet=0.3)
        assert contacts["police"].number in texts(replies)
        replies = await say(
            client, user, "kömək edin, məni döyürlər", language_code="az", quiet=0.3
        )
        assert texts(replies) == local("utter_emergency", "az")
    sessions = make_sessionmaker(stack.app[DB])
    async with sessions() as s:
        case = await s.scalar(select(Escalation).where(Escalation.user_key == key))
    assert case is not None and case.priority == "urgent"


async def test_engine_down_gives_numbers_and_the_message_is_answered_later(
    stack, client, contacts
) -> None:
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    sessions = make_sessionmaker(stack.app[DB])
    with engine_paused(stack.engine_proc.pid):
        replies = await say(
            client,
            user,
            "where can I find a shelter in Baku?",
            quiet=0.3,
        )
        assert texts(replies) == local("text_tg_engine_down", "en")
        async with sessions() as s:
            waiting = await s.scalar(
                select(func.count())
                .select_from(PendingMessage)
                .where(PendingMessage.user_key == key)
            )
        assert waiting == 1
        after = await last_seq(client, user)
    late = await bot_messages(client, user, after, count=2, timeout=40)
    assert local("text_tg_late_reply", "en") in texts(late)
    assert "Baku" in texts(late)

    async def drained() -> bool:
        async with sessions() as s:
            return not await s.scalar(
                select(func.count())
                .select_from(PendingMessage)
                .where(PendingMessage.user_key == key)
            )

    await eventually(drained)


async def test_duplicate_updates_are_processed_once(stack, client) -> None:
    user = new_user_id()
    sent = await client.send_text(user, "hello", language_code="en")
    await bot_messages(client, user, 0)
    before = len([e for e in await client.transcript(user) if e["direction"] == "out"])
    await client.redeliver(sent["update_id"])
    await asyncio.sleep(2.0)
    after = len([e for e in await client.transcript(user) if e["direction"] == "out"])
    assert after == before


async def test_long_replies_are_split_and_markup_is_escaped(stack, client) -> None:
    user = new_user_id()
    await say(client, user, "hello")
    adapter = service(stack).adapter
    person = await adapter.person(user, user, "en")
    long_text = "<b>not bold</b> & <script>alert(1)</script>\n" + ("word " * 1000)
    after = await last_seq(client, user)
    await adapter.deliver(person, [Outgoing(long_text, [{"title": "OK", "payload": "/affirm"}])])
    sent = await bot_messages(client, user, after, count=2)
    assert len(sent) == 2
    assert all(len(e["plain_text"]) <= 4096 for e in sent)
    assert sent[0]["plain_text"].startswith("<b>not bold</b> & <script>")
    assert not sent[0].get("reply_markup") and buttons(sent[1])


async def test_forget_erases_data_and_deletes_the_chat(stack, client, emulator) -> None:
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    await say(client, user, "my employer took my passport")
    await say(client, user, "/operator")
    tracker = await stack.engine.tracker(key)
    assert tracker["events"], "the engine should hold the conversation before /forget"
    after = await last_seq(client, user)
    await client.send_command(user, "/forget", language_code="en")
    done = await bot_messages(client, user, after)
    assert local("text_tg_forget_done", "en").split(".")[0] in texts(done)
    transcript = await client.transcript(user)
    visible = [e for e in transcript if e["direction"] in ("in", "out") and not e["deleted"]]
    assert [e["plain_text"] for e in visible] == [texts(done)]  # only the confirmation is left
    sessions = make_sessionmaker(stack.app[DB])
    async with sessions() as s:
        for model in (TelegramChat, Escalation, PendingMessage):
            count = await s.scalar(
                select(func.count()).select_from(model).where(model.user_key == key)
            )
            assert count == 0, model.__tablename__
    tracker = await stack.engine.tracker(key)
    assert not [e for e in tracker["events"] if e.get("event") == "user"]


async def test_blocked_person_is_not_written_to(stack, client) -> None:
    user = new_user_id()
    key = pseudonymise(user, stack.settings.secret_key)
    await say(client, user, "hello")
    await client.block(user)
    chats = service(stack).adapter.chats
    await eventually(lambda: _blocked(chats, key))
    adapter = service(stack).adapter
    person = await adapter.person(user, user, "en")
    assert not await adapter.deliver(person, [Outgoing("are you there?")])


async def _blocked(chats, key: str) -> bool:
    state = await chats.get(key)
    return bool(state and state.blocked)


COMMAND_ANSWERS = {
    "/help": "text_tg_help",
    "/privacy": "text_tg_privacy",
    "/sos": "utter_emergency",
    "/operator": "text_case_queued",
    "/language": "utter_ask_language",
    "/weather": "text_tg_unknown_command",
}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("command", list(COMMAND_ANSWERS))
async def test_each_command_answers_in_the_persons_language(stack, client, lang, command) -> None:
    user = new_user_id()
    replies = await say(client, user, command, language_code=lang, quiet=0.4)
    assert texts(replies) == local(COMMAND_ANSWERS[command], lang)


@pytest.mark.parametrize("lang", LANGS)
async def test_every_media_kind_in_every_language(stack, client, lang) -> None:
    user = new_user_id()
    for kind in ("voice", "photo", "video", "sticker", "document", "contact", "audio"):
        after = await last_seq(client, user)
        await client.send_media(user, kind, language_code=lang)
        replies = await bot_messages(client, user, after, quiet=0.3)
        assert texts(replies) == local("text_tg_media", lang), kind


@pytest.mark.parametrize(
    ("lang", "place", "coords"),
    [("az", "Bakı", (40.6828, 46.3606)), ("ru", "Баку", (40.6828, 46.3606)),
     ("en", "Baku", (40.6828, 46.3606))],
)  # fmt: skip
async def test_location_in_every_language(stack, client, lang, place, coords) -> None:
    """From Ganja the nearest shelter in knowledge/ is in Baku, about 300 km away."""
    user = new_user_id()
    after = await last_seq(client, user)
    await client.send_location(user, *coords, language_code=lang)
    replies = await bot_messages(client, user, after)
    unit = "км" if lang == "ru" else "km"
    assert f"{place} (~29" in texts(replies) and f" {unit})" in texts(replies)


async def test_metrics_show_the_adapter_and_engine_time(stack, client) -> None:
    import aiohttp

    user = new_user_id()
    await say(client, user, "hello")
    async with aiohttp.ClientSession() as http, http.get(stack.bot_url + "/metrics") as resp:
        body = await resp.text()
    assert resp.status == 200
    count = next(
        int(line.split()[-1]) for line in body.splitlines()
        if line.startswith("ctip_adapter_overhead_seconds_count")
    )  # fmt: skip
    assert count >= 1
    assert 'ctip_engine_turn_seconds{quantile="0.5"}' in body


async def test_flooding_is_braked_politely_and_danger_still_gets_through(stack, client) -> None:
    from bot.telegram.flood import FloodGuard

    adapter = service(stack).adapter
    saved = adapter.flood
    adapter.flood = FloodGuard(limit=3, window=60)
    try:
        user, other = new_user_id(), new_user_id()
        for i in range(6):
            await client.send_text(user, f"hello {i}", language_code="en")
        replies = await bot_messages(client, user, 0, count=4, quiet=1.5)
        assert texts(replies).count(local("text_tg_slow_down", "en")) == 1
        assert len(replies) == 4  # three answers and one note; the rest skipped
        replies = await say(client, user, "help, they are beating me")
        assert texts(replies) == local("utter_emergency", "en")
        replies = await say(client, other, "hello")
        assert local("text_tg_slow_down", "en") not in texts(replies)
    finally:
        adapter.flood = saved
