"""`make bench`: what the engine costs — train time, model size, memory, latency.

Prints one table. Latencies are medians and 95th percentiles over at least 300 messages (the
held-out split), measured in one run so that figures compare on this noisy machine:
- parse: ``POST /model/parse`` (NLU only);
- turn: a full turn through the REST channel (NLU, policies, NLG call to the bot service, and the
  action webhook where the turn needs it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bot.config import ROOT, Settings
from bot.devtools.nlu_eval import read_examples
from bot.engine_process import MODEL_PATH, RASA_BIN, engine_env
from bot.language import detect
from bot.stack import free_port, running_stack


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MB (from /proc)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def train(out: Path) -> tuple[float, Path]:
    """Cold training: an empty Rasa component cache, so nothing is restored from earlier runs."""
    env = engine_env()
    cache = tempfile.mkdtemp(prefix="rasa-cache-")
    env["RASA_CACHE_DIRECTORY"] = cache
    start = time.perf_counter()
    subprocess.run(
        [
            str(RASA_BIN), "train", "--data", "nlu_data", "--config", "config.yml",
            "--domain", "domain.yml", "--out", str(out), "--fixed-model-name", "bench",
            "--num-threads", "2",
        ],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    shutil.rmtree(cache, ignore_errors=True)
    return seconds, out / "bench.tar.gz"


async def measure(model: Path, messages: list[str]) -> dict[str, float]:
    settings = replace(Settings.from_env(), bot_port=free_port())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        async with running_stack(
            settings, engine_port=free_port(), work_dir=Path(tmp), model=model
        ) as stack:
            load = time.perf_counter() - t0
            pid = stack.engine_proc.pid
            idle_rss = rss_mb(pid)
            for text in messages[:20]:  # warm-up, not measured
                await stack.engine.parse(text)
            parse: list[float] = []
            for text in messages:
                start = time.perf_counter()
                await stack.engine.parse(text)
                parse.append((time.perf_counter() - start) * 1000)
            turn: list[float] = []
            for i, text in enumerate(messages):
                sender = f"bench-{i // 10}"
                lang = detect(text) or "en"
                start = time.perf_counter()
                await stack.engine.send(sender, text, {"language": lang})
                turn.append((time.perf_counter() - start) * 1000)
            busy_rss = rss_mb(pid)
    return {
        "load_s": load,
        "idle_rss": idle_rss,
        "busy_rss": busy_rss,
        "parse_p50": statistics.median(parse),
        "parse_p95": percentile(parse, 0.95),
        "turn_p50": statistics.median(turn),
        "turn_p95": percentile(turn, 0.95),
        "n": len(messages),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--no-train", action="store_true", help="measure models/ctip.tar.gz, skip training"
    )
    args = parser.parse_args()
    messages = [
        text
        for lang in ("az", "ru", "en")
        for text, _ in read_examples(ROOT / "eval" / "heldout" / f"{lang}.yml")
    ]
    if args.no_train:
        train_s, model = float("nan"), MODEL_PATH
    else:
        out = ROOT / "var" / "bench"
        out.mkdir(parents=True, exist_ok=True)
        train_s, model = train(out)
    figures = asyncio.run(measure(model, messages))
    rows = [
        ("train time, cold cache (config.yml, 2 threads)", f"{train_s:.0f} s"),
        ("model size", f"{os.path.getsize(model) / 1e6:.1f} MB"),
        ("engine start + model load", f"{figures['load_s']:.0f} s"),
        ("engine RSS after load", f"{figures['idle_rss']:.0f} MB"),
        (f"engine RSS after {2 * figures['n']:.0f} requests", f"{figures['busy_rss']:.0f} MB"),
        (f"/model/parse p50 / p95 (n={figures['n']:.0f})",
         f"{figures['parse_p50']:.1f} / {figures['parse_p95']:.1f} ms"),
        (f"full REST turn p50 / p95 (n={figures['n']:.0f})",
         f"{figures['turn_p50']:.1f} / {figures['turn_p95']:.1f} ms"),
        ("turn / parse ratio (p50)", f"{figures['turn_p50'] / figures['parse_p50']:.2f}x"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
