"""knowledge/: the checker, the loader (SQLite and PostgreSQL), and the one-place-of-truth rules."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.knowledge import read_knowledge
from bot.language import LANGUAGES
from bot.storage.models import KbContact, KbOrganisation, KbProvision, KbRight
from tests.db import fresh_database, loaded_repository

PHONE_LIKE = re.compile(r"(?<![\w-])\+?\d[\d -]{1,16}\d(?![\w-])")


def test_knowledge_is_valid(root: Path) -> None:
    kb = read_knowledge(root / "knowledge")
    assert kb.errors == []
    assert len(kb.entries["law.yml"]) >= 18
    assert len(kb.entries["rights.yml"]) >= 8
    assert any(o.get("shelter") for o in kb.entries["organisations.yml"])
    assert len(kb.cities) >= 15


def _broken_copy(root: Path, tmp_path: Path, file: str, old: str, new: str) -> Path:
    target = tmp_path / "knowledge"
    shutil.copytree(root / "knowledge", target)
    text = (target / file).read_text(encoding="utf-8")
    assert old in text
    (target / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def test_checker_names_file_and_line_for_a_bad_number(root: Path, tmp_path: Path) -> None:
    target = _broken_copy(root, tmp_path, "contacts.yml", 'number: "152"', 'number: "15two"')
    errors = read_knowledge(target).errors
    line = next(
        i
        for i, text in enumerate((target / "contacts.yml").read_text().splitlines(), 1)
        if "id: trafficking_hotline" in text
    )
    assert any(e.startswith(f"knowledge/contacts.yml:{line}:") and "phone" in e for e in errors)


def test_texts_read_numbers_through_the_same_checks(root: Path, tmp_path: Path) -> None:
    """``load_contacts`` (the numbers quoted in texts) uses the checker, not a parser of its own."""
    from bot.responses import load_contacts

    assert load_contacts(root / "knowledge")["trafficking_hotline"].number == "152"
    bad = _broken_copy(root, tmp_path / "a", "contacts.yml", 'number: "152"', 'number: "15two"')
    with pytest.raises(ValueError, match=r"knowledge/contacts.yml:\d+: .*phone"):
        load_contacts(bad)
    # A mistake elsewhere in knowledge/ does not keep the emergency numbers from the texts.
    other = _broken_copy(root, tmp_path / "b", "law.yml", "checked: 2026-11-29", "checked: x")
    assert load_contacts(other)["police"].name["en"] == "Police"


def test_checker_rejects_missing_source_and_bad_date(root: Path, tmp_path: Path) -> None:
    target = _broken_copy(root, tmp_path, "law.yml", "checked: 2026-11-29", "checked: someday")
    assert any("law.yml:" in e and "'checked'" in e for e in read_knowledge(target).errors)


def test_checker_rejects_invalid_yaml(root: Path, tmp_path: Path) -> None:
    target = _broken_copy(root, tmp_path, "rights.yml", "rights:", "rights: [")
    errors = read_knowledge(target).errors
    assert any(e.startswith("knowledge/rights.yml:") and "YAML" in e for e in errors)


def test_every_number_has_one_place_of_truth(root: Path) -> None:
    """Numbers appear only in contacts.yml (once each), never typed into other texts."""
    kb = read_knowledge(root / "knowledge")
    numbers = [re.sub(r"\D", "", str(c["number"])) for c in kb.entries["contacts.yml"]]
    assert len(numbers) == len(set(numbers))
    for file in ("organisations.yml", "rights.yml", "law.yml"):
        text = (root / "knowledge" / file).read_text(encoding="utf-8")
        for number in numbers:
            pattern = rf"(?<![\d.-]){re.escape(number)}(?![\d.-])"
            if len(number) >= 5:
                assert not re.search(pattern, re.sub(r"\D", "", text)), f"{number} in {file}"
    for lang in LANGUAGES:
        text = (root / "responses" / f"{lang}.yml").read_text(encoding="utf-8")
        for match in PHONE_LIKE.finditer(re.sub(r"\{[^}]+\}", "", text)):
            digits = re.sub(r"\D", "", match.group())
            assert digits not in numbers, f"{match.group()} typed into responses/{lang}.yml"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_load_is_idempotent(root: Path, tmp_path: Path, kind: str) -> None:
    url = await fresh_database(kind, tmp_path)
    counts = []
    for _ in range(2):
        repo, engine = await loaded_repository(url, root / "knowledge")
        async with repo.sessions() as s:
            counts.append(
                [
                    await s.scalar(select(func.count()).select_from(model))
                    for model in (KbContact, KbOrganisation, KbRight, KbProvision)
                ]
            )
        await engine.dispose()
    assert counts[0] == counts[1] and all(counts[0])
