"""Measure the NLU on the held-out split: accuracy, macro-F1, emergency recall per language.

Why our own scorer rather than ``rasa test nlu``: it runs against the engine that is already up
(loading a model costs over a minute), reports exactly the figures the issue asks for, and is
shared by ``make eval``, the pipeline comparison and the quality test.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.engine import EngineClient
from bot.language import LANGUAGES, detect

# [surface](entity) or [surface]{"entity": ...}
_ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def strip_annotations(text: str) -> str:
    """``"my [passport](document)"`` → ``"my passport"``."""
    return _ANNOTATION.sub(r"\1", text)


def read_examples(path: Path) -> list[tuple[str, str]]:
    """Return ``(text, intent)`` pairs from a Rasa NLU YAML file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    pairs: list[tuple[str, str]] = []
    for block in data.get("nlu", []):
        if "intent" not in block:
            continue
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                pairs.append((strip_annotations(line[2:].strip()), block["intent"]))
    return pairs


@dataclass
class LanguageReport:
    """Scores for one language."""

    language: str
    n: int = 0
    correct: int = 0
    macro_f1: float = 0.0
    emergency_total: int = 0
    emergency_hit: int = 0
    false_emergency: int = 0
    non_emergency_total: int = 0
    fallback: int = 0
    language_detected: int = 0
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def emergency_recall(self) -> float:
        return self.emergency_hit / self.emergency_total if self.emergency_total else 1.0

    @property
    def false_emergency_rate(self) -> float:
        return self.false_emergency / self.non_emergency_total if self.non_emergency_total else 0.0

    @property
    def language_accuracy(self) -> float:
        return self.language_detected / self.n if self.n else 0.0


def macro_f1(gold: list[str], pred: list[str]) -> float:
    """Unweighted mean F1 over the gold labels."""
    labels = sorted(set(gold))
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


async def classify_all(
    engine: EngineClient, texts: list[str], concurrency: int = 4
) -> list[dict[str, Any]]:
    """Parse every text, a few at a time (the engine has 2 cores to share)."""
    sem = asyncio.Semaphore(concurrency)

    async def one(text: str) -> dict[str, Any]:
        async with sem:
            return await engine.parse(text)

    return await asyncio.gather(*(one(t) for t in texts))


async def evaluate(engine: EngineClient, heldout_dir: Path) -> dict[str, LanguageReport]:
    """Score the engine's model on ``heldout_dir/{az,ru,en}.yml``."""
    reports: dict[str, LanguageReport] = {}
    for lang in LANGUAGES:
        examples = read_examples(heldout_dir / f"{lang}.yml")
        parsed = await classify_all(engine, [t for t, _ in examples])
        report = LanguageReport(language=lang, n=len(examples))
        gold, pred = [], []
        for (text, intent), result in zip(examples, parsed, strict=True):
            predicted = (result.get("intent") or {}).get("name") or "none"
            gold.append(intent)
            pred.append(predicted)
            if predicted == intent:
                report.correct += 1
            else:
                report.confusions[(intent, predicted)] += 1
                report.misses.append((intent, predicted, text))
            if predicted == "nlu_fallback":
                report.fallback += 1
            if intent == "emergency":
                report.emergency_total += 1
                report.emergency_hit += predicted == "emergency"
            else:
                report.non_emergency_total += 1
                report.false_emergency += predicted == "emergency"
            if detect(text) == lang:
                report.language_detected += 1
        report.macro_f1 = macro_f1(gold, pred)
        reports[lang] = report
    return reports


def format_reports(reports: dict[str, LanguageReport], show_misses: int = 0) -> str:
    """A plain table, one row per language plus the pooled emergency figures."""
    lines = [
        f"{'lang':<5}{'n':>5}{'accuracy':>10}{'macro-F1':>10}{'emerg.recall':>14}"
        f"{'false emerg.':>14}{'fallback':>10}{'lang-id':>9}",
    ]
    for r in reports.values():
        lines.append(
            f"{r.language:<5}{r.n:>5}{r.accuracy:>10.3f}{r.macro_f1:>10.3f}"
            f"{r.emergency_recall:>14.3f}{r.false_emergency_rate:>14.3f}{r.fallback:>10}"
            f"{r.language_accuracy:>9.3f}"
        )
    hit = sum(r.emergency_hit for r in reports.values())
    total = sum(r.emergency_total for r in reports.values())
    false = sum(r.false_emergency for r in reports.values())
    non = sum(r.non_emergency_total for r in reports.values())
    lines.append(
        f"all  emergency recall {hit}/{total} = {hit / max(total, 1):.3f}; "
        f"non-emergency classified as emergency {false}/{non} = {false / max(non, 1):.3f}"
    )
    if show_misses:
        by_lang: dict[str, list[str]] = defaultdict(list)
        for r in reports.values():
            for gold, pred, text in r.misses[:show_misses]:
                by_lang[r.language].append(f"  {gold:>20} -> {pred:<20} {text}")
        for lang, rows in by_lang.items():
            lines.append(f"misses ({lang}):")
            lines.extend(rows)
    return "\n".join(lines)
