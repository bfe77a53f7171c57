"""Hostile input against the pure parts, with generated input (hypothesis): message splitting and
HTML escaping, text normalisation, the safety net and language detection, pseudonymisation,
and the knowledge loader fed with broken YAML files.

Why generated input: the hand-written cases in test_telegram_units / test_knowledge cover what
we thought of; these look for what we did not (RTL marks, zero-width joiners, control
characters, wrong YAML types …). No engine here: these run in seconds.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ROOT
from bot.knowledge import SCHEMA, read_knowledge
from bot.language import detect
from bot.privacy import pseudonymise
from bot.safety import is_emergency
from bot.telegram.delivery import TEXT_LIMIT, escape, split_text, utf16_len
from bot.textnorm import fold

PURE = settings(max_examples=400, deadline=None, database=None)
FILES = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Text people (and scripts) send: every script, plus what breaks naive code — RTL and
# zero-width marks, control characters, emoji with joiners, surrogate-free astral characters.
TRICKY = (
    "\u200f\u200e\u202e\u200b\u200d\ufeff\x00\x07\x1b\t\r\n \u00a0\u2028\u0301🙂👩‍👩‍👧<>&;'\"\\"
)
messages = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from(TRICKY),
        st.sampled_from("əıöüğşçİIЁё абв xyz\n "),
    ),
    max_size=300,
)
# Long texts made of words and separators, so the splitter has boundaries to look for.
long_texts = st.lists(
    st.one_of(
        st.text(alphabet=string.ascii_letters + "əşçğöüıабв🙂", min_size=1, max_size=40),
        st.sampled_from([" ", "\n", "\n\n", "  ", "<b>", "&amp;", "</script>"]),
    ),
    min_size=1,
    max_size=900,
).map("".join)


# --- delivery: splitting and escaping ---------------------------------------------------------


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


@PURE
@given(
    st.one_of(
        long_texts,
        messages,
        st.text(min_size=4000, max_size=9000),
        st.text(alphabet="🙂👩‍👧 ab", min_size=2000, max_size=6000),  # 2 UTF-16 units each
    )
)
def test_split_parts_rejoin_to_the_input_and_each_fits_telegram(text: str) -> None:
    """Every part is 1..4096 UTF-16 units and, whitespace at the cuts aside, the parts are the
    input in order: nothing lost, nothing repeated, nothing reordered."""
    parts = split_text(text)
    assert all(0 < utf16_len(p) <= TEXT_LIMIT for p in parts)
    assert _squash("".join(parts)) == _squash(text)
    assert bool(parts) == bool(text.strip())


worded_texts = st.lists(
    st.text(alphabet=string.ascii_letters + "əşçğöüıабв🙂<>&", min_size=1, max_size=40),
    min_size=1,
    max_size=700,
).flatmap(lambda words: st.lists(st.sampled_from([" ", "\n", "\n\n"]), min_size=len(words),
                                  max_size=len(words)).map(
    lambda seps: "".join(w + s for w, s in zip(words, seps, strict=True))))  # fmt: skip


@PURE
@given(worded_texts)
def test_split_cuts_only_between_words_and_keeps_each_part_verbatim(text: str) -> None:
    """Words shorter than half a message are never cut in two: each part is a verbatim slice of
    the input and the gap between two parts is whitespace only."""
    parts = split_text(text)
    pos = len(text) - len(text.lstrip())
    for i, part in enumerate(parts):
        found = text.find(part, pos)
        assert found != -1, "a part is not a slice of the input in order"
        assert text[pos:found].strip() == "", "something between two parts was dropped"
        assert i == 0 or found > pos, "a word was cut in two (no whitespace between parts)"
        pos = found + len(part)
    assert text[pos:].strip() == ""
    for part, following in zip(parts, parts[1:], strict=False):
        assert part[-1].strip() and following[0].strip()


@PURE
@given(st.one_of(messages, long_texts))
def test_escaped_text_is_inert_html_that_reads_back_as_the_input(text: str) -> None:
    """Telegram HTML parse mode: after escaping, no tag can open and every entity is ours, so
    what Telegram shows is exactly the text (a person's '<b>' stays two characters)."""
    for part in split_text(text) or [text]:
        escaped = escape(part)
        assert "<" not in escaped and ">" not in escaped
        assert re.sub(r"&(?:lt|gt|amp);", "", escaped).count("&") == 0
        assert html.unescape(escaped) == part


# --- normalisation, safety net, language -----------------------------------------------------

AZ_LOWER = "abcçdeəfgğhxıijkqlmnoöprsştuüvyz"


def az_upper(text: str) -> str:
    """Azerbaijani upper case: i → İ and ı → I (Python's upper() maps both to I)."""
    return text.replace("i", "İ").replace("ı", "I").upper()


@PURE
@given(messages)
def test_fold_output_is_plain_lowercase_without_az_letters_or_marks(text: str) -> None:
    folded = fold(text)
    assert folded == folded.strip() and "  " not in folded
    assert not set(folded) & set("əıöüğşçİIЁё")
    assert not re.search(r"(.)\1\1", folded)
    assert not any("\u0300" <= ch <= "\u036f" for ch in folded)


@PURE
@given(st.text(alphabet=AZ_LOWER + "абвгдеёжз ", max_size=80))
def test_fold_ignores_case_the_azerbaijani_way(text: str) -> None:
    """'İŞ' and 'iş' must reach the engine and the safety net as the same word."""
    assert fold(az_upper(text)) == fold(text)


@PURE
@given(messages, st.sampled_from([None, "az", "ru", "en", "xx", ""]))
def test_safety_net_and_language_detection_accept_any_text(text: str, prior: str | None) -> None:
    """They run on every message before anything else: they must never raise."""
    assert isinstance(is_emergency(text), bool)
    assert detect(text, prior=prior) in (None, "az", "ru", "en")


@PURE
@given(messages)
def test_danger_phrase_is_found_inside_any_surrounding_text(noise: str) -> None:
    """Padding a cry for help with emoji, RTL marks or shouting does not hide it."""
    for phrase in ("they are beating me", "меня бьют", "məni döyürlər"):
        assert is_emergency(f"{noise}\n{phrase.upper()}!!!\n{noise}")


# --- pseudonymisation ------------------------------------------------------------------------

telegram_ids = st.integers(min_value=1_000_000, max_value=2**52)
KEY = re.compile(r"^u_[0-9a-f]{32}$")


@PURE
@given(telegram_ids, telegram_ids, st.text(min_size=1, max_size=64))
def test_pseudonym_is_stable_distinct_and_does_not_show_the_id(a: int, b: int, secret: str) -> None:
    key = pseudonymise(a, secret)
    assert KEY.match(key)
    assert key == pseudonymise(str(a), secret) == pseudonymise(a, secret)
    assert (pseudonymise(b, secret) == key) == (a == b)
    assert str(a) not in key and format(a, "x") not in key
    assert pseudonymise(a, secret + "x") != key  # another secret, another key


# --- the knowledge loader --------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.dates(),
    st.datetimes(),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ident = st.one_of(st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True), junk)
