"""The control API under ``/emulator/api/`` and the web chat page.

Tests, benchmarks and the page play the person through these endpoints; they are JSON in, JSON
out, with HTTP 400 for things a person could not do (pressing a button that isn't there).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.devtools.emulator import people
from bot.devtools.emulator.markup import utf16_len
from bot.devtools.emulator.state import EMULATOR_KEY, Emulator

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
MAX_WAIT = 60.0
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _emu(request: web.Request) -> Emulator:
    return request.app[EMULATOR_KEY]


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": "invalid JSON"})) from exc
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "expected a JSON object"}))
    return body


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _sender(body: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments every "person sends something" call shares."""
    chat_id = body.get("chat_id")
    return {
        "first_name": str(body.get("first_name") or "Test"),
        "language_code": str(body.get("language_code") or "en"),
        "chat_type": str(body.get("chat_type") or "private"),
        "chat_id": int(chat_id) if chat_id is not None else None,
        "username": str(body["username"]) if body.get("username") else None,
    }


async def send(request: web.Request) -> web.Response:
    """POST /emulator/api/send/{kind}: text, command, location or media."""
    emu, body, kind = _emu(request), await _body(request), request.match_info["kind"]
    try:
        user_id = int(body["user_id"])
        sender = _sender(body)
        if kind == "text":
            text = str(body.get("text") or "")
            if not text:
                return _error(400, "text is empty")
            result = people.user_message(emu, user_id, kind="text", content={}, text=text, **sender)
        elif kind == "command":
            text = str(body.get("command") or body.get("text") or "")
            if not text.startswith("/"):
                return _error(400, "a command starts with '/'")
            length = utf16_len(text.split()[0])
            entity = {"type": "bot_command", "offset": 0, "length": length}
            result = people.user_message(
                emu, user_id, kind="text", content={"entities": [entity]}, text=text, **sender
            )
        elif kind == "location":
            location = {"latitude": float(body["latitude"]), "longitude": float(body["longitude"])}
            result = people.user_message(
                emu, user_id, kind="location", content={"location": location}, **sender
            )
        elif kind == "media":
            media = str(body.get("media") or body.get("kind") or "")
            user = people.make_user(user_id, sender["first_name"], sender["language_code"])
            content = people.media_content(media, user, f"{user_id}:{emu.next_seq()}")
            if body.get("caption"):
                content["caption"] = str(body["caption"])
            result = people.user_message(emu, user_id, kind=media, content=content, **sender)
        else:
            return _error(404, f"unknown kind {kind!r}")
    except (KeyError, TypeError, ValueError) as exc:
        return _error(400, str(exc))
    return web.json_response(result)


