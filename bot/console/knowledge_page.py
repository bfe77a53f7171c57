"""Admin: what the assistant tells people — the knowledge base's counts, its unverified entries
(the bot flags them "please confirm with the hotline"), and a reload from ``knowledge/``.

Why read-only plus reload: ``knowledge/`` (YAML in the repository, reviewed with its sources) is
the single source of truth; editing facts in a web form would bypass that review. The reload
runs the same checks as ``ctip kb check`` and refuses to load a file with errors.
"""

from __future__ import annotations

from aiohttp import web

from bot.console import audit
from bot.console.identity import console_db, current_user
from bot.console.pages import render
from bot.console.security import require_role
from bot.knowledge import load_into, read_knowledge

PAGE = "/console/admin/knowledge"


def _settings(request: web.Request):
    from bot.console.routes import CONSOLE_SETTINGS

    return request.app[CONSOLE_SETTINGS]


async def _page(request: web.Request, status: int = 200, **context) -> web.Response:
    kb = read_knowledge(_settings(request).knowledge_dir)
    unverified = [
        {"file": file, "id": e.get("id", "?"), "source": e.get("source", ""),
         "checked": e.get("checked", "")}
        for file, entries in kb.entries.items()
        for e in entries
        if e.get("verified") is False
    ]  # fmt: skip
    counts = {file: len(entries) for file, entries in kb.entries.items()}
    return render(
        request, "admin_knowledge.html", status=status, counts=counts,
        cities=len(kb.cities), unverified=unverified, errors=kb.errors, **context,
    )  # fmt: skip


@require_role("admin")
async def knowledge_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@require_role("admin")
async def knowledge_reload(request: web.Request) -> web.StreamResponse:
    kb = read_knowledge(_settings(request).knowledge_dir)
    if kb.errors:
        return await _page(request, 400, message="knowledge/ has errors: nothing was loaded.")
    async with console_db(request)() as session:
        counts = await load_into(session, kb)
    user = current_user(request)
    await audit.record(console_db(request), user.username, "knowledge_reload", **counts)
    return await _page(request, message=f"Loaded: {counts}")


def setup_knowledge_page(app: web.Application) -> None:
    app.router.add_get(PAGE, knowledge_page)
    app.router.add_post(PAGE, knowledge_reload)
