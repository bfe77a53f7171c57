"""The supervisor dashboard: waiting now, longest wait, time to the first human reply per day,
cases by outcome and by language — as SVG charts drawn here (``bot.console.charts``).

Reading it is audited like any supervisor read (``read`` with ``page=dashboard``).
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.console import audit
from bot.console.case_view import OUTCOME_LABELS
from bot.console.charts import bar_chart, line_chart
from bot.console.identity import console_db, current_user
from bot.console.pages import render
from bot.console.queue import wait_label
from bot.console.security import require_role
from bot.storage.cases import CaseStore
from bot.storage.models import Escalation

DELAY_DAYS = 14
COUNT_DAYS = 30
LANGUAGE_NAMES = {"az": "Azerbaijani (az)", "ru": "Russian (ru)", "en": "English (en)"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (p90 of a handful of cases is one of them, not a blend)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return ordered[int(rank) - 1]


@dataclass
class Figures:
    waiting: int
    longest_wait: str
    days: list[str]
    median_minutes: list[float | None]
    p90_minutes: list[float | None]
    by_outcome: list[tuple[str, int]]
    by_language: list[tuple[str, int]]


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def figures(sessions: async_sessionmaker, now: dt.datetime | None = None) -> Figures:
    now = now or dt.datetime.now(dt.UTC)
    store = CaseStore(sessions)
    async with sessions() as db:
        waiting, oldest = (
            await db.execute(
                select(func.count(), func.min(Escalation.created_at)).where(
                    Escalation.status == "queued"
                )
            )
        ).one()
    longest = wait_label((now - _aware(oldest)).total_seconds()) if oldest else "—"

    today = now.date()
    days = [(today - dt.timedelta(days=DELAY_DAYS - 1 - i)).isoformat() for i in range(DELAY_DAYS)]
    since = dt.datetime.combine(today - dt.timedelta(days=DELAY_DAYS - 1), dt.time(), dt.UTC)
    per_day: dict[str, list[float]] = {d: [] for d in days}
    for created, seconds in await store.first_reply_delays(since):
        day = _aware(created).date().isoformat()
        if day in per_day:
            per_day[day].append(seconds / 60)
    median = [round(statistics.median(v), 1) if v else None for v in per_day.values()]
    p90 = [round(percentile(v, 90), 1) if v else None for v in per_day.values()]

    month = now - dt.timedelta(days=COUNT_DAYS)
    outcomes = await store.counts_by("outcome", month)
    languages = await store.counts_by("language", month)
    by_outcome = sorted(
        (
            (OUTCOME_LABELS.get(k, "Still open" if k == "None" else k), v)
            for k, v in outcomes.items()
        ),
        key=lambda kv: -kv[1],
    )
    by_language = sorted(
        ((LANGUAGE_NAMES.get(k, k), v) for k, v in languages.items()), key=lambda kv: -kv[1]
    )
    return Figures(waiting, longest, days, median, p90, by_outcome, by_language)


@require_role("supervisor")
async def dashboard(request: web.Request) -> web.StreamResponse:
    user = current_user(request)
    sessions = console_db(request)
    await audit.record(sessions, user.username, "read", page="dashboard")
    f = await figures(sessions)
    return render(
        request,
        "dashboard.html",
        f=f,
        delay_chart=line_chart(
            f.days,
            [("median", f.median_minutes), ("p90", f.p90_minutes)],
            "Minutes to the first human reply, per day",
            "min",
        ),
        outcome_chart=bar_chart(f.by_outcome, f"Cases by outcome, last {COUNT_DAYS} days"),
        language_chart=bar_chart(f.by_language, f"Cases by language, last {COUNT_DAYS} days"),
        delay_rows=list(zip(f.days, f.median_minutes, f.p90_minutes, strict=True)),
        count_days=COUNT_DAYS,
        delay_days=DELAY_DAYS,
    )


def setup_dashboard(app: web.Application) -> None:
    app.router.add_get("/console/dashboard", dashboard)
