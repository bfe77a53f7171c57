"""Legal-QA retrieval report without the engine: the official set and the English dev set.

``eval/legal_qa/`` is the official set (``make eval`` prints it too). ``eval/legal_qa_dev/`` holds
extra questions written to tune the index on, so that changes to ``bot/legal_search.py`` and the
keywords in ``knowledge/law.yml`` are not fitted to the official questions. Run:
``PYTHONPATH=. .venv/bin/python scripts/eval_legal.py [--misses N]``.
"""

from __future__ import annotations

import argparse

from bot.config import ROOT
from bot.devtools.legal_eval import evaluate_dir, evaluate_legal, format_legal


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
