"""The Bot API face: ``/bot{token}/{method}`` with Telegram's parameters, checks and errors.

Parameters arrive the ways python-telegram-bot and other clients send them (query string, JSON,
urlencoded or multipart form with nested objects JSON-encoded), and replies are the exact
``{"ok": ...}`` shapes, so PTB maps failures to the same exceptions it raises in production.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.devtools.emulator.markup import MAX_TEXT_LENGTH, EntityParseError, parse_text, utf16_len
from bot.devtools.emulator.model import ApiError, Chat, bad_request, bot_user
from bot.devtools.emulator.state import EMULATOR_KEY, Emulator

Params = dict[str, Any]
Handler = Callable[[Emulator, Params], Awaitable[Any]]

_TOKEN = re.compile(r"^(\d+):(.+)$")
_JSON_FIELDS = {
    "reply_markup",
    "commands",
    "scope",
    "allowed_updates",
    "message_ids",
    "reply_parameters",
    "link_preview_options",
    "entities",
    "caption_entities",
}
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}


async def read_params(request: web.Request) -> Params:
    """Merge query string and body; decode the JSON-encoded nested objects of form posts."""
    params: Params = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        ctype = request.content_type
        if ctype == "application/json":
            raw = await request.text()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError as exc:
                raise bad_request("can't parse JSON request body") from exc
            if isinstance(body, dict):
                params.update(body)
        elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else value.file.read()
    for key in _JSON_FIELDS & params.keys():
        if isinstance(params[key], str):
            try:
                params[key] = json.loads(params[key])
            except ValueError as exc:
                raise bad_request(f"can't parse {key} JSON object") from exc
    return params


def _int(params: Params, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid {name} specified") from exc


def _bool(params: Params, name: str) -> bool:
    value = params.get(name)
    return value is True or str(value).lower() in ("true", "1")


def _required(params: Params, name: str) -> Any:
    if params.get(name) in (None, ""):
        raise bad_request(f"{name} is empty" if name != "chat_id" else "chat not found")
    return params[name]


def _parse(text: Any, parse_mode: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Validate a message text like Telegram: parse entities, then check emptiness and length."""
    text = "" if text is None else str(text)
    if not text.strip():
        raise bad_request("message text is empty")
    try:
        parsed = parse_text(text, parse_mode or None)
    except EntityParseError as exc:
        raise bad_request(f"can't parse entities: {exc}") from exc
    if not parsed.plain_text.strip():
        raise bad_request("message text is empty")
    if utf16_len(parsed.plain_text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    return text, parsed.plain_text, parsed.entities


def _markup(params: Params) -> dict[str, Any] | None:
    markup = params.get("reply_markup")
    if markup is not None and not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if markup and "inline_keyboard" in markup:
        for row in markup["inline_keyboard"]:
            for button in row:
                if not button.get("text"):
                    raise bad_request("text buttons are unallowed in the inline keyboard")
                data = button.get("callback_data")
                if data is not None and len(str(data).encode()) > 64:
                    raise bad_request("BUTTON_DATA_INVALID")
    return markup


def _target_chat(emu: Emulator, params: Params) -> Chat:
    chat = emu.chat(_required(params, "chat_id"))
    emu.check_not_blocked(chat)
    return chat


def _reply_to(chat: Chat, params: Params) -> dict[str, Any] | None:
    reply = params.get("reply_parameters") or {}
    message_id = reply.get("message_id") if isinstance(reply, dict) else None
    if message_id is None:
        message_id = params.get("reply_to_message_id")
    if message_id is None:
        return None
    target = chat.messages.get(int(message_id))
    if target is None or target.deleted:
        if isinstance(reply, dict) and reply.get("allow_sending_without_reply"):
            return None
        raise bad_request("message to be replied not found")
    return dict(target.payload)


def _send(emu: Emulator, chat: Chat, params: Params, kind: str, **content: Any) -> dict[str, Any]:
    markup = _markup(params)
    payload = emu.bot_message_payload(
        chat, reply_to_message=_reply_to(chat, params), reply_markup=markup, **content
    )
    emu.store_message(
        chat,
        direction="out",
        kind=kind,
        payload=payload,
        text=params.get("text") if kind == "text" else None,
        plain_text=payload.get("text"),
        parse_mode=params.get("parse_mode") or None,
        reply_markup=markup,
    )
    return payload


# ------------------------------------------------------------------------------- methods


async def get_me(emu: Emulator, params: Params) -> Any:
    return {
        **bot_user(emu.bot_id),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


async def get_updates(emu: Emulator, params: Params) -> Any:
    allowed = params.get("allowed_updates")
    return await emu.get_updates(
        _int(params, "offset"),
        _int(params, "limit", 100) or 100,
        float(params.get("timeout") or 0),
        allowed if isinstance(allowed, list) else None,
    )


async def set_webhook(emu: Emulator, params: Params) -> Any:
    url = str(params.get("url") or "")
    secret = params.get("secret_token") or None
    if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
        raise bad_request("secret token contains unallowed characters")
    if url and not url.startswith(("http://", "https://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    allowed = params.get("allowed_updates")
    emu.set_webhook(
        url,
        secret,
        allowed if isinstance(allowed, list) else None,
        _bool(params, "drop_pending_updates"),
        _int(params, "max_connections", 40) or 40,
    )
    return True


async def delete_webhook(emu: Emulator, params: Params) -> Any:
    emu.delete_webhook(_bool(params, "drop_pending_updates"))
    return True


async def get_webhook_info(emu: Emulator, params: Params) -> Any:
    return emu.webhook_info()


async def send_message(emu: Emulator, params: Params) -> Any:
    chat = _target_chat(emu, params)
    text, plain, entities = _parse(params.get("text"), params.get("parse_mode"))
    params["text"] = text
    extra: dict[str, Any] = {"text": plain, "entities": entities or None}
    preview = params.get("link_preview_options")
    if isinstance(preview, dict) and preview:
        extra["link_preview_options"] = preview
    return _send(emu, chat, params, "text", **extra)


async def send_location(emu: Emulator, params: Params) -> Any:
    chat = _target_chat(emu, params)
    location = _location(params)
    return _send(emu, chat, params, "location", location=location)


async def send_venue(emu: Emulator, params: Params) -> Any:
    chat = _target_chat(emu, params)
    location = _location(params)
    title, address = params.get("title"), params.get("address")
    if not title or not address:
        raise bad_request("title and address must be non-empty")
    venue = {"location": location, "title": str(title), "address": str(address)}
    return _send(emu, chat, params, "venue", location=location, venue=venue)


def _location(params: Params) -> dict[str, float]:
    try:
        lat, lon = float(params["latitude"]), float(params["longitude"])
    except (KeyError, TypeError, ValueError) as exc:
        raise bad_request("wrong latitude or longitude specified") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise bad_request("wrong latitude or longitude specified")
    return {"latitude": lat, "longitude": lon}


async def edit_message_text(emu: Emulator, params: Params) -> Any:
    if params.get("inline_message_id"):
        raise bad_request("inline messages are not supported by the emulator")
    message = emu.bot_message(params.get("chat_id"), params.get("message_id"), to_edit=True)
    chat = emu.chats[message.chat_id]
    emu.check_not_blocked(chat)
    if message.direction != "out" or message.kind != "text":
        raise bad_request("message can't be edited")
    text, plain, entities = _parse(params.get("text"), params.get("parse_mode"))
    markup = _markup(params)
    if (plain, entities, markup) == (
        message.plain_text,
        message.payload.get("entities", []),
        message.reply_markup,
    ):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    message.text, message.plain_text = text, plain
    message.parse_mode = params.get("parse_mode") or None
    message.reply_markup = markup
    message.edited = True
    message.payload.update(text=plain, edit_date=emu.now())
    for key, value in (("entities", entities), ("reply_markup", markup)):
        if value:
            message.payload[key] = value
        else:
            message.payload.pop(key, None)
    emu.touch(message)
    return dict(message.payload)


async def edit_message_reply_markup(emu: Emulator, params: Params) -> Any:
    if params.get("inline_message_id"):
        raise bad_request("inline messages are not supported by the emulator")
    message = emu.bot_message(params.get("chat_id"), params.get("message_id"), to_edit=True)
    emu.check_not_blocked(emu.chats[message.chat_id])
    if message.direction != "out":
        raise bad_request("message can't be edited")
    markup = _markup(params)
    if markup == message.reply_markup or (not markup and not message.reply_markup):
        raise bad_request(
            "message is not modified: specified new message content and reply markup are "
            "exactly the same as a current content and reply markup of the message"
        )
    message.reply_markup = markup
    message.edited = True
    message.payload["edit_date"] = emu.now()
    if markup:
        message.payload["reply_markup"] = markup
    else:
        message.payload.pop("reply_markup", None)
    emu.touch(message)
    return dict(message.payload)


async def delete_message(emu: Emulator, params: Params) -> Any:
    emu.chat(_required(params, "chat_id"))
    emu.delete_message(params.get("chat_id"), _required(params, "message_id"))
    return True


async def delete_messages(emu: Emulator, params: Params) -> Any:
    emu.chat(_required(params, "chat_id"))
    ids = params.get("message_ids")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
        raise bad_request("message identifiers are not specified")
    for message_id in ids:
        try:
            emu.delete_message(params["chat_id"], message_id)
        except ApiError:
            continue  # Telegram skips messages that can't be found or deleted
    return True


async def answer_callback_query(emu: Emulator, params: Params) -> Any:
    text = params.get("text")
    if text is not None and len(str(text)) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    emu.answer_callback(
        str(_required(params, "callback_query_id")), text, _bool(params, "show_alert")
    )
    return True


async def send_chat_action(emu: Emulator, params: Params) -> Any:
    chat = _target_chat(emu, params)
    action = params.get("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    emu.add_event(chat, {"direction": "action", "kind": "action", "action": action})
    return True


def _scope_key(params: Params) -> tuple[str, str]:
    scope = params.get("scope") or {"type": "default"}
    if not isinstance(scope, dict) or "type" not in scope:
        raise bad_request("can't parse BotCommandScope JSON object")
    language = str(params.get("language_code") or "")
    if language and not re.fullmatch(r"[a-z]{2}", language):
        raise bad_request("invalid language code specified")
    return json.dumps(scope, sort_keys=True), language


async def set_my_commands(emu: Emulator, params: Params) -> Any:
    commands = params.get("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("can't parse commands JSON object")
    for command in commands:
        name = str(command.get("command", ""))
        if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(str(command.get("description", ""))) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    key = _scope_key(params)
    clean = [{"command": c["command"], "description": c["description"]} for c in commands]
    if clean:
        emu.commands[key] = clean
    else:
        emu.commands.pop(key, None)
    return True


async def get_my_commands(emu: Emulator, params: Params) -> Any:
    return emu.commands.get(_scope_key(params), [])


async def delete_my_commands(emu: Emulator, params: Params) -> Any:
    emu.commands.pop(_scope_key(params), None)
    return True


def _description(field: str, limit: int) -> Handler:
    async def handler(emu: Emulator, params: Params) -> Any:
        text = str(params.get(field) or "")
        if len(text) > limit:
            raise bad_request(f"{field} is too long")
        emu.descriptions[(field, str(params.get("language_code") or ""))] = text
        return True

    handler.__doc__ = f"Store the bot's {field} per language (Telegram shows it before /start)."
    return handler


async def close(emu: Emulator, params: Params) -> Any:
    emu.closed = True
    return True


METHODS: dict[str, Handler] = {
    "getMe": get_me,
    "getUpdates": get_updates,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "sendMessage": send_message,
    "sendLocation": send_location,
    "sendVenue": send_venue,
    "editMessageText": edit_message_text,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "deleteMessages": delete_messages,
    "answerCallbackQuery": answer_callback_query,
    "sendChatAction": send_chat_action,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
    "setMyDescription": _description("description", 512),
    "setMyShortDescription": _description("short_description", 120),
    "close": close,
    "logOut": close,
}
_BY_LOWER = {name.lower(): name for name in METHODS}

BAD_GATEWAY_BODY = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def _reply(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status)


async def handle(request: web.Request) -> web.StreamResponse:
    """Dispatch one Bot API call, apply injected faults first, and log the outcome."""
    emu: Emulator = request.app[EMULATOR_KEY]
    token, method = request.match_info["token"], request.match_info["method"]
    match = _TOKEN.match(token)
    if not match:
        return _reply(404, ApiError(404, "Not Found").body())
    name = _BY_LOWER.get(method.lower())
    if name is None:
        emu.log_call(method, {}, 404, False)
        return _reply(404, ApiError(404, "Not Found: method not found").body())
    emu.bot_id = int(match.group(1))
    try:
        params = await read_params(request)
    except ApiError as exc:
        emu.log_call(name, {}, exc.code, False)
        return _reply(exc.code, exc.body())
    fault = emu.take_fault(name)
    if fault is not None:
        emu.log_call(name, params, fault.status, False)
        if fault.status == 502:
            return web.Response(status=502, text=BAD_GATEWAY_BODY, content_type="text/html")
        return _reply(fault.status, fault.error().body())
    try:
        result = await METHODS[name](emu, params)
    except ApiError as exc:
        emu.log_call(name, params, exc.code, False)
        return _reply(exc.code, exc.body())
    emu.log_call(name, params, 200, True)
    return _reply(200, {"ok": True, "result": result})


def add_routes(app: web.Application) -> None:
    app.router.add_route("GET", "/bot{token}/{method}", handle)
    app.router.add_route("POST", "/bot{token}/{method}", handle)
