"""The NLG endpoint renders the right text in the right language, over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from bot.nlg import ResponseRenderer, conversation_language
from bot.server import create_app, start_site
from bot.stack import free_port


def tracker(slot_language=None, meta_language=None) -> dict:
    return {
        "sender_id": "t1",
        "slots": {"language": slot_language, "city": "Gəncə"},
        "latest_message": {"text": "x", "metadata": {"language": meta_language}},
        "events": [],
    }


def test_language_precedence() -> None:
    assert conversation_language(tracker(None, "ru"), {}) == "ru"
    assert conversation_language(tracker("az", "ru"), {}) == "az"  # explicit choice wins
    assert conversation_language(tracker("az", "ru"), {"language": "en"}) == "en"
    assert conversation_language(tracker(None, None), {}) == "en"
    assert conversation_language(tracker("xx", "de"), {}) == "en"  # junk is ignored
    assert conversation_language(None, {}) == "en"


def test_render_fills_numbers_from_knowledge(responses, contacts) -> None:
    renderer = ResponseRenderer(responses, contacts)
    out = renderer.render("utter_emergency", "az")
    assert contacts["police"].number in out["text"]
    assert contacts["trafficking_hotline"].number in out["text"]
    assert "{" not in out["text"]
    assert out["buttons"] and all(b["payload"].startswith("/") for b in out["buttons"])


def test_unknown_response_falls_back_to_default_with_numbers(responses, contacts) -> None:
    renderer = ResponseRenderer(responses, contacts)
    out = renderer.render("utter_does_not_exist", "ru")
    assert out["text"] == renderer.render("utter_default", "ru")["text"]
    assert contacts["trafficking_hotline"].number in out["text"]


async def test_nlg_endpoint_over_http(settings, responses, contacts) -> None:
    from dataclasses import replace

    port = free_port()
    app = create_app(replace(settings, bot_port=port))
    runner = await start_site(app, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            body = {
                "response": "utter_ask_hotline",
                "arguments": {},
                "tracker": tracker(None, "ru"),
                "channel": {"name": "rest"},
            }
            async with http.post(f"http://127.0.0.1:{port}/nlg", json=body) as resp:
                assert resp.status == 200
                out = await resp.json()
            expected = ResponseRenderer(responses, contacts).render("utter_ask_hotline", "ru")
            assert out == expected
            assert "горячая линия" in out["text"]
            async with http.post(f"http://127.0.0.1:{port}/nlg", data=b"{not json") as resp:
                assert resp.status == 400
            async with http.post(f"http://127.0.0.1:{port}/webhook", data=b"[") as resp:
                assert resp.status == 400
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("lang", ["az", "ru", "en"])
def test_every_response_renders_without_leftover_placeholders(responses, contacts, lang) -> None:
    renderer = ResponseRenderer(responses, contacts)
    for name in responses[lang]:
        out = renderer.render(name, lang, {"city": "Bakı"})
        assert "{" not in out["text"], f"{lang}/{name}"
