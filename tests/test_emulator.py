"""The Telegram Bot API emulator, driven by the real python-telegram-bot over real HTTP.

Each test checks one Telegram rule the adapter relies on (error texts PTB maps to exceptions,
retry_after, the 48-hour delete window, webhook retries), so a regression in the emulator shows up
here before it makes the adapter's tests lie.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import telegram
from aiohttp import web
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.devtools.telegram_emulator import EmulatorError, RunningEmulator, running_emulator
from bot.server import start_site
from bot.stack import free_port

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

TOKEN = "123456789:TEST-token-not-real"
JSON_HEADERS = {"Content-Type": "application/json"}
ALICE = 50001  # made-up people
BORIS = 50002


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def emu_server() -> AsyncIterator[RunningEmulator]:
    async with running_emulator() as emu:
        yield emu


@pytest_asyncio.fixture(loop_scope="session")
async def emu(emu_server: RunningEmulator) -> AsyncIterator[RunningEmulator]:
    emu_server.state.reset()
    yield emu_server
    emu_server.state.reset()


@pytest_asyncio.fixture(loop_scope="session")
async def bot(emu: RunningEmulator) -> AsyncIterator[telegram.Bot]:
    async with telegram.Bot(TOKEN, base_url=emu.bot_api_base) as tg_bot:
        yield tg_bot


def out_messages(transcript: list[dict]) -> list[dict]:
    return [e for e in transcript if e["direction"] == "out"]


async def test_get_me(bot: telegram.Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456789
    assert me.is_bot and me.username == "ctip_assistant_bot"
    assert me.first_name == "CTIP Assistant"
    assert me.can_join_groups and not me.supports_inline_queries


async def test_raw_api_shapes(emu: RunningEmulator) -> None:
    """JSON and form bodies, case-insensitive names, unknown methods, unknown chats."""
    await emu.client.send_text(ALICE, "hi")
    base = f"{emu.bot_api_base}{TOKEN}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/GETME") as r:
            assert (await r.json())["result"]["id"] == 123456789
        async with http.post(f"{base}/noSuchMethod") as r:
            assert r.status == 404
            assert await r.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        async with http.post(f"{base}/sendMessage", json={"chat_id": 999, "text": "x"}) as r:
            assert r.status == 400
            assert (await r.json())["description"] == "Bad Request: chat not found"
        markup = json.dumps({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]})
        form = {"chat_id": str(ALICE), "text": "form", "reply_markup": markup}
        async with http.post(f"{base}/sendmessage", data=form) as r:
            body = await r.json()
            assert (
                body["ok"]
                and body["result"]["reply_markup"]["inline_keyboard"][0][0]["text"] == "A"
            )
        multipart = aiohttp.FormData({"chat_id": str(ALICE), "text": "multi"})
        async with http.post(f"{base}/sendMessage", data=multipart()) as r:
            assert (await r.json())["result"]["text"] == "multi"
        async with http.post(f"{base}/getMe", data=b"{oops", headers=JSON_HEADERS) as r:
            assert r.status == 400
        async with http.get(f"{base}/sendMessage", params={"chat_id": ALICE, "text": "q"}) as r:
            assert (await r.json())["result"]["text"] == "q"
    calls = await emu.client.calls("sendMessage")
    assert [c["status"] for c in calls] == [400, 200, 200, 200]
    assert calls[1]["params"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "a"


async def test_send_edit_delete_in_transcript(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_text(ALICE, "Salam", first_name="Aysel", language_code="az")
    sent = await bot.send_message(ALICE, "<b>Salam</b>, Aysel!", parse_mode="HTML")
    assert sent.text == "Salam, Aysel!" and sent.from_user.id == 123456789
    assert sent.chat.first_name == "Aysel"
    reply = await bot.send_message(
        ALICE, "reply", reply_parameters=telegram.ReplyParameters(message_id=sent.message_id)
    )
    assert reply.reply_to_message.message_id == sent.message_id
    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(ALICE, "x", reply_parameters=telegram.ReplyParameters(9999))
    await bot.delete_message(ALICE, reply.message_id)
    edited = await bot.edit_message_text("Salam again", chat_id=ALICE, message_id=sent.message_id)
    assert edited.text == "Salam again" and edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Salam again", chat_id=ALICE, message_id=sent.message_id)
    assert await bot.delete_message(ALICE, sent.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(ALICE, sent.message_id)

    transcript = await emu.client.transcript(ALICE)
    assert [e["direction"] for e in transcript] == ["in", "out", "out"]
    assert transcript[0]["text"] == "Salam"
    reply = transcript[1]
    assert reply["edited"] and reply["deleted"]
    assert reply["plain_text"] == "Salam again" and reply["parse_mode"] is None


@pytest.mark.parametrize(
    "text",
    [
        "a < b",
        "Tom & Jerry",
        "1 > 0",
        "line<br>break",
        "<b>bold<i>both</b></i>",
        "<b>never closed",
        "<span>hidden</span>",
        "<script>alert(1)</script>",
    ],
)
async def test_bad_html_is_refused(emu: RunningEmulator, bot: telegram.Bot, text: str) -> None:
    await emu.client.send_text(ALICE, "hi")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(ALICE, text, parse_mode="HTML")
    assert out_messages(await emu.client.transcript(ALICE)) == []


async def test_good_html_and_markdown(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_text(ALICE, "hi")
    html = (
        '<b>Hotline</b> &amp; <a href="https://example.org/x?a=1&amp;b=2">link</a> '
        '&lt;tag&gt; &#39;q&#x27; <tg-spoiler>s</tg-spoiler> <span class="tg-spoiler">t</span>'
        '<pre><code class="language-python">x = 1</code></pre><blockquote>q</blockquote>'
    )
    message = await bot.send_message(ALICE, html, parse_mode="HTML")
    assert message.text == "Hotline & link <tag> 'q' s tx = 1q"
    kinds = {e.type for e in message.entities}
    assert {"bold", "text_link", "spoiler", "pre", "blockquote"} <= kinds
    assert message.text_html.startswith("<b>Hotline</b> &amp; ")

    md = await bot.send_message(
        ALICE, r"*Call* 1\-2\-3\. [here](https://example.org)", parse_mode="MarkdownV2"
    )
    assert md.text == "Call 1-2-3. here"
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(ALICE, "Call 1-2-3.", parse_mode="MarkdownV2")
    out = out_messages(await emu.client.transcript(ALICE))
    assert out[0]["text"] == html and out[0]["parse_mode"] == "HTML"
    assert out[0]["plain_text"] == message.text


async def test_length_and_empty_text(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_text(ALICE, "hi")
    await bot.send_message(ALICE, "👍" * 2048)  # 4096 UTF-16 code units: the limit exactly
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(ALICE, "👍" * 2049)
    await bot.send_message(
        ALICE, "<b>" + "x" * 4096 + "</b>", parse_mode="HTML"
    )  # tags don't count
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(ALICE, "<b> </b>", parse_mode="HTML")
    assert len(out_messages(await emu.client.transcript(ALICE))) == 2


async def test_429_retry_after_delivers_nothing(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_text(ALICE, "hi")
    await emu.client.inject_fault("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(ALICE, "first try")
    assert caught.value.retry_after in (7, dtm.timedelta(seconds=7))
    assert out_messages(await emu.client.transcript(ALICE)) == []
    await bot.send_message(ALICE, "second try")
    assert [e["text"] for e in out_messages(await emu.client.transcript(ALICE))] == ["second try"]
    assert [c["status"] for c in await emu.client.calls("sendMessage")] == [429, 200]


async def test_502_and_500_are_network_errors(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_text(ALICE, "hi")
    await emu.client.inject_fault("*", 502, count=2)
    for _ in range(2):
        with pytest.raises(NetworkError) as caught:
            await bot.send_message(ALICE, "lost")
        assert not isinstance(caught.value, BadRequest)
    await emu.client.inject_fault("sendMessage", 500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(ALICE, "lost")
    assert out_messages(await emu.client.transcript(ALICE)) == []
    await emu.client.inject_fault("sendMessage", 429, count=5)
    await emu.client.clear_faults()
    await bot.send_message(ALICE, "through")


async def test_blocked_user(emu: RunningEmulator, bot: telegram.Bot) -> None:
    first = await emu.client.send_text(BORIS, "hello")
    blocked = await emu.client.block(BORIS)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(BORIS, "are you there?")
    with pytest.raises(Forbidden):
        await bot.send_chat_action(BORIS, "typing")
    updates = await bot.get_updates(timeout=0)
    assert [u.update_id for u in updates] == [first["update_id"], blocked["update_id"]]
    member = updates[1].my_chat_member
    assert member.old_chat_member.status == "member" and member.new_chat_member.status == "kicked"
    await emu.client.unblock(BORIS)
    await bot.send_chat_action(BORIS, "typing")
    await bot.send_message(BORIS, "welcome back")
    transcript = await emu.client.transcript(BORIS)
    assert {"direction": "action", "kind": "action", "action": "typing"}.items() <= transcript[
        -2
    ].items()


async def test_48_hour_delete_rule(emu: RunningEmulator, bot: telegram.Bot) -> None:
    theirs = await emu.client.send_text(ALICE, "my passport number is ...")
    ours = await bot.send_message(ALICE, "Please don't share document numbers here.")
    old = await bot.send_message(ALICE, "old")
    await emu.client.age_messages(ALICE, 49)
    with pytest.raises(BadRequest, match="(?i)message can't be deleted"):
        await bot.delete_message(ALICE, old.message_id)
    emu.state.age_messages(ALICE, -2)  # 47 hours old: allowed again
    assert await bot.delete_message(ALICE, theirs["message_id"])  # the person's, private chat
    assert await bot.delete_message(ALICE, ours.message_id)
    with pytest.raises(BadRequest, match="(?i)message to delete not found"):
        await bot.delete_message(ALICE, 9999)
    group = await emu.client.send_text(BORIS, "in a group", chat_type="group")
    assert group["chat_id"] < 0
    with pytest.raises(BadRequest, match="(?i)message can't be deleted"):
        await bot.delete_message(group["chat_id"], group["message_id"])
    assert await bot.delete_messages(ALICE, [old.message_id, 12345])  # unknown ids are skipped
    deleted = {e["message_id"]: e["deleted"] for e in await emu.client.transcript(ALICE)}
    assert deleted == {theirs["message_id"]: True, ours.message_id: True, old.message_id: True}


async def test_commands_per_language(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await bot.set_my_commands([("start", "Start"), ("help", "Help")])
    await bot.set_my_commands([("start", "Başla")], language_code="az")
    await bot.set_my_commands([("start", "Начать")], language_code="ru")
    private = telegram.BotCommandScopeAllPrivateChats()
    await bot.set_my_commands([("language", "Language")], scope=private)
    assert [c.description for c in await bot.get_my_commands()] == ["Start", "Help"]
    assert [c.description for c in await bot.get_my_commands(language_code="az")] == ["Başla"]
    assert [c.command for c in await bot.get_my_commands(scope=private)] == ["language"]
    assert await emu.client.commands("ru") == [{"command": "start", "description": "Начать"}]
    assert await emu.client.commands(scope={"type": "all_private_chats"}) == [
        {"command": "language", "description": "Language"}
    ]
    await bot.delete_my_commands(language_code="az")
    assert await bot.get_my_commands(language_code="az") == ()
    assert len(await bot.get_my_commands()) == 2
    assert await bot.set_my_description("Help for people at risk", language_code="en")


async def test_get_updates_offset_and_long_poll(emu: RunningEmulator, bot: telegram.Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert time.monotonic() - started >= 0.9

    async def later() -> None:
        await asyncio.sleep(0.3)
        await emu.client.send_text(ALICE, "late")

    task = asyncio.create_task(later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    await task
    assert time.monotonic() - started < 3
    assert [u.message.text for u in updates] == ["late"]

    await emu.client.send_text(ALICE, "two")
    await emu.client.send_text(ALICE, "three")
    again = await bot.get_updates(timeout=0)  # nothing confirmed yet: all three
    assert [u.message.text for u in again] == ["late", "two", "three"]
    limited = await bot.get_updates(offset=again[0].update_id + 1, limit=1, timeout=0)
    assert [u.message.text for u in limited] == ["two"]
    rest = await bot.get_updates(offset=again[-1].update_id + 1, timeout=0)
    assert rest == ()
    loc = await emu.client.send_location(ALICE, 40.4093, 49.8671)
    voice = await emu.client.send_media(ALICE, "voice")
    only_text = await bot.get_updates(offset=loc["update_id"], timeout=0)
    assert only_text[0].message.location.latitude == pytest.approx(40.4093)
    assert only_text[1].message.voice.duration == 3 and only_text[1].update_id == voice["update_id"]


async def test_all_media_kinds_parse(emu: RunningEmulator, bot: telegram.Bot) -> None:
    kinds = ["sticker", "voice", "photo", "video", "video_note", "audio", "document",
             "animation", "contact", "poll", "dice"]  # fmt: skip
    for kind in kinds:
        await emu.client.send_media(ALICE, kind)
    updates = await bot.get_updates(timeout=0)
    for kind, update in zip(kinds, updates, strict=True):
        assert getattr(update.message, kind), kind
    with pytest.raises(EmulatorError):
        await emu.client.send_media(ALICE, "hologram")


async def test_press_button_and_answer_once(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_command(ALICE, "/start")
    keyboard = telegram.InlineKeyboardMarkup(
        [[telegram.InlineKeyboardButton("Azərbaycanca", callback_data="lang:az")]]
    )
    sent = await bot.send_message(ALICE, "Choose a language", reply_markup=keyboard)
    with pytest.raises(EmulatorError) as refused:
        await emu.client.press(ALICE, sent.message_id, "lang:xx")
    assert refused.value.status == 400
    pressed = await emu.client.press(ALICE, sent.message_id, "lang:az")
    updates = await bot.get_updates(timeout=0)
    assert updates[0].message.text == "/start"
    query = updates[-1].callback_query
    assert updates[-1].update_id == pressed["update_id"]
    assert query.data == "lang:az" and query.from_user.id == ALICE
    assert query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="OK")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query.id)
    answers = [e for e in await emu.client.transcript(ALICE) if e["direction"] == "callback_answer"]
    assert answers[0]["text"] == "OK"
    await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=None)
    with pytest.raises(EmulatorError):
        await emu.client.press(ALICE, sent.message_id, "lang:az")


async def test_redeliver_same_update_id(emu: RunningEmulator, bot: telegram.Bot) -> None:
    sent = await emu.client.send_text(ALICE, "once")
    first = await bot.get_updates(timeout=0)
    confirmed = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert confirmed == ()
    await emu.client.redeliver(sent["update_id"])
    second = await bot.get_updates(offset=first[-1].update_id + 1, timeout=0)
    assert [u.update_id for u in first] == [u.update_id for u in second] == [sent["update_id"]]
    assert second[0].message.text == "once"
    assert await bot.get_updates(offset=second[-1].update_id + 1, timeout=0) == ()


async def test_user_edit_gives_edited_message(emu: RunningEmulator, bot: telegram.Bot) -> None:
    sent = await emu.client.send_text(ALICE, "helo")
    await emu.client.edit_text(ALICE, sent["message_id"], "hello")
    updates = await bot.get_updates(timeout=0)
    assert updates[1].edited_message.text == "hello"
    assert updates[1].edited_message.message_id == sent["message_id"]


async def test_webhook_delivery_with_secret_and_retry(
    emu: RunningEmulator, bot: telegram.Bot
) -> None:
    received: list[tuple[str | None, dict]] = []
    statuses = [500]  # the first POST fails, then the receiver recovers

    async def receiver(request: web.Request) -> web.Response:
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        return web.Response(status=statuses.pop(0) if statuses else 200)

    app = web.Application()
    app.router.add_post("/tg", receiver)
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    try:
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/tg", secret_token="s3cret-Token")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates(timeout=0)
        sent = await emu.client.send_text(ALICE, "via webhook")
        for _ in range(100):
            if len(received) >= 2:
                break
            await asyncio.sleep(0.05)
        assert [r[0] for r in received] == ["s3cret-Token"] * 2
        assert [r[1]["update_id"] for r in received] == [sent["update_id"]] * 2
        assert received[1][1]["message"]["text"] == "via webhook"
        info = await bot.get_webhook_info()
        assert info.url.endswith("/tg") and info.pending_update_count == 0
        assert info.last_error_message and "500" in info.last_error_message
        stats = (await emu.client.webhook_info())["stats"]
        assert stats == {"delivered": 1, "failed_attempts": 1, "dropped": 0}
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()
    finally:
        await runner.cleanup()


async def test_webhook_gives_up_after_retries(emu: RunningEmulator, bot: telegram.Bot) -> None:
    emu.state.webhook_retries, emu.state.webhook_backoff = 2, 0.01
    await bot.set_webhook(f"http://127.0.0.1:{free_port()}/nobody")  # connection refused
    try:
        await emu.client.send_text(ALICE, "lost")
        for _ in range(100):
            if emu.state.webhook_stats["dropped"]:
                break
            await asyncio.sleep(0.05)
        assert emu.state.webhook_stats == {"delivered": 0, "failed_attempts": 3, "dropped": 1}
        assert "Connection failed" in (await bot.get_webhook_info()).last_error_message
    finally:
        emu.state.webhook_retries, emu.state.webhook_backoff = 3, 0.05
        await bot.delete_webhook()


async def test_application_polling_end_to_end(emu: RunningEmulator) -> None:
    """A PTB Application polling the emulator answers /start and a button press."""

    async def start(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = [[telegram.InlineKeyboardButton("Help", callback_data="help")]]
        await update.effective_chat.send_action("typing")
        await update.message.reply_text(
            "Hello, <b>friend</b>",
            parse_mode="HTML",
            reply_markup=telegram.InlineKeyboardMarkup(keyboard),
        )

    async def button(update: telegram.Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer()
        await update.callback_query.edit_message_text("You asked for help.")

    app = ApplicationBuilder().token(TOKEN).base_url(emu.bot_api_base).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(button))
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            sent = await emu.client.send_command(ALICE, "/start", language_code="az")
            reply = (await emu.client.wait_for(ALICE, after=0, timeout=10))[0]
            assert reply["plain_text"] == "Hello, friend" and reply["parse_mode"] == "HTML"
            assert reply["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "help"
            await emu.client.press(ALICE, reply["message_id"], "help")
            for _ in range(100):
                transcript = await emu.client.transcript(ALICE)
                if out_messages(transcript)[0]["edited"]:
                    break
                await asyncio.sleep(0.05)
            assert out_messages(transcript)[0]["plain_text"] == "You asked for help."
            assert any(e["direction"] == "callback_answer" for e in transcript)
            assert any(e.get("action") == "typing" for e in transcript)
            assert sent["chat_id"] == ALICE
        finally:
            await app.updater.stop()
            await app.stop()


async def test_wait_for_times_out_with_what_it_got(emu: RunningEmulator, bot: telegram.Bot) -> None:
    await emu.client.send_text(ALICE, "hi")
    await bot.send_message(ALICE, "one")
    got = await emu.client.wait_for(ALICE, 1, timeout=2)
    assert got[0]["text"] == "one"
    with pytest.raises(TimeoutError, match="one"):
        await emu.client.wait_for(ALICE, 2, timeout=0.5)


async def test_chat_page_is_served_with_csp(emu: RunningEmulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(emu.url + "/") as r:
            assert r.status == 200
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            page = await r.text()
        assert '<script src="/static/emulator.js"' in page
        assert "<script>" not in page and " onclick=" not in page
        for name in ("emulator.js", "emulator.css"):
            async with http.get(f"{emu.url}/static/{name}") as r:
                assert r.status == 200 and "Content-Security-Policy" in r.headers
        async with http.get(emu.url + "/static/..%2Fcontrol.py") as r:
            assert r.status == 404


async def test_parallel_webhook_delivery_keeps_each_chats_order(
    emu: RunningEmulator, bot: telegram.Bot
) -> None:
    """``webhook_parallel``: several chats' updates at once, up to ``max_connections``, but a
    chat's next update only after its previous one was answered (as Telegram delivers)."""
    in_flight: dict[int, int] = {}
    most_at_once = 0
    overlaps_in_a_chat = 0
    order: dict[int, list[str]] = {}

    async def receiver(request: web.Request) -> web.Response:
        nonlocal most_at_once, overlaps_in_a_chat
        message = (await request.json())["message"]
        chat = message["chat"]["id"]
        overlaps_in_a_chat += in_flight.get(chat, 0) > 0
        in_flight[chat] = in_flight.get(chat, 0) + 1
        most_at_once = max(most_at_once, sum(in_flight.values()))
        order.setdefault(chat, []).append(message["text"])
        await asyncio.sleep(0.15)  # a bot turn
        in_flight[chat] -= 1
        return web.Response()

    app = web.Application()
    app.router.add_post("/tg", receiver)
    port = free_port()
    runner = await start_site(app, "127.0.0.1", port)
    chats = [7_200_000_101 + i for i in range(4)]
    emu.state.webhook_parallel = True
    try:
        assert await bot.set_webhook(f"http://127.0.0.1:{port}/tg", max_connections=3)
        for n in range(3):
            for chat in chats:
                await emu.client.send_text(chat, f"message {n}")
        for _ in range(200):
            if sum(map(len, order.values())) >= 12 and not any(in_flight.values()):
                break
            await asyncio.sleep(0.05)
        assert order == {chat: ["message 0", "message 1", "message 2"] for chat in chats}
        assert overlaps_in_a_chat == 0
        assert most_at_once == 3  # parallel, and never past max_connections
        assert (await emu.client.webhook_info())["stats"]["delivered"] == 12
    finally:
        emu.state.webhook_parallel = False
        await bot.delete_webhook()
        await runner.cleanup()
