"""Every user-facing text exists in az, ru and en, with the same placeholders and buttons."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.knowledge import PHONE
from bot.language import LANGUAGES
from bot.responses import placeholders

CONTRACT_INTENTS = {
    "greet", "goodbye", "thank", "affirm", "deny", "emergency", "request_help",
    "documents_taken", "unpaid_wages", "forced_labour", "sexual_exploitation",
    "job_offer_check", "ask_shelter", "ask_hotline", "ask_rights", "ask_legal_aid",
    "human_handoff", "change_language", "legal_question", "out_of_scope",
}  # fmt: skip


def domain(root: Path) -> dict:
    return yaml.safe_load((root / "domain.yml").read_text(encoding="utf-8"))


def test_same_keys_in_every_language(responses: dict) -> None:
    keys = {lang: set(table) for lang, table in responses.items()}
    union = set().union(*keys.values())
    for lang in LANGUAGES:
        assert keys[lang] == union, f"{lang} lacks {sorted(union - keys[lang])}"


def test_every_utter_action_has_a_text(root: Path, responses: dict) -> None:
    utters = {a for a in domain(root)["actions"] if a.startswith("utter_")}
    for lang in LANGUAGES:
        missing = utters - set(responses[lang])
        assert not missing, f"{lang} lacks {sorted(missing)}"
    # text_* keys are fragments the actions compose into answers, not engine responses.
    unused = {k for k in responses["en"] if not k.startswith("text_")} - utters
    assert not unused, f"responses not declared in domain.yml actions: {sorted(unused)}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_braces_are_balanced(responses: dict, lang: str) -> None:
    for name, variations in responses[lang].items():
        for variation in variations:
            texts = [variation.get("text", "")] + [b["title"] for b in variation.get("buttons", [])]
            for text in texts:
                stripped = re.sub(r"\{[a-zA-Z_][a-zA-Z0-9_]*\}", "", text)
                assert "{" not in stripped and "}" not in stripped, f"{lang}/{name}: {text!r}"
                assert text.strip(), f"{lang}/{name} has an empty text"


def test_placeholders_match_across_languages(responses: dict) -> None:
    for name in responses["en"]:
        sets = {lang: set().union(*map(placeholders, responses[lang][name])) for lang in LANGUAGES}
        assert sets["az"] == sets["en"] == sets["ru"], f"{name}: {sets}"


def test_phone_placeholders_exist_in_knowledge(responses: dict, contacts: dict) -> None:
    for lang in LANGUAGES:
        for name, variations in responses[lang].items():
            for variation in variations:
                for key in placeholders(variation):
                    if key.startswith("tel_"):
                        assert key[4:] in contacts, f"{lang}/{name}: unknown contact {key}"


def test_no_phone_numbers_typed_into_texts(responses: dict, contacts: dict) -> None:
    """Numbers live in knowledge/contacts.yml only (one place of truth)."""
    numbers = [c.number for c in contacts.values()]
    for lang in LANGUAGES:
        for name, variations in responses[lang].items():
            for variation in variations:
                text = re.sub(r"\{[^}]+\}", "", variation.get("text", ""))
                for number in numbers:
                    assert not re.search(rf"(?<![\d-]){number}(?![\d-])", text), f"{lang}/{name}"
                assert not re.search(r"\+?\d[\d\s()-]{6,}\d", text), f"{lang}/{name}"


def test_buttons_are_identical_payloads_across_languages(responses: dict, root: Path) -> None:
    intents = set(domain(root)["intents"])
    for name in responses["en"]:
        payloads = {
            lang: [b["payload"] for v in responses[lang][name] for b in v.get("buttons", [])]
            for lang in LANGUAGES
        }
        assert payloads["az"] == payloads["en"] == payloads["ru"], name
        for payload in payloads["en"]:
            assert payload.startswith("/")
            intent = re.match(r"/(\w+)", payload).group(1)
            assert intent in intents, f"{name}: payload {payload} names unknown intent"


def test_contacts_carry_source_and_date(contacts: dict) -> None:
    assert {"police", "trafficking_hotline", "emergency"} <= set(contacts)
    for contact in contacts.values():
        assert contact.source and re.match(r"\d{4}-\d{2}-\d{2}$", contact.checked)
        assert PHONE.match(contact.number), contact.number
        assert set(contact.name) == set(LANGUAGES)


def test_emergency_answer_gives_the_numbers(responses: dict) -> None:
    for lang in LANGUAGES:
        text = responses[lang]["utter_emergency"][0]["text"]
        for key in ("{tel_police}", "{tel_emergency}", "{tel_trafficking_hotline}"):
            assert key in text, f"{lang} emergency lacks {key}"


def test_domain_has_contract_intents(root: Path) -> None:
    assert set(domain(root)["intents"]) >= CONTRACT_INTENTS
