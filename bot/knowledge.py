"""``knowledge/*.yml``: read, check, and load into the database.

Why a checker with file:line messages: the knowledge base is edited by people (lawyers, hotline
staff) who must be told exactly which entry is wrong, and a wrong phone number or article must never
reach the database. ``ctip kb check`` runs the same checks ``ctip kb load`` runs before writing.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.language import LANGUAGES
from bot.storage.models import (
    KbCity,
    KbContact,
    KbOrganisation,
    KbProvision,
    KbRight,
)

PHONE = re.compile(r"^\+?\d[\d -]{1,18}\d$")
ID = re.compile(r"^[a-z0-9][a-z0-9_]*$")
LINE = "__line__"

# file → (top-level key, required fields, multilingual fields)
SCHEMA: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "contacts.yml": ("contacts", ("id", "number", "source", "checked", "verified"), ("name",)),
    "organisations.yml": (
        "organisations",
        ("id", "kind", "source", "checked", "verified"),
        ("name", "offers"),
    ),
    "rights.yml": (
        "rights",
        ("id", "source", "checked", "verified"),
        ("title", "summary", "details"),
    ),
    "law.yml": (
        "provisions",
        ("id", "article", "source", "checked", "verified"),
        ("act", "title", "summary", "keywords"),
    ),
}


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records the line of every mapping (for error messages)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping[LINE] = node.start_mark.line + 1
        return mapping


@dataclass
class Knowledge:
    """All entries by file, with the problems found while reading them."""

    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def by_id(self, file: str) -> dict[str, dict[str, Any]]:
        return {e["id"]: e for e in self.entries.get(file, []) if isinstance(e.get("id"), str)}


def _as_date(value: Any) -> dt.date | None:
    """A date from YAML: a date, a timestamp (its day) or an ISO string; None otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()  # compared with today() below: a datetime would raise there
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _check_provenance(where: str, entry: dict[str, Any], errors: list[str]) -> None:
    source = entry.get("source")
    # Only text is a source: ``source:`` left empty is YAML null, and str(None) is "None".
    if not isinstance(source, str) or not source.strip():
        errors.append(f"{where}: empty 'source'")
    checked = _as_date(entry.get("checked"))
    if checked is None:
        errors.append(f"{where}: 'checked' must be a date like 2026-11-29")
    elif checked > dt.date.today():
        errors.append(f"{where}: 'checked' {checked} is in the future")
    if not isinstance(entry.get("verified"), bool):
        errors.append(f"{where}: 'verified' must be true or false")


