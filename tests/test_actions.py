"""Each custom action with real rasa-sdk Trackers against a real database (SQLite, PostgreSQL)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy import select

from actions import context
from actions.contacts import ActionContacts
from actions.fallback import ActionFallback
from actions.handoff import ActionHandoff
from actions.law import ActionLegalAnswer
from actions.rights import ActionRights
from actions.shelters import ActionShelter
from bot.knowledge import read_knowledge
from bot.nlg import ResponseRenderer
from bot.storage.models import Escalation
from tests.db import fresh_database, loaded_repository


def tracker(
    text: str = "",
    intent: str = "greet",
    lang: str = "en",
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    sender: str = "u-test",
) -> Tracker:
    return Tracker(
        sender_id=sender,
        slots={"language": None, **(slots or {})},
        latest_message={
            "text": text,
            "intent": {"name": intent, "confidence": 0.9},
            "entities": entities or [],
            "metadata": {"language": lang},
        },
        events=[],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def repo(request, root: Path, tmp_path: Path, responses, contacts):
    url = await fresh_database(request.param, tmp_path)
    repository, engine = await loaded_repository(url, root / "knowledge")
    context.configure(repository, ResponseRenderer(responses, contacts))
    yield repository
    await engine.dispose()


async def run(action, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    dispatcher = CollectingDispatcher()
    events = await action.run(dispatcher, t, {})
    return dispatcher.messages, events


async def test_contacts_flag_unverified_entries(repo, contacts) -> None:
    for lang, flag in [
        ("en", "Not confirmed"),
        ("ru", "Не подтверждено"),
        ("az", "Təsdiqlənməyib"),
    ]:
        messages, _ = await run(ActionContacts(), tracker("numbers", "ask_hotline", lang))
        text = messages[0]["text"]
        assert contacts["trafficking_hotline"].number in text
        for c in await repo.contacts("hotline"):
            assert c.number in text
            line = next(line for line in text.splitlines() if c.number in line)
            assert (flag in line) == (not c.verified), line


def user_event(intent: str, text: str = "") -> dict[str, Any]:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}}


def action_event(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name}


def org_blocks(text: str) -> list[str]:
    """Each organisation's lines (``🏢 name`` and the indented lines under it)."""
    blocks: list[str] = []
    for line in text.splitlines():
        if line.startswith("🏢"):
            blocks.append(line)
        elif blocks and line.startswith("   "):
            blocks[-1] += "\n" + line
    return blocks


async def test_contacts_ask_for_the_city_only_when_it_matters(repo) -> None:
    # Legal aid is local (the Bar's centre is in Baku, the ASAN centres in four towns): the
    # national numbers come at once, then the city question with buttons that come back here.
    messages, events = await run(ActionContacts(), tracker("a lawyer", "ask_legal_aid", "en"))
    assert "152" in messages[0]["text"] and "🏢" not in messages[0]["text"]
    assert "which city" in messages[1]["text"]
    assert '/ask_legal_aid{"city": "Bakı"}' in [b["payload"] for b in messages[1]["buttons"]]
    assert {"event": "slot", "name": "awaiting_city", "value": True} in [
        {k: e[k] for k in ("event", "name", "value")} for e in events
    ]
    # The hotline is national: no question. In an emergency nobody is asked anything first.
    for intent in ("ask_hotline", "emergency"):
        messages, events = await run(ActionContacts(), tracker("numbers", intent, "ru"))
        assert len(messages) == 1 and events == [], intent


