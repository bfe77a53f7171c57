"""In-process latency summaries, served at ``/metrics`` in Prometheus' text format.

Why our own and not prometheus_client: the questions asked of these figures are medians and
tails of the adapter's own time next to the engine's (issue 4's overhead target); the official
client's Summary keeps no quantiles and its Histogram only buckets. A bounded window of recent
samples per name gives exact quantiles of the last few thousand updates at no measurable cost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

WINDOW = 5000
QUANTILES = (0.5, 0.95, 0.99)


class Summary:
    """Count, sum and a window of recent samples (seconds)."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self.count = 0
        self.total = 0.0
        self.samples: deque[float] = deque(maxlen=WINDOW)

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.samples.append(seconds)

    def quantile(self, q: float, last: int | None = None) -> float:
        """Quantile of the window, or of its ``last`` samples (a benchmark's own turns)."""
        samples = list(self.samples)[-last:] if last else self.samples
        if not samples:
            return float("nan")
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    def exposition(self, last: int | None = None) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} summary"
        for q in QUANTILES:
            yield f'{self.name}{{quantile="{q}"}} {self.quantile(q, last):.6f}'
        yield f"{self.name}_sum {self.total:.6f}"
        yield f"{self.name}_count {self.count}"


ENGINE_TURN = Summary(
    "ctip_engine_turn_seconds", "The engine's answer to one message, as the adapter waits for it."
)
ADAPTER_TURN = Summary(
    "ctip_adapter_turn_seconds",
    "From the update reaching the adapter to its replies handed to Telegram, engine included.",
)
ADAPTER_OVERHEAD = Summary(
    "ctip_adapter_overhead_seconds",
    "The adapter's own part of a turn: ctip_adapter_turn_seconds minus the engine's time.",
)
ALL = (ENGINE_TURN, ADAPTER_TURN, ADAPTER_OVERHEAD)


def exposition(last: int | None = None) -> str:
    return "\n".join(line for summary in ALL for line in summary.exposition(last)) + "\n"