def read_knowledge(directory: Path) -> Knowledge:
    """Parse and check every knowledge file; never raises on bad content, collects errors."""
    kb = Knowledge()
    for file, (key, required, multilingual) in SCHEMA.items():
        path = directory / file
        rel = f"knowledge/{file}"
        if not path.exists():
            kb.errors.append(f"{rel}:1: file missing")
            continue
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LineLoader) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            kb.errors.append(f"{rel}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
            continue
        except UnicodeDecodeError as exc:
            kb.errors.append(f"{rel}:1: not UTF-8 text (byte {exc.start})")
            continue
        except RecursionError:
            kb.errors.append(f"{rel}:1: nested too deeply")
            continue
        if not isinstance(data, dict):
            kb.errors.append(f"{rel}:1: expected a mapping with '{key}' at the top")
            continue
        items = data.get(key)
        if not isinstance(items, list):
            kb.errors.append(f"{rel}:1: expected a list under '{key}'")
            continue
        seen: set[str] = set()
        for entry in items:
            line = entry.get(LINE, 1) if isinstance(entry, dict) else 1
            if not isinstance(entry, dict):
                kb.errors.append(f"{rel}:{line}: entry is not a mapping")
                continue
            ident = entry.get("id", "?")
            where = f"{rel}:{line}: {key[:-1]} '{ident}'"
            for name in required:
                if name not in entry:
                    kb.errors.append(f"{where}: missing '{name}'")
            if not ID.match(str(ident)):
                kb.errors.append(f"{where}: id must be lowercase letters, digits and _")
            if str(ident) in seen:  # str(): a list or mapping as an id must not raise here
                kb.errors.append(f"{where}: duplicate id")
            seen.add(str(ident))
            for name in multilingual:
                texts = entry.get(name)
                if not isinstance(texts, dict) or any(
                    not str(texts.get(lang) or "").strip() for lang in LANGUAGES
                ):
                    kb.errors.append(f"{where}: '{name}' needs non-empty az, ru and en texts")
            _check_provenance(where, entry, kb.errors)
            if file == "contacts.yml" and not PHONE.match(str(entry.get("number", ""))):
                kb.errors.append(f"{where}: malformed phone number {entry.get('number')!r}")
        kb.entries[file] = [e for e in items if isinstance(e, dict)]
        if file == "organisations.yml":
            cities = data.get("cities") or []
            if not isinstance(cities, list):
                kb.errors.append(f"{rel}:1: expected a list under 'cities'")
                cities = []
            kb.cities = [c for c in cities if isinstance(c, dict)]
            for city in kb.cities:
                where = f"{rel}:{city.get(LINE, 1)}: city '{city.get('name', '?')}'"
                lat, lon = city.get("lat"), city.get("lon")
                if not isinstance(lat, int | float) or not isinstance(lon, int | float):
                    kb.errors.append(f"{where}: needs numeric lat and lon")
                elif not (38.0 <= lat <= 42.5 and 44.5 <= lon <= 51.0):
                    kb.errors.append(f"{where}: coordinates outside Azerbaijan")
                names = city.get("names")
                if not isinstance(names, dict) or any(not names.get(lang) for lang in LANGUAGES):
                    kb.errors.append(f"{where}: 'names' needs az, ru and en")
                _check_provenance(where, city, kb.errors)
    _check_references(kb)
    return kb


def _check_references(kb: Knowledge) -> None:
    contacts = kb.by_id("contacts.yml")
    provisions = kb.by_id("law.yml")
    numbers: dict[str, str] = {}
    for c in kb.entries.get("contacts.yml", []):
        digits = re.sub(r"\D", "", str(c.get("number", "")))
        if digits in numbers:
            kb.errors.append(
                f"knowledge/contacts.yml:{c.get(LINE, 1)}: number {c.get('number')} also in "
                f"'{numbers[digits]}' (one place of truth per number)"
            )
        numbers[digits] = str(c.get("id"))
    for org in kb.entries.get("organisations.yml", []):
        phone = org.get("phone")
        if phone is not None and (not isinstance(phone, str) or phone not in contacts):
            kb.errors.append(
                f"knowledge/organisations.yml:{org.get(LINE, 1)}: organisation '{org.get('id')}'"
                f": phone '{phone}' is not an id in contacts.yml"
            )
    for right in kb.entries.get("rights.yml", []):
        refs = right.get("law") or []
        if not isinstance(refs, list):
            kb.errors.append(
                f"knowledge/rights.yml:{right.get(LINE, 1)}: right '{right.get('id')}': "
                "'law' must be a list of ids from law.yml"
            )
            continue
        for ref in refs:
            if not isinstance(ref, str) or ref not in provisions:
                kb.errors.append(
                    f"knowledge/rights.yml:{right.get(LINE, 1)}: right '{right.get('id')}': "
                    f"law '{ref}' is not an id in law.yml"
                )


def _texts(entry: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {n: _strip(entry[n]) for n in names if isinstance(entry.get(n), dict)}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != LINE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def without_lines(value: Any) -> Any:
    """An entry as written, without the line numbers the reader records for error messages."""
    return _strip(value)


def _prov(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": str(entry["source"]),
        "checked": _as_date(entry["checked"]),
        "verified": bool(entry["verified"]),
    }


async def load_into(session: AsyncSession, kb: Knowledge) -> dict[str, int]:
    """Replace the knowledge tables with ``kb`` in one transaction (idempotent)."""
    if kb.errors:
        raise ValueError("knowledge has errors:\n" + "\n".join(kb.errors))
    for table in (KbOrganisation, KbRight, KbProvision, KbContact, KbCity):
        await session.execute(delete(table))
    for c in kb.entries["contacts.yml"]:
        session.add(
            KbContact(
                id=c["id"], number=str(c["number"]), hours=c.get("hours"),
                texts=_texts(c, ("name", "note")), needs=list(c.get("needs") or []),
                cities=list(c.get("cities") or []), **_prov(c),
            )
        )  # fmt: skip
    await session.flush()
    for city in kb.cities:
        session.add(
            KbCity(
                name=city["name"], names=_strip(city.get("names") or {}),
                lat=city["lat"], lon=city["lon"], **_prov(city),
            )
        )  # fmt: skip
    for o in kb.entries["organisations.yml"]:
        coords = o.get("coordinates") or {}
        session.add(
            KbOrganisation(
                id=o["id"], kind=o["kind"], texts=_texts(o, ("name", "offers", "address")),
                languages=list(o.get("languages") or []), cities=list(o.get("cities") or []),
                phone=o.get("phone"), lat=coords.get("lat"), lon=coords.get("lon"),
                shelter=bool(o.get("shelter")), serves=list(o.get("serves") or []),
                needs=list(o.get("needs") or []), **_prov(o),
            )
        )  # fmt: skip
    for position, r in enumerate(kb.entries["rights.yml"]):
        session.add(
            KbRight(
                id=r["id"], position=position, texts=_texts(r, ("title", "summary", "details")),
                law=list(r.get("law") or []), **_prov(r),
            )
        )  # fmt: skip
    for p in kb.entries["law.yml"]:
        session.add(
            KbProvision(
                id=p["id"], article=str(p["article"]),
                texts=_texts(p, ("act", "title", "summary", "keywords")), **_prov(p),
            )
        )  # fmt: skip
    await session.commit()
    return {
        "contacts": len(kb.entries["contacts.yml"]),
        "organisations": len(kb.entries["organisations.yml"]),
        "cities": len(kb.cities),
        "rights": len(kb.entries["rights.yml"]),
        "provisions": len(kb.entries["law.yml"]),
    }