async def test_contacts_add_the_organisations_serving_the_city(repo) -> None:
    orgs = {o.id: o for o in await repo.organisations()}
    bar = orgs["bar_legal_aid_center"].texts["name"]
    asan = orgs["iom_legal_aid_centres_asan"].texts["name"]
    # City from this message's entity (English), then from the remembered slot (Russian).
    in_baku = tracker(
        "lawyer in Baku", "ask_legal_aid", "en", [{"entity": "city", "value": "Bakı"}]
    )
    messages, _ = await run(ActionContacts(), in_baku)
    text = messages[0]["text"]
    assert len(messages) == 1 and "152" in text and "Also in Baku" in text and bar["en"] in text
    assert asan["en"] not in text  # serves other towns
    messages, _ = await run(
        ActionContacts(), tracker("адвокат", "ask_legal_aid", "ru", slots={"city": "Bərdə"})
    )
    text = messages[0]["text"]
    assert "Барда" in text and asan["ru"] in text and bar["ru"] not in text
    # No organisation in the city: the nearest ones, with the distance.
    messages, _ = await run(
        ActionContacts(),
        tracker("vəkil", "ask_legal_aid", "az", [{"entity": "city", "value": "Gəncə"}]),
    )
    assert "ən yaxınları" in messages[0]["text"] and " km)" in messages[0]["text"]


async def test_contacts_flag_unverified_organisations_and_local_numbers(repo) -> None:
    orgs = {o.texts["name"]["en"]: o for o in await repo.organisations()}
    phones = {c.id: c for c in await repo.contacts()}
    for city in ("Bakı", "Bərdə", "Gəncə", "Naxçıvan"):
        t = tracker("lawyer", "ask_legal_aid", "en", [{"entity": "city", "value": city}])
        messages, _ = await run(ActionContacts(), t)
        blocks = org_blocks(messages[0]["text"])
        assert blocks, city
        for block in blocks:
            lines = block.splitlines()
            org = orgs[lines[0][2:].split(" — ")[0]]
            assert lines[-1].strip().startswith("⚠️ Not confirmed") == (not org.verified), block
            for line in lines:
                if line.strip().startswith("📞"):
                    assert ("Not confirmed" in line) == (not phones[org.phone].verified), line
    # 103 serves Baku only: named with its city when the city is unknown, left out in Ganja.
    messages, _ = await run(ActionContacts(), tracker("help", "emergency", "en"))
    assert "📞 103 — Ambulance (24/7) [Baku]" in messages[0]["text"]
    ganja = tracker("help", "emergency", "en", [{"entity": "city", "value": "Gəncə"}])
    messages, _ = await run(ActionContacts(), ganja)
    assert "103" not in messages[0]["text"] and "112" in messages[0]["text"]


async def test_contacts_unknown_city_is_said_and_asked_again(repo) -> None:
    t = tracker("lawyer", "ask_legal_aid", "en", [{"entity": "city", "value": "Atlantis"}])
    messages, events = await run(ActionContacts(), t)
    assert "152" in messages[0]["text"]
    assert '"Atlantis"' in messages[1]["text"] and "which city" in messages[1]["text"]
    assert {(e["name"], e["value"]) for e in events} == {("awaiting_city", True), ("city", None)}


async def test_bare_city_answers_the_action_that_asked(repo) -> None:
    """The fallback reads from the events which action asked "which city?", and for what."""
    city = [{"entity": "city", "value": "Bakı"}]
    asked_by_contacts = Tracker(
        sender_id="u-c",
        slots={"language": None, "awaiting_city": True},
        latest_message={
            "text": "Baki",
            "intent": {"name": "nlu_fallback", "confidence": 0.3},
            "entities": city,
            "metadata": {"language": "en"},
        },
        events=[
            user_event("ask_legal_aid", "I need a lawyer"),
            action_event("action_contacts"),
            {"event": "slot", "name": "awaiting_city", "value": True},
            action_event("action_listen"),
            user_event("nlu_fallback", "Baki"),
        ],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )
    messages, events = await run(ActionFallback(), asked_by_contacts)
    text = messages[0]["text"]
    bar = next(o for o in await repo.organisations() if o.id == "bar_legal_aid_center")
    assert "152" in text and bar.texts["name"]["en"] in text and "🏠" not in text
    assert events == [{"event": "slot", "timestamp": None, "name": "awaiting_city", "value": False}]
    # Asked by the shelter action (or nothing to tell): shelters answer, as before.
    asked_by_contacts.events[1] = action_event("action_shelter")
    messages, _ = await run(ActionFallback(), asked_by_contacts)
    assert "🏠" in messages[0]["text"]


