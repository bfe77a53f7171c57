"""The operators' and supervisors' pages: queue, case page, dashboard, and their live streams.

One call from :func:`bot.console.routes.setup_console`, so ``create_app`` still wires the whole
console with one line.
"""

from __future__ import annotations

from aiohttp import web

from bot.console.case_pages import setup_case_pages
from bot.console.dashboard import setup_dashboard
from bot.console.queue import setup_queue
from bot.console.stream import setup_streams


def setup_operator_pages(app: web.Application) -> None:
    setup_streams(app)
    setup_queue(app)
    setup_case_pages(app)
    setup_dashboard(app)
