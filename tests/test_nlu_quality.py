"""The trained model on the held-out split (never trained on), through the running engine.

`make eval` prints the full report against the issue's targets; this test guards against
regressions with the same scorer. Floors are the targets the current model meets (see
docs/nlu.md), so a data or pipeline change that loses quality fails here.
"""

from __future__ import annotations

import pytest

from bot.config import ROOT
from bot.devtools.nlu_eval import evaluate, format_reports

pytestmark = pytest.mark.engine

MIN_ACCURACY = 0.90
MIN_EMERGENCY_RECALL = 0.95
MAX_FALSE_EMERGENCY = 0.02


async def test_heldout_quality(stack) -> None:
    reports = await evaluate(stack.engine, ROOT / "eval" / "heldout")
    table = format_reports(reports, show_misses=10)
    print(table)
    for lang, r in reports.items():
        assert r.accuracy >= MIN_ACCURACY, f"{lang} accuracy {r.accuracy:.3f}\n{table}"
        assert r.emergency_recall >= MIN_EMERGENCY_RECALL, f"{lang} emergency recall\n{table}"
        assert r.false_emergency_rate <= MAX_FALSE_EMERGENCY, f"{lang} false emergency\n{table}"
