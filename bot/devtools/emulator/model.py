"""The emulator's records: chats, stored messages, queued updates, injected faults.

Kept apart from the logic so the Bot API handlers, the control API and tests share one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BOT_FIRST_NAME = "CTIP Assistant"
BOT_USERNAME = "ctip_assistant_bot"
DEFAULT_BOT_ID = 7000000001

# Update types Telegram delivers when allowed_updates is empty (the three below need opting in).
OPT_IN_UPDATES = {"chat_member", "message_reaction", "message_reaction_count"}


class ApiError(Exception):
    """A Bot API failure, rendered exactly as Telegram's ``{"ok": false, ...}`` reply."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    return ApiError(400, f"Bad Request: {reason}")


def bot_user(bot_id: int) -> dict[str, Any]:
    """The bot as it appears in ``from`` of its own messages (getMe adds the capability flags)."""
    return {"id": bot_id, "is_bot": True, "first_name": BOT_FIRST_NAME, "username": BOT_USERNAME}


@dataclass
class StoredMessage:
    """One message in a chat with the Telegram object returned to the bot (``payload``)."""

    chat_id: int
    message_id: int
    seq: int
    direction: str  # "in" from the person, "out" from the bot
    kind: str  # "text", "location", "venue", "sticker", ...
    date: int
    payload: dict[str, Any]
    text: str | None = None
    plain_text: str | None = None
    parse_mode: str | None = None
    reply_markup: dict[str, Any] | None = None
    deleted: bool = False
    edited: bool = False
    changed_seq: int = 0

    def view(self) -> dict[str, Any]:
        """The transcript entry (what tests and the web page read)."""
        entry = {
            "seq": self.seq,
            "direction": self.direction,
            "message_id": self.message_id,
            "kind": self.kind,
            "text": self.text,
            "plain_text": self.plain_text,
            "parse_mode": self.parse_mode,
            "reply_markup": self.reply_markup,
            "deleted": self.deleted,
            "edited": self.edited,
            "date": self.date,
        }
        for key in ("location", "venue", "entities", "caption"):
            if key in self.payload:
                entry[key] = self.payload[key]
        return entry

    def callback_data(self) -> set[str]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return {b["callback_data"] for row in rows for b in row if "callback_data" in b}


@dataclass
class Chat:
    """A chat between the bot and one made-up person (private) or a group they write in."""

    id: int
    type: str
    user: dict[str, Any]
    title: str | None = None
    blocked: bool = False
    next_message_id: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    events: list[StoredMessage | dict[str, Any]] = field(default_factory=list)

    def as_telegram(self) -> dict[str, Any]:
        if self.type == "private":
            chat = {"id": self.id, "type": "private", "first_name": self.user["first_name"]}
            if self.user.get("username"):
                chat["username"] = self.user["username"]
            return chat
        return {"id": self.id, "type": self.type, "title": self.title or "Test group"}

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass
class PendingUpdate:
    """An update waiting in the queue; ``redelivered`` ones survive an offset that passed them."""

    update: dict[str, Any]
    redelivered: bool = False

    @property
    def update_id(self) -> int:
        return int(self.update["update_id"])

    @property
    def type(self) -> str:
        return next(k for k in self.update if k != "update_id")


@dataclass
class Fault:
    method: str  # lower-case method name or "*"
    status: int
    count: int
    retry_after: int | None = None

    def error(self) -> ApiError:
        if self.status == 429:
            after = self.retry_after or 1
            return ApiError(429, f"Too Many Requests: retry after {after}", {"retry_after": after})
        if self.status == 500:
            return ApiError(500, "Internal Server Error")
        if self.status == 403:
            return ApiError(403, "Forbidden: bot was blocked by the user")
        if self.status == 400:
            return bad_request("injected fault")
        return ApiError(self.status, f"Error {self.status}")
