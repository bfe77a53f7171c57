"""Legal-QA retrieval quality: top-1 / top-3 accuracy of the provision search per language.

Uses exactly the index the ``action_legal_answer`` action builds (same documents, same BM25),
over knowledge/law.yml, on lawyer questions in ``eval/legal_qa/{lang}.yml`` that name the
expected provision id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import yaml

from actions.law import build_index
from bot.knowledge import read_knowledge
from bot.language import LANGUAGES


@dataclass
class LegalReport:
    language: str
    n: int = 0
    top1: int = 0
    top3: int = 0
    misses: list[tuple[str, str, list[str]]] = field(default_factory=list)


def evaluate_dir(root: Path, questions: Path) -> dict[str, LegalReport]:
    """Top-1/top-3 over every ``{lang}.yml`` in ``questions`` (any subset of languages), with
    the index ``action_legal_answer`` builds. Languages in the project's order."""
    kb = read_knowledge(root / "knowledge")
    provisions = [
        SimpleNamespace(article=str(p["article"]), texts=p, id=p["id"])
        for p in kb.entries["law.yml"]
    ]
    order = {lang: i for i, lang in enumerate(LANGUAGES)}
    paths = sorted(questions.glob("*.yml"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
    reports: dict[str, LegalReport] = {}
    for path in paths:
        lang = path.stem
        index = build_index(provisions, lang)
        report = LegalReport(lang)
        for item in yaml.safe_load(path.read_text("utf-8"))["questions"]:
            hits = [h.id for h in index.search(item["q"], k=3)]
            report.n += 1
            report.top1 += bool(hits) and hits[0] == item["expected"]
            report.top3 += item["expected"] in hits
            if not hits or hits[0] != item["expected"]:
                report.misses.append((item["expected"], item["q"], hits))
        reports[lang] = report
    return reports


def evaluate_legal(root: Path) -> dict[str, LegalReport]:
    """The official set, ``eval/legal_qa/``."""
    return evaluate_dir(root, root / "eval" / "legal_qa")


def format_legal(reports: dict[str, LegalReport], show_misses: int = 0) -> str:
    lines = [f"{'lang':<5}{'n':>5}{'top-1':>8}{'top-3':>8}"]
    for r in reports.values():
        lines.append(f"{r.language:<5}{r.n:>5}{r.top1 / r.n:>8.3f}{r.top3 / r.n:>8.3f}")
        for expected, q, hits in r.misses[:show_misses]:
            lines.append(f"    expected {expected:<14} got {hits[:3]}  {q}")
    return "\n".join(lines)