texts3 = st.one_of(
    st.fixed_dictionaries({"az": st.text(max_size=10), "ru": st.text(max_size=10),
                           "en": st.text(max_size=10)}),
    junk,
)  # fmt: skip
phone = st.one_of(
    st.from_regex(r"\+?\d[\d -]{1,18}\d", fullmatch=True),
    st.text(max_size=12),
    st.integers(),
    junk,
)
checked = st.one_of(
    st.dates(max_value=dt.date(2026, 1, 1)).map(str),
    st.dates(),
    st.datetimes(),
    st.text(max_size=12),
    junk,
)
source = st.one_of(st.just("https://example.org/law"), st.text(max_size=12), junk)


def entry_of(required: tuple[str, ...], multilingual: tuple[str, ...]) -> st.SearchStrategy:
    fields: dict[str, st.SearchStrategy] = {
        "id": ident, "source": source, "checked": checked, "verified": st.one_of(st.booleans(), junk),
        "number": phone, "article": st.one_of(st.text(max_size=6), junk),
        "kind": st.sampled_from(["ngo", "state"]), "phone": st.one_of(st.none(), ident),
        "law": st.one_of(st.lists(ident, max_size=3), junk),
        **{name: texts3 for name in multilingual},
    }  # fmt: skip
    names = sorted(set(required) | set(multilingual) | {"phone", "law"})
    return st.dictionaries(
        st.sampled_from(names), st.none(), min_size=0, max_size=len(names)
    ).flatmap(
        lambda keys: st.fixed_dictionaries({k: fields.get(k, junk) for k in keys}).flatmap(
            lambda d: st.one_of(st.just(d), junk) if not d else st.just(d)
        )
    )


