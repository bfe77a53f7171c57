"""Conversations through the real engine, NLG and actions, in all three languages.

Test stories live in ``tests/stories/{az,ru,en}.yml`` (Rasa's test-story format). Each user step
is sent through the REST channel with the language our detector picks; the engine's tracker must
show the expected intent and actions, and the replies must be the texts of the expected responses
in that language.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from bot.config import ROOT
from bot.devtools.nlu_eval import strip_annotations
from bot.language import detect
from bot.nlg import ResponseRenderer

pytestmark = pytest.mark.engine

IGNORED_ACTIONS = {"action_listen", "action_session_start"}


def load_stories() -> list[tuple[str, str, list[dict]]]:
    stories = []
    for lang in ("az", "ru", "en"):
        data = yaml.safe_load((ROOT / "tests" / "stories" / f"{lang}.yml").read_text("utf-8"))
        for story in data["stories"]:
            stories.append((lang, story["story"], story["steps"]))
    return stories


def turns(steps: list[dict]) -> list[tuple[str, str, list[str]]]:
    """Group steps into (user text, expected intent, expected actions) turns."""
    out: list[tuple[str, str, list[str]]] = []
    for step in steps:
        if "user" in step:
            out.append((strip_annotations(step["user"].strip()), step["intent"], []))
        else:
            out[-1][2].append(step["action"])
    return out


def actions_after_last_user(tracker: dict) -> tuple[str | None, list[str]]:
    events = tracker["events"]
    last_user = max(i for i, e in enumerate(events) if e["event"] == "user")
    intent = events[last_user]["parse_data"]["intent"]["name"]
    actions = [
        e["name"]
        for e in events[last_user + 1 :]
        if e["event"] == "action" and e["name"] not in IGNORED_ACTIONS
    ]
    return intent, actions


def test_every_contract_intent_has_a_story_in_every_language() -> None:
    from tests.test_responses import CONTRACT_INTENTS

    for lang in ("az", "ru", "en"):
        covered = {
            intent
            for story_lang, _, steps in load_stories()
            if story_lang == lang
            for _, intent, _ in turns(steps)
        }
        assert covered >= CONTRACT_INTENTS, f"{lang}: {sorted(CONTRACT_INTENTS - covered)}"


@pytest.mark.parametrize(
    ("lang", "name", "steps"), load_stories(), ids=[s[1] for s in load_stories()]
)
async def test_story(stack, responses, contacts, lang: str, name: str, steps: list[dict]) -> None:
    renderer = ResponseRenderer(responses, contacts)
    sender = f"test-{uuid.uuid4().hex}"
    language = lang
    for text, intent, expected_actions in turns(steps):
        language = detect(text, prior=language) or language
        assert language == lang, f"detected {language} for {text!r}"
        replies = await stack.engine.send(sender, text, {"language": language})
        tracker = await stack.engine.tracker(sender)
        got_intent, got_actions = actions_after_last_user(tracker)
        assert got_intent == intent, f"{text!r}: intent {got_intent}, expected {intent}"
        assert got_actions == expected_actions, f"{text!r}: actions {got_actions}"
        texts = [r.get("text") for r in replies]
        for action in expected_actions:
            if action.startswith("utter_"):
                assert renderer.render(action, lang)["text"] in texts, f"{action} not in {lang}"


async def test_emergency_reply_has_numbers_and_offers_a_person(stack, contacts) -> None:
    for lang, text in [
        ("az", "kömək edin məni döyürlər"),
        ("ru", "помогите меня бьют"),
        ("en", "help they are beating me"),
    ]:
        replies = await stack.engine.send(f"sos-{uuid.uuid4().hex}", text, {"language": lang})
        body = "\n".join(r.get("text", "") for r in replies)
        for key in ("police", "emergency", "trafficking_hotline"):
            assert contacts[key].number in body, f"{lang}: {contacts[key].number} missing"
        payloads = [b["payload"] for r in replies for b in r.get("buttons") or []]
        assert "/human_handoff" in payloads


async def test_explicit_language_choice_wins_over_detection(stack, responses, contacts) -> None:
    renderer = ResponseRenderer(responses, contacts)
    sender = f"lang-{uuid.uuid4().hex}"
    replies = await stack.engine.send(sender, "/change_language", {"language": "en"})
    payloads = [b["payload"] for r in replies for b in r.get("buttons") or []]
    assert len(payloads) == 3 and all(p.startswith("/change_language") for p in payloads)
    ru_payload = next(p for p in payloads if '"ru"' in p)
    replies = await stack.engine.send(sender, ru_payload, {"language": "en"})
    assert replies[0]["text"] == renderer.render("utter_language_changed", "ru")["text"]
    # The person now writes English, but asked for Russian: the answer stays Russian.
    replies = await stack.engine.send(sender, "where can I find a shelter", {"language": "en"})
    assert replies[0]["text"] == renderer.render("utter_ask_city", "ru")["text"]
    tracker = await stack.engine.tracker(sender)
    assert tracker["slots"]["language"] == "ru"


async def test_change_language_by_name_in_one_message(stack, responses, contacts) -> None:
    renderer = ResponseRenderer(responses, contacts)
    sender = f"lang-{uuid.uuid4().hex}"
    replies = await stack.engine.send(sender, "dili ingiliscəyə dəyiş", {"language": "az"})
    assert replies[0]["text"] == renderer.render("utter_language_changed", "en")["text"]


async def test_entities_are_normalised(stack) -> None:
    cases = [
        ("Bakıda sığınacaq lazımdır", "city", "Bakı"),
        ("нужно убежище в Гяндже", "city", "Gəncə"),
        ("my employer in Dubai took my passport", "document", "passport"),
    ]
    for text, entity, value in cases:
        parsed = await stack.engine.parse(text)
        values = {e["entity"]: e["value"] for e in parsed["entities"]}
        assert values.get(entity) == value, f"{text!r}: {parsed['entities']}"


def test_story_files_exist() -> None:
    for lang in ("az", "ru", "en"):
        assert (Path(ROOT) / "tests" / "stories" / f"{lang}.yml").exists()


@pytest.mark.parametrize("lang", ["az", "ru", "en"])
async def test_screening_to_a_high_risk_result(stack, responses, contacts, lang) -> None:
    renderer = ResponseRenderer(responses, contacts)
    sender = f"screen-{uuid.uuid4().hex}"
    replies = await stack.engine.send(sender, "/start_screening", {"language": lang})
    texts = [r.get("text") for r in replies]
    assert renderer.render("utter_screening_intro", lang)["text"] in texts
    assert renderer.render("utter_ask_ind_deception", lang)["text"] in texts
    assert [b["payload"] for b in replies[-1]["buttons"]] == ["/affirm", "/deny", "/stop_screening"]
    answers = ["/affirm", "/deny"] + ["/affirm"] * 9  # yes to 10 of 11 indicators
    for answer in answers:
        replies = await stack.engine.send(sender, answer, {"language": lang})
    expected = renderer.render("utter_screening_high", lang, {"score": 10})["text"]
    assert replies[0]["text"] == expected
    assert "/human_handoff" in [b["payload"] for b in replies[0]["buttons"]]
    tracker = await stack.engine.tracker(sender)
    assert tracker["active_loop"] in ({}, None) or not tracker["active_loop"].get("name")
    assert all(tracker["slots"][k] is None for k in tracker["slots"] if k.startswith("ind_"))


async def test_screening_can_be_stopped(stack, responses, contacts) -> None:
    renderer = ResponseRenderer(responses, contacts)
    sender = f"screen-{uuid.uuid4().hex}"
    await stack.engine.send(sender, "/start_screening", {"language": "ru"})
    await stack.engine.send(sender, "/deny", {"language": "ru"})
    replies = await stack.engine.send(sender, "/stop_screening", {"language": "ru"})
    assert replies[0]["text"] == renderer.render("utter_screening_stopped", "ru")["text"]
    # Afterwards the bot answers normally again.
    replies = await stack.engine.send(sender, "какие у меня права", {"language": "ru"})
    assert replies[0]["buttons"] and "/ask_rights" in replies[0]["buttons"][0]["payload"]


@pytest.mark.parametrize(
    ("lang", "text", "city"),
    [
        ("az", "Gəncədə sığınacaq lazımdır", "Gəncə"),
        ("ru", "где найти убежище в Сумгаите", "Сумгаит"),
        ("en", "is there a shelter in Lankaran", "Lankaran"),
    ],
)
async def test_shelter_in_a_city(stack, lang, text, city) -> None:
    replies = await stack.engine.send(f"shelter-{uuid.uuid4().hex}", text, {"language": lang})
    body = replies[0]["text"]
    assert "🏠" in body and city in body, body


@pytest.mark.parametrize(
    ("lang", "question", "answer", "shown"),
    [
        ("az", "sığınacaq lazımdır", "Gəncə", "Gəncə"),
        ("az", "siginacaq lazimdir", "Gence", "Gəncə"),
        ("ru", "где найти убежище", "Гянджа", "Гянджа"),
        ("ru", "где найти убежище", "Баку", "Баку"),
        ("en", "where can I find a shelter", "Ganja", "Ganja"),
        ("en", "where can I find a shelter", "in Baku", "Baku"),
    ],
)
async def test_bare_city_answers_which_city(stack, lang, question, answer, shown) -> None:
    """After "which city?", the city alone gets the shelters there (not "how can I help?")."""
    sender = f"bare-city-{uuid.uuid4().hex}"
    await stack.engine.send(sender, question, {"language": lang})
    replies = await stack.engine.send(sender, answer, {"language": lang})
    body = replies[0]["text"]
    assert "🏠" in body and shown in body, body


@pytest.mark.parametrize(
    ("lang", "text", "article"),
    [
        (
            "az",
            "Cinayət Məcəlləsinin 144-1-ci maddəsi üzrə insan alverinə görə cəza nədir?",
            "144-1",
        ),
        ("ru", "какая ответственность за принудительный труд по УК Азербайджана", "144-2"),
        ("en", "what does the Criminal Code say about slavery and its penalties", "106"),
    ],
)
async def test_lawyer_question_gets_a_cited_article(stack, lang, text, article) -> None:
    replies = await stack.engine.send(f"lawyer-{uuid.uuid4().hex}", text, {"language": lang})
    body = replies[0]["text"]
    assert f" {article}" in body.splitlines()[0], body