async def test_shelter_by_city_and_by_location(repo) -> None:
    city = [{"entity": "city", "value": "Gəncə"}]
    messages, _ = await run(ActionShelter(), tracker("shelter in ganja", "ask_shelter", "en", city))
    by_city = messages[0]["text"]
    assert "Ganja" in by_city and "🏠" in by_city  # city names in the conversation's language
    # Coordinates near Baku (made up, in the city centre): the nearest place is in Bakı.
    loc = {"latitude": 40.41, "longitude": 49.87}
    messages, events = await run(
        ActionShelter(), tracker("/share_location", "share_location", "ru", slots=loc)
    )
    first = next(line for line in messages[0]["text"].splitlines() if line.startswith("🏠"))
    assert "Баку" in first
    assert {"event": "slot", "name": "latitude", "value": None} in [
        {k: e[k] for k in ("event", "name", "value")} for e in events
    ]


async def test_shelter_asks_for_the_city_then_takes_a_bare_name(repo) -> None:
    messages, events = await run(ActionShelter(), tracker("need a shelter", "ask_shelter", "az"))
    assert "Hansı şəhər" in messages[0]["text"]
    assert any('"city": "Bakı"' in b["payload"] for b in messages[0]["buttons"])
    assert any(e["name"] == "awaiting_city" and e["value"] is True for e in events)
    answer = tracker(
        "Gencede", "nlu_fallback", "az", [{"entity": "city", "value": "Gəncə"}],
        slots={"awaiting_city": True},
    )  # fmt: skip
    messages, _ = await run(ActionFallback(), answer)
    assert "Gəncə" in messages[0]["text"] and "🏠" in messages[0]["text"]


async def test_unknown_city_is_said_plainly(repo) -> None:
    messages, _ = await run(
        ActionShelter(),
        tracker(
            "shelter in Atlantis", "ask_shelter", "en", [{"entity": "city", "value": "Atlantis"}]
        ),
    )
    assert "Atlantis" in messages[0]["text"] and "do not know" in messages[0]["text"]


async def test_rights_list_and_tell_me_more(repo) -> None:
    messages, _ = await run(ActionRights(), tracker("my rights", "ask_rights", "ru"))
    rights = await repo.rights()
    assert len(messages[0]["buttons"]) == len(rights)
    payload = messages[0]["buttons"][0]["payload"]
    right_id = re.search(r'"right_id": "(\w+)"', payload).group(1)
    detail = tracker(payload, "ask_rights", "ru", [{"entity": "right_id", "value": right_id}])
    messages, _ = await run(ActionRights(), detail)
    right = next(r for r in rights if r.id == right_id)
    assert right.texts["details"]["ru"] in messages[0]["text"]
    assert right.source in messages[0]["text"]
    unverified = [r for r in rights if not r.verified]
    for r in unverified:
        messages, _ = await run(
            ActionRights(),
            tracker("x", "ask_rights", "en", [{"entity": "right_id", "value": r.id}]),
        )
        assert "Not confirmed" in messages[0]["text"], r.id


@pytest.mark.parametrize(
    ("lang", "question", "article"),
    [
        ("en", "What is the penalty for trafficking in persons under Article 144-1?", "144-1"),
        ("ru", "какое наказание за рабство по УК", "106"),
        ("az", "insan alveri meqsedile senedlerle qanunsuz emeller ucun ceza", "144-3"),
    ],
)
async def test_legal_answer_cites_an_article_from_knowledge(
    repo, root, lang, question, article
) -> None:
    messages, _ = await run(ActionLegalAnswer(), tracker(question, "legal_question", lang))
    text = messages[0]["text"]
    articles = {str(p["article"]) for p in read_knowledge(root / "knowledge").entries["law.yml"]}
    cited = re.search(r"(?:article|статья|maddə) (\S+) — ", text).group(1)
    assert cited in articles
    assert cited.startswith(article), text


async def test_legal_answer_says_when_nothing_matches(repo) -> None:
    messages, _ = await run(
        ActionLegalAnswer(), tracker("qwzx plorp frumble", "legal_question", "en")
    )
    assert "could not find" in messages[0]["text"]