def file_body(name: str) -> st.SearchStrategy:
    key, required, multilingual = SCHEMA[name]
    entries = st.lists(st.one_of(entry_of(required, multilingual), junk), max_size=5)
    dup = entries.map(lambda es: es + es[:1])  # duplicated ids
    top: dict[str, Any] = {key: st.one_of(entries, dup, junk), "version": st.just(1)}
    if name == "organisations.yml":
        city = st.fixed_dictionaries(
            {"name": st.text(max_size=8), "lat": st.one_of(st.floats(38, 42), junk),
             "lon": st.one_of(st.floats(45, 50), junk), "names": texts3,
             "source": source, "checked": checked},
        )  # fmt: skip
        top["cities"] = st.one_of(st.lists(st.one_of(city, junk), max_size=3), junk)
    return st.one_of(st.fixed_dictionaries(top), junk)


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


raw_files = st.one_of(
    st.binary(max_size=200),  # not UTF-8, not YAML
    st.just(b"contacts: [\n  {id: a"),  # cut off mid-document
    st.just(b"[" * 2000 + b"]" * 2000),  # deeply nested
    st.just(b"\xef\xbb\xbfcontacts:\n  - ? [a, b]\n    : c\n"),  # BOM and a list as a key
)


@st.composite
def knowledge_dirs(draw: st.DrawFn) -> dict[str, bytes | None]:
    """For each knowledge file: the real one, a generated one, raw bytes, or none at all."""
    out: dict[str, bytes | None] = {}
    for name in SCHEMA:
        choice = draw(
            st.sampled_from(
                ["real", "generated", "generated", "generated", "generated", "raw", "missing"]
            )
        )
        if choice == "generated":
            out[name] = _dump(draw(file_body(name))).encode()
        elif choice == "raw":
            out[name] = draw(raw_files)
        elif choice == "missing":
            out[name] = None
        else:
            out[name] = b"real"  # copied in the test (keeps failure reports short)
    return out


def _unprovenanced(entry: dict[str, Any]) -> bool:
    """True when the entry lacks a usable source link/title or check date."""
    src = entry.get("source")
    date = entry.get("checked")
    if isinstance(date, dt.datetime):
        date = date.date()
    if isinstance(date, str):
        try:
            date = dt.date.fromisoformat(date)
        except ValueError:
            date = None
    return not (isinstance(src, str) and src.strip()) or not isinstance(date, dt.date)


@FILES
@given(knowledge_dirs())
def test_knowledge_loader_reports_errors_and_never_accepts_an_unsourced_entry(
    files: dict[str, bytes | None],
) -> None:
    """``read_knowledge`` on broken files: it never raises, it names every problem as
    ``knowledge/<file>:<line>: …``, and whenever an entry it returns lacks a source or a check
    date, there are errors (so ``ctip kb load`` refuses to write)."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name, body in files.items():
            if body == b"real":
                shutil.copy(ROOT / "knowledge" / name, directory / name)
            elif body is not None:
                (directory / name).write_bytes(body)
        kb = read_knowledge(directory)
    assert all(re.match(r"^knowledge/[a-z]+\.yml:\d+: ", e) for e in kb.errors), kb.errors
    returned = [e for es in kb.entries.values() for e in es] + kb.cities
    if any(_unprovenanced(e) for e in returned):
        assert kb.errors
    if any(body is None for body in files.values()):
        assert any("file missing" in e for e in kb.errors)


def test_knowledge_loader_refuses_empty_or_non_text_sources(tmp_path: Path) -> None:
    """``source:`` left empty is YAML null, which once read as the string 'None' and passed."""
    shutil.copytree(ROOT / "knowledge", tmp_path / "knowledge")
    path = tmp_path / "knowledge" / "contacts.yml"
    text = path.read_text(encoding="utf-8")
    first = re.search(r"^    source: .*$", text, re.M)
    assert first is not None
    for bad in ("", "[]", "{}", "123", "null", "true"):
        path.write_text(text[: first.start()] + f"    source: {bad}" + text[first.end() :])
        kb = read_knowledge(tmp_path / "knowledge")
        assert any("'source'" in e for e in kb.errors), bad


def test_knowledge_loader_survives_a_checked_datetime_and_odd_top_levels(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "knowledge", tmp_path / "knowledge")
    path = tmp_path / "knowledge" / "contacts.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("checked: 2026-11-29", "checked: 2026-11-29 10:00:00", 1))
    assert read_knowledge(tmp_path / "knowledge").errors == []  # a timestamp is a date too
    for top in ("- a\n- b\n", "just text\n", "42\n", "contacts: {a: 1}\n"):
        path.write_text(top)
        assert any(e.startswith("knowledge/contacts.yml:") for e in read_knowledge(
            tmp_path / "knowledge").errors)  # fmt: skip
