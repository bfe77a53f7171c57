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

from bot.language import LANGUAGES

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
    """Read the contacts file; every entry must carry number, source, checked date, verified."""
    data = yaml.safe_load((knowledge_dir / "contacts.yml").read_text(encoding="utf-8"))
    contacts: dict[str, Contact] = {}
    for entry in data["contacts"]:
        contacts[entry["id"]] = Contact(
            id=entry["id"],
            number=str(entry["number"]),
            verified=bool(entry["verified"]),
            source=str(entry["source"]),
            checked=str(entry["checked"]),
            name=dict(entry["name"]),
        )
    return contacts


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
