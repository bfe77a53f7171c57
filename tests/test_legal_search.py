"""Provision retrieval for lawyers (BM25 over knowledge/law.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.devtools.legal_eval import evaluate_legal, format_legal
from bot.legal_search import BM25Index, tokens

# Measured figures are in docs/legal-qa.md; floors sit under them to catch regressions.
FLOOR_TOP1 = {"az": 0.85, "ru": 0.85, "en": 0.65}


def test_tokens_fold_prefix_and_articles() -> None:
    toks = tokens("Cinayət Məcəlləsinin 144-1-ci maddəsi üzrə cəzası")
    assert {"art:144-1", "cezasi", "cezas~", "cinay~"} <= set(toks)
    assert "maddesi" not in toks  # stopword
    assert "art:106" in tokens("ст. 106 УК АР")


def test_naming_an_article_finds_it() -> None:
    index = BM25Index(
        {"a": "trafficking in persons penalty 144-1", "b": "forced labour 144-2 see also 144-1"},
        articles={"a": "144-1", "b": "144-2"},
    )
    assert index.search("article 144-2")[0].id == "b"
    assert index.search("article 144-1")[0].id == "a"
    assert index.search("zzz unrelated words") == []


@pytest.mark.parametrize("lang", ["az", "ru", "en"])
def test_legal_qa_top1(root: Path, lang: str) -> None:
    reports = evaluate_legal(root)
    r = reports[lang]
    assert r.n >= 30
    assert r.top1 / r.n >= FLOOR_TOP1[lang], format_legal(reports, show_misses=10)