async def test_handoff_records_one_open_case_and_raises_priority(repo) -> None:
    await run(ActionHandoff(), tracker("operator", "human_handoff", "en", sender="person-a"))
    messages, _ = await run(ActionHandoff(), tracker("HELP", "emergency", "en", sender="person-a"))
    assert messages == []  # after an emergency the emergency answer has been given already
    async with repo.sessions() as s:
        cases = list(
            (await s.scalars(select(Escalation).where(Escalation.user_key == "person-a"))).all()
        )
    assert len(cases) == 1 and cases[0].priority == "urgent" and cases[0].status == "queued"


async def test_unverified_provision_is_flagged_in_the_answer(repo) -> None:
    unverified = [p for p in await repo.provisions() if not p.verified and p.article != "—"]
    assert unverified
    for p in unverified:
        messages, _ = await run(
            ActionLegalAnswer(),
            tracker(f"article {p.article} {p.texts['title']['en']}", "legal_question", "en"),
        )
        text = messages[0]["text"]
        if f"article {p.article} —" in text.splitlines()[0]:
            assert "Not confirmed" in text, text


async def test_every_lawyer_question_cites_a_known_article_or_says_none(repo, root) -> None:
    """Over the whole legal-QA set: an answer names a provision from knowledge/ or says so."""
    import yaml

    known = {(p.article, p.texts["title"]["en"]) for p in await repo.provisions()}
    articles = {a for a, _ in known}
    for lang in ("az", "ru", "en"):
        data = yaml.safe_load((root / "eval" / "legal_qa" / f"{lang}.yml").read_text("utf-8"))
        for item in data["questions"]:
            messages, _ = await run(ActionLegalAnswer(), tracker(item["q"], "legal_question", lang))
            first = messages[0]["text"].splitlines()[0]
            cited = re.search(r"(?:article|статья|maddə) (\S+) — ", first)
            if cited:
                assert cited.group(1) in articles, first
            else:
                no_match = context.get().renderer.render("utter_legal_no_match", lang)["text"]
                assert messages[0]["text"] == no_match or " — " in first, first


async def test_screening_result_high_risk_records_and_offers_a_person(repo) -> None:
    from actions.screening import INDICATORS, ActionScreeningResult
    from bot.storage.models import Screening

    answers = {k: False for k in INDICATORS}
    answers.update(ind_restricted_movement=True, ind_documents_retained=True)
    t = tracker("/affirm", "affirm", "az", slots=answers, sender="person-s")
    messages, events = await run(ActionScreeningResult(), t)
    assert "/human_handoff" in [b["payload"] for b in messages[0]["buttons"]]
    assert {e["name"] for e in events} == set(INDICATORS)  # answers reset for a new screening
    async with repo.sessions() as s:
        row = await s.scalar(select(Screening).where(Screening.user_key == "person-s"))
        case = await s.scalar(select(Escalation).where(Escalation.user_key == "person-s"))
    assert row.risk == "high" and row.completed and row.score == 2
    assert case.priority == "high" and case.reason == "screening_high"


async def test_screening_stopped_early_is_recorded_as_incomplete(repo) -> None:
    from actions.screening import ActionScreeningResult
    from bot.storage.models import Screening

    t = tracker(
        "/stop_screening", "stop_screening", "en", slots={"ind_deception": True}, sender="p-t"
    )
    messages, _ = await run(ActionScreeningResult(), t)
    assert messages[0]["text"].startswith("We stopped the questions")
    async with repo.sessions() as s:
        row = await s.scalar(select(Screening).where(Screening.user_key == "p-t"))
    assert not row.completed and row.risk == "medium"


async def test_change_language_action(repo) -> None:
    from actions.language import ActionChangeLanguage

    named = tracker("по-русски", "change_language", "az", [{"entity": "language", "value": "ru"}])
    messages, events = await run(ActionChangeLanguage(), named)
    assert messages[0]["response"] == "utter_language_changed" and messages[0]["language"] == "ru"
    assert events[0]["name"] == "language" and events[0]["value"] == "ru"
    messages, events = await run(ActionChangeLanguage(), tracker("dil", "change_language", "az"))
    assert messages[0]["response"] == "utter_ask_language" and events == []
