"""`make compare`: train each candidate in configs/ and score it on the held-out split.

Why: the pipeline is chosen by measurement (docs/nlu.md), so the comparison must be re-runnable
by anyone, on the same data and the same scorer as `make eval`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bot.config import ROOT, Settings
from bot.devtools.nlu_eval import evaluate, format_reports
from bot.engine_process import RASA_BIN, engine_env
from bot.stack import free_port, running_stack


def train(config: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            str(RASA_BIN), "train", "--data", "nlu_data", "--config", str(config),
            "--domain", "domain.yml", "--out", str(out), "--fixed-model-name", config.stem,
            "--num-threads", "2",
        ],
        cwd=ROOT, env=engine_env(), check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return time.perf_counter() - start


async def score(model: Path) -> str:
    settings = replace(Settings.from_env(), bot_port=free_port())
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(
            settings, engine_port=free_port(), work_dir=Path(tmp), model=model
        ) as stack:
            return format_reports(await evaluate(stack.engine, ROOT / "eval" / "heldout"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("configs", nargs="*", type=Path)
    args = parser.parse_args()
    configs = args.configs or sorted((ROOT / "configs").glob("*.yml"))
    out = ROOT / "var" / "compare"
    out.mkdir(parents=True, exist_ok=True)
    for config in configs:
        seconds = train(config, out)
        model = out / f"{config.stem}.tar.gz"
        size = os.path.getsize(model) / 1e6
        print(f"== {config.stem}: trained in {seconds:.0f}s, model {size:.1f} MB")
        print(asyncio.run(score(model)), flush=True)


if __name__ == "__main__":
    main()
