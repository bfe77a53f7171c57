"""Legal-QA retrieval report without the engine: the official set and the English dev set.

``eval/legal_qa/`` is the official set (``make eval`` prints it too). ``eval/legal_qa_dev/`` holds
extra questions written to tune the index on, so that changes to ``bot/legal_search.py`` and the
keywords in ``knowledge/law.yml`` are not fitted to the official questions. Run:
``PYTHONPATH=. .venv/bin/python scripts/eval_legal.py [--misses N]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import yaml

from actions.law import build_index
from bot.config import ROOT
from bot.devtools.legal_eval import LegalReport, evaluate_legal, format_legal
from bot.knowledge import read_knowledge


def evaluate_dir(root: Path, questions: Path) -> dict[str, LegalReport]:
    """Top-1/top-3 over every ``{lang}.yml`` in ``questions`` (any subset of languages)."""
    kb = read_knowledge(root / "knowledge")
    provisions = [
        SimpleNamespace(article=str(p["article"]), texts=p, id=p["id"])
        for p in kb.entries["law.yml"]
    ]
    reports: dict[str, LegalReport] = {}
    for path in sorted(questions.glob("*.yml")):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=0, help="print up to N misses per language")
    args = parser.parse_args()
    print("## official set (eval/legal_qa)")
    print(format_legal(evaluate_legal(ROOT), show_misses=args.misses))
    print("\n## dev set (eval/legal_qa_dev)")
    print(format_legal(evaluate_dir(ROOT, ROOT / "eval" / "legal_qa_dev"), show_misses=args.misses))


if __name__ == "__main__":
    main()
