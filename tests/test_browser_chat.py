"""The local demo in a real browser: the emulator's web chat talks to the real bot (PTB ↔ engine).
A made-up person writes, sees the answer and the buttons, presses one, shares a location."""

from __future__ import annotations

import pytest

from tests.browser import chromium  # noqa: F401 - fixture

pytestmark = pytest.mark.engine


async def test_web_chat_with_buttons(stack, emulator, chromium) -> None:  # noqa: F811
    page = await chromium.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        await page.goto(emulator.url + "/")
        await page.fill("#user-id", "7300001")
        await page.fill("#first-name", "Nigar")
        await page.fill("#text", "where can I find a shelter in Baku? <script>x</script>")
        await page.click("#composer button[type=submit]")
        reply = page.locator("#chat li.msg.out").first
        await reply.wait_for(timeout=20_000)
        assert "Baku" in await reply.inner_text()
        mine = page.locator("#chat li.msg.in").first
        assert "<script>x</script>" in await mine.inner_text()  # shown as text, not run
        # /start brings the greeting with buttons; pressing one gets an answer.
        await page.click(".extras button[data-command='/start']")
        button = page.locator("#chat .keyboard button", has_text="Phone numbers").last
        await button.wait_for(timeout=20_000)
        await page.locator("#chat .keyboard button", has_text="English").last.wait_for()
        before = await page.locator("#chat li.msg.out").count()
        await button.click()
        await more_than(page, "#chat li.msg.out", before)
        assert "152" in await page.locator("#chat li.msg.out").last.inner_text()
        before = await page.locator("#chat li.msg.out").count()
        await page.click(".extras button[data-location='40.4093,49.8671']")
        await more_than(page, "#chat li.msg.out", before)
        assert "🏠" in await page.locator("#chat li.msg.out").last.inner_text()
        assert not errors, errors  # no CSP violations or script errors
    finally:
        await page.close()


async def more_than(page, selector: str, count: int, timeout: float = 20.0) -> None:
    """Wait until more than ``count`` elements match (the page's CSP forbids string eval, so
    Playwright's wait_for_function cannot be used)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await page.locator(selector).count() <= count:
        if loop.time() > deadline:
            raise TimeoutError(f"no new {selector} after {timeout} s")
        await asyncio.sleep(0.1)