async def edit(request: web.Request) -> web.Response:
    emu, body = _emu(request), await _body(request)
    try:
        result = people.user_edit(
            emu,
            int(body["user_id"]),
            int(body["message_id"]),
            str(body["text"]),
            body.get("chat_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _error(400, str(exc))
    return web.json_response(result)


async def press(request: web.Request) -> web.Response:
    emu, body = _emu(request), await _body(request)
    try:
        result = people.press(
            emu,
            int(body["user_id"]),
            int(body["message_id"]),
            str(body["callback_data"]),
            body.get("chat_id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _error(400, str(exc))
    return web.json_response(result)


async def block(request: web.Request) -> web.Response:
    emu, body = _emu(request), await _body(request)
    blocked = request.match_info["action"] == "block"
    try:
        return web.json_response(people.set_blocked(emu, int(body["user_id"]), blocked))
    except (KeyError, TypeError, ValueError) as exc:
        return _error(400, str(exc))


async def redeliver(request: web.Request) -> web.Response:
    emu, body = _emu(request), await _body(request)
    try:
        emu.redeliver(int(body["update_id"]))
    except (KeyError, TypeError, ValueError) as exc:
        return _error(400, f"unknown update_id: {exc}")
    return web.json_response({"update_id": int(body["update_id"])})


async def faults(request: web.Request) -> web.Response:
    emu = _emu(request)
    if request.method == "DELETE":
        emu.clear_faults()
        return web.json_response({"faults": []})
    body = await _body(request)
    try:
        retry_after = body.get("retry_after")
        emu.inject_fault(
            str(body["method"]),
            int(body["status"]),
            int(body.get("count", 1)),
            int(retry_after) if retry_after is not None else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        return _error(400, str(exc))
    return web.json_response({"faults": [vars(f) for f in emu.faults]})


def _after(request: web.Request) -> int:
    try:
        return int(request.query.get("after", "0"))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=json.dumps({"error": "after must be an integer"})) from exc


async def transcript(request: web.Request) -> web.Response:
    emu = _emu(request)
    new, _ = emu.events(int(request.match_info["chat_id"]), _after(request))
    return web.json_response(new)


async def events(request: web.Request) -> web.Response:
    """Long-poll: answer once something newer than ``after`` exists or ``wait`` seconds pass."""
    emu, chat_id, after = _emu(request), int(request.match_info["chat_id"]), _after(request)
    wait = min(MAX_WAIT, max(0.0, float(request.query.get("wait", "0") or 0)))
    deadline = time.monotonic() + wait
    while True:
        new, changed = emu.events(chat_id, after)
        remaining = deadline - time.monotonic()
        if new or changed or remaining <= 0:
            break
        await emu.wait_change(remaining)
    chat = emu.chats.get(chat_id)
    return web.json_response(
        {
            "events": new,
            "changed": changed,
            "last_seq": emu.last_seq,
            "blocked": bool(chat and chat.blocked),
        }
    )


async def calls(request: web.Request) -> web.Response:
    return web.json_response(_emu(request).calls(request.query.get("method")))


async def bot_commands(request: web.Request) -> web.Response:
    emu = _emu(request)
    scope = request.query.get("scope")
    scope_obj = json.loads(scope) if scope else {"type": "default"}
    key = (json.dumps(scope_obj, sort_keys=True), request.query.get("language_code", ""))
    return web.json_response(emu.commands.get(key, []))


async def webhook(request: web.Request) -> web.Response:
    emu = _emu(request)
    return web.json_response(
        {
            **emu.webhook_info(),
            "secret_token_set": bool(emu.webhook.get("secret_token")),
            "stats": emu.webhook_stats,
            "deliveries": emu.webhook_deliveries,
        }
    )


async def reset(request: web.Request) -> web.Response:
    _emu(request).reset()
    return web.json_response({"ok": True})


async def age(request: web.Request) -> web.Response:
    emu, body = _emu(request), await _body(request)
    try:
        emu.age_messages(int(body["chat_id"]), float(body["hours"]))
    except Exception as exc:  # chat not found is an ApiError; any bad input is the caller's
        return _error(400, str(exc))
    return web.json_response({"ok": True})


def _static_response(name: str) -> web.StreamResponse:
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR or not path.is_file() or path.suffix not in _STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.Response(
        body=path.read_bytes(),
        content_type=_STATIC_TYPES[path.suffix],
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


async def index(request: web.Request) -> web.StreamResponse:
    return _static_response("emulator.html")


async def static(request: web.Request) -> web.StreamResponse:
    return _static_response(request.match_info["name"])


async def no_icon(request: web.Request) -> web.Response:
    """Browsers ask for one; a 404 would show as an error in the page's console."""
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    api = "/emulator/api"
    app.router.add_get("/", index)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_get("/static/{name}", static)
    app.router.add_post(api + "/send/{kind}", send)
    app.router.add_post(api + "/edit", edit)
    app.router.add_post(api + "/press", press)
    app.router.add_post(api + "/{action:block|unblock}", block)
    app.router.add_post(api + "/redeliver", redeliver)
    app.router.add_route("POST", api + "/faults", faults)
    app.router.add_route("DELETE", api + "/faults", faults)
    app.router.add_get(api + "/chats/{chat_id:-?\\d+}/transcript", transcript)
    app.router.add_get(api + "/chats/{chat_id:-?\\d+}/events", events)
    app.router.add_get(api + "/calls", calls)
    app.router.add_get(api + "/commands", bot_commands)
    app.router.add_get(api + "/webhook", webhook)
    app.router.add_post(api + "/reset", reset)
    app.router.add_post(api + "/age", age)
