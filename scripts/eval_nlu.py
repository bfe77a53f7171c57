"""`make eval`: start the engine on the trained model and score the held-out split.

Prints accuracy and macro-F1 per language, emergency recall and the false-emergency rate, and
exits non-zero when a target is missed (targets from the foundation issue).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from bot.config import ROOT, Settings
from bot.devtools.legal_eval import evaluate_legal, format_legal
from bot.devtools.nlu_eval import evaluate, format_reports
from bot.engine_process import MODEL_PATH
from bot.stack import free_port, running_stack

TARGET_ACCURACY = 0.93
TARGET_EMERGENCY_RECALL = 1.0
TARGET_FALSE_EMERGENCY = 0.02


SPLITS = {
    "heldout": "held-out split (written with the training data, never trained on)",
    "fresh": "fresh split (written last, by a writer who saw neither training nor held-out data)",
}


async def main(model: Path, misses: int) -> int:
    settings = replace(Settings.from_env(), bot_port=free_port())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(
            settings, engine_port=free_port(), work_dir=Path(tmp), model=model
        ) as stack:
            for split in SPLITS:
                if (ROOT / "eval" / split).is_dir():
                    results[split] = await evaluate(stack.engine, ROOT / "eval" / split)
    for split, split_reports in results.items():
        print(f"\n## {SPLITS[split]}")
        print(format_reports(split_reports, show_misses=misses))
    reports = results["heldout"]
    if (ROOT / "eval" / "legal_qa").is_dir():
        legal = evaluate_legal(ROOT)
        print("\n## legal QA: provision retrieval for lawyers' questions (target top-1 >= 0.85)")
        print(format_legal(legal, show_misses=misses))
    out = ROOT / "var" / "eval.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                lang: {
                    "n": r.n,
                    "accuracy": r.accuracy,
                    "macro_f1": r.macro_f1,
                    "emergency_recall": r.emergency_recall,
                    "false_emergency_rate": r.false_emergency_rate,
                    "language_accuracy": r.language_accuracy,
                }
                for lang, r in reports.items()
            },
            indent=2,
        )
    )
    ok = all(
        r.accuracy >= TARGET_ACCURACY
        and r.emergency_recall >= TARGET_EMERGENCY_RECALL
        and r.false_emergency_rate <= TARGET_FALSE_EMERGENCY
        for r in reports.values()
    )
    print(
        f"\ntargets on the held-out split: accuracy >= {TARGET_ACCURACY}, emergency recall = {TARGET_EMERGENCY_RECALL}, "
        f"false emergency <= {TARGET_FALSE_EMERGENCY}: {'MET' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=MODEL_PATH)
    parser.add_argument("--misses", type=int, default=15, help="misclassified examples to show")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.model, args.misses)))
