"""The person's side: made-up users writing, pressing buttons, blocking the bot.

Each action stores the message in the transcript and queues the update Telegram would send, so the
bot under test cannot tell it from the real thing.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bot.devtools.emulator.model import Chat, StoredMessage, bot_user
from bot.devtools.emulator.state import Emulator

MEDIA_KINDS = (
    "sticker",
    "voice",
    "photo",
    "video",
    "video_note",
    "audio",
    "document",
    "animation",
    "contact",
    "poll",
    "dice",
)


class UserError(ValueError):
    """The control API was asked for something a person cannot do (HTTP 400)."""


def make_user(
    user_id: int, first_name: str = "Test", language_code: str = "en", username: str | None = None
) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": int(user_id),
        "is_bot": False,
        "first_name": first_name,
        "language_code": language_code,
    }
    if username:
        user["username"] = username
    return user


def _file(kind: str, seed: str) -> dict[str, Any]:
    """A file_id/file_unique_id pair that looks like Telegram's and is stable per seed."""
    digest = hashlib.sha256(f"{kind}:{seed}".encode()).hexdigest()
    return {"file_id": f"AgAC{digest[:60]}", "file_unique_id": f"AQAD{digest[60:64]}"}


def media_content(kind: str, user: dict[str, Any], seed: str) -> dict[str, Any]:
    """Minimal but complete Telegram objects, enough for PTB's de_json and filters."""
    if kind == "sticker":
        return {
            "sticker": {
                **_file(kind, seed),
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "🙂",
                "set_name": "TestStickers",
                "file_size": 24_000,
            }
        }
    if kind == "voice":
        return {
            "voice": {
                **_file(kind, seed),
                "duration": 3,
                "mime_type": "audio/ogg",
                "file_size": 9_000,
            }
        }
    if kind == "photo":
        return {
            "photo": [
                {**_file(kind, seed + "s"), "width": 90, "height": 90, "file_size": 1_500},
                {**_file(kind, seed), "width": 800, "height": 800, "file_size": 60_000},
            ]
        }
    if kind in ("video", "animation"):
        video = {
            **_file(kind, seed),
            "width": 640,
            "height": 360,
            "duration": 4,
            "mime_type": "video/mp4",
            "file_size": 300_000,
        }
        if kind == "animation":
            document = {**_file(kind, seed), "file_name": "animation.mp4", "mime_type": "video/mp4"}
            return {"animation": {**video, "file_name": "animation.mp4"}, "document": document}
        return {"video": video}
    if kind == "video_note":
        return {
            "video_note": {**_file(kind, seed), "length": 240, "duration": 5, "file_size": 80_000}
        }
    if kind == "audio":
        return {
            "audio": {
                **_file(kind, seed),
                "duration": 30,
                "performer": "Test",
                "title": "Sample",
                "mime_type": "audio/mpeg",
                "file_size": 400_000,
            }
        }
    if kind == "document":
        return {
            "document": {
                **_file(kind, seed),
                "file_name": "contract.pdf",
                "mime_type": "application/pdf",
                "file_size": 120_000,
            }
        }
    if kind == "contact":
        return {
            "contact": {
                "phone_number": "+994500000000",
                "first_name": user["first_name"],
                "user_id": user["id"],
            }
        }
    if kind == "poll":
        return {
            "poll": {
                "id": seed,
                "question": "Test poll?",
                # persistent_id, allows_revoting, members_only: required since Bot API 9.6/10.0
                "options": [
                    {"text": "Yes", "voter_count": 0, "persistent_id": "0"},
                    {"text": "No", "voter_count": 0, "persistent_id": "1"},
                ],
                "allows_revoting": False,
                "members_only": False,
                "total_voter_count": 0,
                "is_closed": False,
                "is_anonymous": True,
                "type": "regular",
                "allows_multiple_answers": False,
            }
        }
    if kind == "dice":
        return {"dice": {"emoji": "🎲", "value": 4}}
    raise UserError(f"unknown media kind {kind!r}; one of {', '.join(MEDIA_KINDS)}")


