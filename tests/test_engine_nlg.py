"""The engine's NLG client (engine_ext/nlg.py) sends the conversation's state, not its history.

Run with the engine's Python against a small local endpoint: a tracker with a long history asks
for a response; the request must carry the slots and the latest message the renderer reads, and
no events (Rasa's own client posts every event of the session, for every response).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from bot.config import ROOT
from bot.engine_process import ENDPOINTS_TEMPLATE, PRODUCTION_ENDPOINTS, RASA_BIN, engine_env

ASK = """
import asyncio, json
from aiohttp import web
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from engine_ext.nlg import StateOnlyNLG

bodies = []

async def nlg(request):
    bodies.append(await request.json())
    return web.json_response({"text": "rendered", "buttons": []})

async def main():
    app = web.Application()
    app.router.add_post("/nlg", nlg)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    domain = Domain.from_dict({"slots": {"language": {"type": "text", "mappings": []}},
                               "responses": {"utter_greet": [{"text": "hi"}]}})
    events = [SlotSet("language", "ru")]
    for i in range(200):
        events += [UserUttered(f"made-up message {i}", {"name": "greet"},
                               metadata={"language": "ru"}),
                   ActionExecuted("utter_greet"), BotUttered("hi"), ActionExecuted("action_listen")]
    tracker = DialogueStateTracker.from_events("u_made_up", events, domain.slots)
    nlg_client = StateOnlyNLG(EndpointConfig(url=f"http://127.0.0.1:{port}/nlg"), domain)
    answer = await nlg_client.generate("utter_greet", tracker, "rest", domain_responses=None)
    await runner.cleanup()
    print("NLG " + json.dumps({"answer": answer, "body": bodies[0]}))

asyncio.run(main())
"""


def test_the_nlg_request_carries_the_state_without_the_history() -> None:
    if not RASA_BIN.exists():
        pytest.skip("the engine's venv is missing (make setup)")
    result = subprocess.run(
        [str(RASA_BIN.parent / "python"), "-W", "ignore", "-c", ASK],
        env=engine_env(), capture_output=True, text=True, timeout=180, cwd=ROOT,
    )  # fmt: skip
    line = next((x for x in result.stdout.splitlines() if x.startswith("NLG ")), None)
    assert line, result.stderr[-3000:]
    got = json.loads(line.removeprefix("NLG "))
    assert got["answer"]["text"] == "rendered"
    body = got["body"]
    assert body["response"] == "utter_greet" and body["channel"] == {"name": "rest"}
    tracker = body["tracker"]
    assert tracker["slots"]["language"] == "ru"  # what the renderer picks the language from
    assert tracker["latest_message"]["metadata"] == {"language": "ru"}
    assert not tracker.get("events")  # 200 turns of history not sent
    assert len(json.dumps(body)) < 4000


def test_both_endpoint_files_use_it() -> None:
    for text in (ENDPOINTS_TEMPLATE, PRODUCTION_ENDPOINTS.read_text()):
        nlg = text.split("nlg:", 1)[1].split("\n\n", 1)[0]
        assert "type: engine_ext.nlg.StateOnlyNLG" in nlg
