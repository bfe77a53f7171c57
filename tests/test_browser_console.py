"""The operator console in a real browser (Debian's chromium via Playwright) against the whole
stack: a made-up operator logs in with TOTP, a made-up person on the emulator asks for a human,
the case appears live, is claimed, answered (the reply reaches the person's Telegram chat) and
closed, and the bot answers the person again."""

from __future__ import annotations

import asyncio

import pyotp
import pytest

from bot.console import accounts
from bot.privacy import pseudonymise
from bot.server import DB
from bot.storage.cases import CaseStore
from bot.storage.db import make_sessionmaker
from tests.browser import chromium  # noqa: F401 - fixture
from tests.console_helpers import PASSWORD
from tests.telegram_helpers import bot_messages, eventually, last_seq, new_user_id, say, texts

pytestmark = pytest.mark.engine


async def test_operator_takes_a_chat_in_the_browser(stack, emulator, chromium) -> None:  # noqa: F811
    sessions = make_sessionmaker(stack.app[DB])
    await accounts.create_user(sessions, "aysel.operator", "operator", PASSWORD)
    client = emulator.client
    person = new_user_id()
    key = pseudonymise(person, stack.settings.secret_key)
    cases = CaseStore(sessions)

    page = await chromium.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    try:
        # Log in: password, then the first-login TOTP enrolment with a code from the secret.
        await page.goto(stack.bot_url + "/console/login")
        await page.fill("input[name=username]", "aysel.operator")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        secret = "".join((await page.locator(".secret code").inner_text()).split())
        await page.fill("input[name=code]", pyotp.TOTP(secret).now())
        await page.click("form[action='/console/totp'] button[type=submit]")
        await page.wait_for_url("**/console/queue")

        # The person asks for a human on Telegram; the case appears without a reload.
        replies = await say(client, person, "I want to talk to a person")
        assert "operator" in texts(replies)
        case = await eventually(lambda: cases.open_case_of(key))
        row = page.locator("#queue-rows tr", has_text=case.code)
        await row.wait_for(timeout=15_000)
        assert "I want to talk" not in await page.locator("#queue").inner_text()  # no text

        await row.locator("button", has_text="Claim").click()
        await page.wait_for_url(f"**/console/cases/{case.id}")
        transcript = page.locator("#transcript")
        assert "I want to talk to a person" in await transcript.inner_text()
        joined = await bot_messages(client, person, 0, count=2)
        assert "joined" in texts(joined)

        # The reply reaches the person's chat; the page shows it delivered.
        after = await last_seq(client, person)
        reply = "Hello, this is Aysel from the hotline. <script>alert(1)</script>"
        await page.fill("#reply-text", reply)
        await page.click("#reply button[type=submit]")
        got = await bot_messages(client, person, after)
        assert reply in texts(got)
        line = page.locator("#transcript li.line-operator").last
        await line.wait_for()
        assert "<script>alert(1)</script>" in await line.inner_text()  # shown as text
        await eventually(lambda: _has_text(line, "delivered"))

        # The person answers: it appears live, and the engine is not involved.
        await client.send_text(person, "thank you, I am safe now", language_code="en")
        await page.locator("#transcript", has_text="thank you, I am safe now").wait_for()

        # Close with an outcome: the person is told, and the bot answers again.
        after = await last_seq(client, person)
        await page.select_option("select[name=outcome]", "information_given")
        await page.click("form[action$='/close'] button[type=submit]")
        closed = await bot_messages(client, person, after)
        assert "closed" in texts(closed)
        replies = await say(client, person, "where can I find a shelter in Baku?")
        assert "Baku" in texts(replies)
        await asyncio.sleep(0.2)
        assert not problems, problems
    finally:
        await page.close()


async def _has_text(locator, text: str) -> bool:
    return text in await locator.inner_text()