def user_message(
    emu: Emulator,
    user_id: int,
    *,
    kind: str,
    content: dict[str, Any],
    text: str | None = None,
    first_name: str = "Test",
    language_code: str = "en",
    chat_type: str = "private",
    chat_id: int | None = None,
    username: str | None = None,
) -> dict[str, Any]:
    """Store a message the person sent and queue the ``message`` update."""
    if chat_type not in ("private", "group", "supergroup"):
        raise UserError(f"unsupported chat_type {chat_type!r}")
    if chat_type != "private" and chat_id is not None and chat_id >= 0:
        raise UserError("group chats have negative ids")
    user = make_user(user_id, first_name, language_code, username)
    chat = emu.ensure_chat(user, chat_type, chat_id)
    payload: dict[str, Any] = {
        "message_id": chat.take_message_id(),
        "from": user,
        "chat": chat.as_telegram(),
        "date": emu.now(),
        **content,
    }
    if text is not None:
        payload["text"] = text
    emu.store_message(
        chat,
        direction="in",
        kind=kind,
        payload=payload,
        text=text if text is not None else content.get("caption"),
        plain_text=text if text is not None else content.get("caption"),
    )
    update_id = emu.add_update("message", payload)
    return {"update_id": update_id, "message_id": payload["message_id"], "chat_id": chat.id}


def _find(
    emu: Emulator, user_id: int, message_id: int, chat_id: int | None
) -> tuple[Chat, StoredMessage]:
    chat = emu.chats.get(chat_id if chat_id is not None else int(user_id))
    if chat is None:
        raise UserError("no such chat")
    message = chat.messages.get(int(message_id))
    if message is None or message.deleted:
        raise UserError("no such message")
    return chat, message


def user_edit(
    emu: Emulator, user_id: int, message_id: int, text: str, chat_id: int | None = None
) -> dict[str, Any]:
    chat, message = _find(emu, user_id, message_id, chat_id)
    if message.direction != "in" or message.payload["from"]["id"] != int(user_id):
        raise UserError("a person can only edit their own messages")
    if message.kind != "text":
        raise UserError("only text messages can be edited here")
    message.text = message.plain_text = text
    message.edited = True
    message.payload["text"] = text
    message.payload["edit_date"] = emu.now()
    emu.touch(message)
    update_id = emu.add_update("edited_message", dict(message.payload))
    return {"update_id": update_id, "message_id": message.message_id, "chat_id": chat.id}


def press(
    emu: Emulator, user_id: int, message_id: int, callback_data: str, chat_id: int | None = None
) -> dict[str, Any]:
    """Press an inline button on a bot message; the data must be on that message's keyboard."""
    chat, message = _find(emu, user_id, message_id, chat_id)
    if message.direction != "out":
        raise UserError("buttons exist only on the bot's messages")
    if callback_data not in message.callback_data():
        raise UserError(
            f"callback_data {callback_data!r} is not on message {message_id}'s keyboard"
        )
    user = chat.user if chat.type == "private" else make_user(user_id)
    query_id = f"{emu.bot_id}{next(emu._callback_ids):08d}"
    emu.callback_queries[query_id] = {
        "answered": False,
        "chat_id": chat.id,
        "message_id": message.message_id,
    }
    emu.add_event(
        chat,
        {
            "direction": "in",
            "kind": "callback_query",
            "message_id": None,
            "button_message_id": message.message_id,
            "callback_query_id": query_id,
            "text": callback_data,
        },
    )
    query = {
        "id": query_id,
        "from": user,
        "message": dict(message.payload),
        "chat_instance": str(abs(chat.id) * 7919),
        "data": callback_data,
    }
    update_id = emu.add_update("callback_query", query)
    return {"update_id": update_id, "callback_query_id": query_id, "chat_id": chat.id}


def set_blocked(emu: Emulator, user_id: int, blocked: bool) -> dict[str, Any]:
    """Block or unblock the bot: a flag plus the ``my_chat_member`` update Telegram sends."""
    chat = emu.chats.get(int(user_id))
    if chat is None:
        chat = emu.ensure_chat(make_user(user_id))
    chat.blocked = blocked
    old, new = ("member", "kicked") if blocked else ("kicked", "member")
    bot = bot_user(emu.bot_id)
    member = {
        "chat": chat.as_telegram(),
        "from": chat.user,
        "date": emu.now(),
        "old_chat_member": {
            "status": old,
            "user": bot,
            **({"until_date": 0} if old == "kicked" else {}),
        },
        "new_chat_member": {
            "status": new,
            "user": bot,
            **({"until_date": 0} if new == "kicked" else {}),
        },
    }
    emu.add_event(
        chat,
        {"direction": "action", "kind": "block", "action": "blocked" if blocked else "unblocked"},
    )
    update_id = emu.add_update("my_chat_member", member)
    return {"update_id": update_id, "chat_id": chat.id, "blocked": blocked}
