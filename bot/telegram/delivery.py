"""Turn the engine's replies into Telegram messages and send them without losing or repeating any.

Why here and not in the handlers: splitting at Telegram's limit, escaping for the parse mode,
keyboards and retries are the same for engine replies, local safety answers and (later) operator
replies.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

log = logging.getLogger(__name__)

TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096, counted on the text after entity parsing
CALLBACK_LIMIT = 64  # bytes of callback_data Telegram accepts
TOKEN_PREFIX = "p:"
T = TypeVar("T")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji like 🙂 counts two)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _fitting(text: str, limit: int) -> int:
    """How many characters from the start of ``text`` fit in ``limit`` UTF-16 code units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-16 code units (Telegram's measure:
    4096 emoji are 8192 units and refused as "message is too long"), at paragraph, line or word
    boundaries when there is one in the second half of the part (so no word is cut in two)."""
    text = text.strip()
    parts: list[str] = []
    while utf16_len(text) > limit:
        fits = _fitting(text, limit)
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = text.rfind(sep, fits // 2, fits)
            if cut != -1:
                break
        if cut == -1:
            cut = fits
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def escape(text: str) -> str:
    """Escape for ``parse_mode=HTML``: our texts are plain, so every <, > and & is literal."""
    return html.escape(text, quote=False)


class PayloadTokens:
    """Button payloads longer than Telegram's 64-byte ``callback_data`` travel as short tokens.

    The map is bounded; a token that fell out (or a restart) makes the button answer "please
    ask again" rather than do something else.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._map: OrderedDict[str, str] = OrderedDict()

    def encode(self, payload: str) -> str:
        if len(payload.encode()) <= CALLBACK_LIMIT and not payload.startswith(TOKEN_PREFIX):
            return payload
        token = TOKEN_PREFIX + hashlib.sha256(payload.encode()).hexdigest()[:24]
        self._map[token] = payload
        self._map.move_to_end(token)
        while len(self._map) > self.capacity:
            self._map.popitem(last=False)
        return token

    def decode(self, data: str) -> str | None:
        if not data.startswith(TOKEN_PREFIX):
            return data
        return self._map.get(data)


def keyboard(buttons: list[dict[str, Any]], tokens: PayloadTokens) -> InlineKeyboardMarkup | None:
    """Inline keyboard, two short buttons per row, long titles on a row of their own."""
    if not buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    for b in buttons:
        title = str(b.get("title") or "")[:64]
        payload = str(b.get("payload") or "")
        if not title or not payload:
            continue
        button = InlineKeyboardButton(title, callback_data=tokens.encode(payload))
        if rows and len(rows[-1]) == 1 and len(title) <= 18 and len(rows[-1][0].text) <= 18:
            rows[-1].append(button)
        else:
            rows.append([button])
    return InlineKeyboardMarkup(rows) if rows else None


@dataclass
class Outgoing:
    """One reply to deliver: plain text and its buttons."""

    text: str
    buttons: list[dict[str, Any]] = field(default_factory=list)


class BlockedByUser(Exception):
    """The person blocked the bot: stop sending to them."""


async def with_retries(
    call: Callable[[], Awaitable[T]], *, attempts: int = 4, base_delay: float = 0.5
) -> T:
    """Retry what Telegram failed to accept: 5xx / network errors, and 429 beyond what the rate
    limiter already retried. A 4xx other than 429 is final (retrying cannot help).
    """
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except RetryAfter as exc:
            if attempt == attempts:
                raise
            delay = exc.retry_after
            await asyncio.sleep(
                float(delay.total_seconds() if hasattr(delay, "total_seconds") else delay)
            )
        except TimedOut:
            # The request may have reached Telegram: repeating could send it twice. Give up.
            raise
        except NetworkError as exc:
            if isinstance(exc, BadRequest | Forbidden) or attempt == attempts:
                raise
            await asyncio.sleep(base_delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


class Sender:
    """Sends replies to one chat with HTML escaping, splitting, keyboards and retries."""

    def __init__(self, bot: Bot, tokens: PayloadTokens) -> None:
        self.bot = bot
        self.tokens = tokens

    async def send(self, chat_id: int, replies: list[Outgoing]) -> list[int]:
        """Deliver ``replies`` in order; return the ids of the messages sent.

        Raises ``BlockedByUser`` when the person blocked the bot. A reply Telegram refuses to
        parse is sent again as plain text, so the text still arrives.
        """
        sent: list[int] = []
        for reply in replies:
            parts = split_text(reply.text) or ([""] if reply.buttons else [])
            for i, part in enumerate(parts):
                markup = keyboard(reply.buttons, self.tokens) if i == len(parts) - 1 else None
                message = await self._send_one(chat_id, part, markup)
                if message is not None:
                    sent.append(message.message_id)
        return sent

    async def _send_one(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> Message | None:
        if not text.strip():
            if markup is None:
                return None
            text = "⬇️"
        try:
            return await with_retries(
                lambda: self.bot.send_message(
                    chat_id, escape(text), parse_mode=ParseMode.HTML, reply_markup=markup
                )
            )
        except Forbidden as exc:
            raise BlockedByUser(str(exc)) from exc
        except BadRequest as exc:
            if "parse entities" not in str(exc).lower():
                raise
            log.warning("Telegram could not parse an escaped reply; sending it as plain text")
            return await with_retries(
                lambda: self.bot.send_message(chat_id, text, reply_markup=markup)
            )
