"""Load the user-facing texts from ``responses/{az,ru,en}.yml`` and the numbers they quote.

Why a module of its own: the NLG endpoint, the safety net (which must answer without the
engine) and the tests all need the same texts, checked the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.knowledge import read_knowledge, without_lines
from bot.language import LANGUAGES

CONTACTS_FILE = "contacts.yml"

PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


@dataclass(frozen=True)
class Contact:
    """A phone number from ``knowledge/contacts.yml`` with its provenance."""

    id: str
    number: str
    verified: bool
    source: str
    checked: str
    name: dict[str, str]


def load_contacts(knowledge_dir: Path) -> dict[str, Contact]:
    """The numbers the texts quote, read and checked by ``bot.knowledge`` (one parser).

    Why not a parser of its own: a number that ``ctip kb check`` rejects (malformed, duplicated,
    without source or checked date) must not reach a user through the texts either. Only errors in
    contacts.yml stop this: the safety net's emergency numbers must not wait for a fix to law.yml.
    """
    kb = read_knowledge(knowledge_dir)
    errors = [e for e in kb.errors if e.startswith(f"knowledge/{CONTACTS_FILE}:")]
    if errors:
        raise ValueError("knowledge/contacts.yml has errors:\n" + "\n".join(errors))
    return {
        str(entry["id"]): Contact(
            id=str(entry["id"]),
            number=str(entry["number"]),
            verified=bool(entry["verified"]),
            source=str(entry["source"]),
            checked=str(entry["checked"]),
            name=dict(without_lines(entry["name"])),
        )
        for entry in kb.entries.get(CONTACTS_FILE, [])
    }


def load_responses(responses_dir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Return ``{language: {response_name: [variation, ...]}}``.

    A response is either one mapping (``text``, optional ``buttons``) or a list of them; both are
    normalised to a list of variations.
    """
    result: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for lang in LANGUAGES:
        raw = yaml.safe_load((responses_dir / f"{lang}.yml").read_text(encoding="utf-8")) or {}
        result[lang] = {
            name: value if isinstance(value, list) else [value] for name, value in raw.items()
        }
    return result


def placeholders(variation: dict[str, Any]) -> set[str]:
    """Names of all ``{placeholders}`` in a variation's text and button titles."""
    texts = [variation.get("text", "")]
    texts += [b.get("title", "") for b in variation.get("buttons", [])]
    return {m for t in texts for m in PLACEHOLDER.findall(t)}
