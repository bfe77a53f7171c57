"""PTB handlers: thin wrappers that turn a Telegram update into a call on ``TelegramAdapter``.

Registration order matters (PTB runs the first matching handler per group): duplicates are
dropped in group -1, commands before free text, and a catch-all last so every private message
gets an answer whatever it contains.
"""

from __future__ import annotations

import logging
import time

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.language import DEFAULT_LANGUAGE
from bot.telegram.adapter import Person, TelegramAdapter

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "language", "sos", "operator", "privacy", "forget")
PRIVATE = filters.ChatType.PRIVATE
NEW_OR_EDITED = filters.UpdateType.MESSAGE | filters.UpdateType.EDITED_MESSAGE
GROUP_NOTICE_EVERY = 3600.0  # seconds: say "private chats only" at most hourly per group
MEDIA_KINDS = [
    "sticker",
    "voice",
    "audio",
    "photo",
    "video",
    "video_note",
    "animation",
    "document",
    "contact",
    "poll",
    "dice",
    "game",
    "venue",
    "story",
    "paid_media",
    "invoice",
]


def register(application: Application, adapter: TelegramAdapter) -> None:
    """Attach every handler of the assistant to ``application``."""
    h = _Handlers(adapter)
    application.add_handler(TypeHandler(Update, h.claim), group=-1)
    application.add_handler(TypeHandler(Update, h.finish), group=1)
    application.add_handler(
        ChatMemberHandler(h.on_member, ChatMemberHandler.MY_CHAT_MEMBER), group=0
    )
    application.add_handler(CallbackQueryHandler(h.on_button))
    application.add_handler(
        MessageHandler(~PRIVATE & ~filters.UpdateType.CHANNEL_POSTS, h.on_group)
    )
    for name in COMMANDS:
        application.add_handler(
            CommandHandler(name, getattr(h, f"cmd_{name}"), filters=PRIVATE & NEW_OR_EDITED)
        )
    application.add_handler(MessageHandler(PRIVATE & filters.COMMAND, h.on_unknown_command))
    application.add_handler(MessageHandler(PRIVATE & filters.LOCATION, h.on_location))
    application.add_handler(MessageHandler(PRIVATE & filters.TEXT & NEW_OR_EDITED, h.on_text))
    application.add_handler(MessageHandler(PRIVATE & NEW_OR_EDITED, h.on_other))
    application.add_error_handler(h.on_error)


def message_kind(message: Message) -> str:
    """What the person sent, for logs and answers: ``text``, ``sticker``, ``voice`` …"""
    if message.text is not None:
        return "text"
    for kind in MEDIA_KINDS:
        if getattr(message, kind, None):
            return kind
    return "other"


class _Handlers:
    def __init__(self, adapter: TelegramAdapter) -> None:
        self.a = adapter
        self._group_noticed: dict[int, float] = {}
        self._people: dict[int, Person] = {}  # update_id → sender, from claim to handler
        # update_id → what to remember once the reply is out (see ChatStore.remember)
        self._after: dict[int, tuple[str, int, str | None, int | None]] = {}

    async def _person(self, update: Update, text: str | None = None) -> Person | None:
        user, chat = update.effective_user, update.effective_chat
        if user is None or chat is None:
            return None
        return await self.a.person(user.id, chat.id, user.language_code, text)

    async def _incoming(self, update: Update, text: str | None = None) -> Person | None:
        """The sender of a message (identified when the update was claimed); its id is kept
        (48 h) so /forget can delete it too."""
        person = self._people.pop(update.update_id, None)
        if person is not None:
            return person
        user, chat, message = update.effective_user, update.effective_chat, update.effective_message
        if user is None or chat is None:
            return None
        message_id = message.message_id if message is not None else None
        return await self.a.person(user.id, chat.id, user.language_code, text, message_id)

    # -- idempotency -------------------------------------------------------------------------
    async def claim(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Drop a repeated update. For a private message or button, also identify the sender
        in the same short transaction (the only database work before the engine)."""
        user, chat, message = update.effective_user, update.effective_chat, update.effective_message
        query = update.callback_query
        if (
            user is not None
            and chat is not None
            and chat.type == "private"
            and (message is not None or query is not None)  # not e.g. "blocked the bot"
        ):
            text = None
            if query is None and message is not None and message.text:
                text = None if message.text.startswith("/") else message.text
            begun = await self.a.begin(update.update_id, user.id, chat.id, user.language_code, text)
            if begun is not None:
                person, detected = begun
                self._people[update.update_id] = person
                message_id = message.message_id if message is not None and query is None else None
                self._after[update.update_id] = (person.key, chat.id, detected, message_id)
                return
        elif await self.a.chats.claim_update(update.update_id):
            return
        log.info("update %s already processed; dropped", update.update_id)
        raise ApplicationHandlerStop

    async def finish(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """After the handler: remember the chat (language, message id) and mark the update done."""
        self._people.pop(update.update_id, None)
        after = self._after.pop(update.update_id, None)
        if after is not None:
            await self.a.chats.remember(update.update_id, *after)
        else:
            await self.a.chats.finish_update(update.update_id)

    # -- commands ----------------------------------------------------------------------------
    async def cmd_start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is None:
            return
        choose = self.a.text("utter_ask_language", person.language)
        choose.text = self.a.text("text_tg_choose_language", person.language).text
        await self.a.deliver(person, [self.a.text("utter_greet", person.language), choose])

    async def cmd_help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is not None:
            await self.a.deliver(person, [self.a.text("text_tg_help", person.language)])

    async def cmd_language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is not None:
            await self.a.deliver(person, [self.a.text("utter_ask_language", person.language)])

    async def cmd_sos(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is not None:
            await self.a.emergency(person, reason="sos_command")

    async def cmd_operator(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is not None:
            await self.a.request_human(person)

    async def cmd_privacy(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is not None:
            await self.a.deliver(person, [self.a.text("text_tg_privacy", person.language)])

    async def cmd_forget(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self._after.pop(update.update_id, None)  # nothing of the person may be written back
        person = self._people.pop(update.update_id, None) or await self._person(update)
        message = update.effective_message
        if person is not None and message is not None:
            await self.a.forget(person, message.message_id)

    async def on_unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        person = await self._incoming(update)
        if person is not None:
            await self.a.deliver(person, [self.a.text("text_tg_unknown_command", person.language)])

    # -- messages ----------------------------------------------------------------------------
    async def on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        text = message.text if message is not None else None
        person = await self._incoming(update, text)
        if person is not None:
            await self.a.handle_text(person, text or "")

    async def on_location(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        person = await self._incoming(update)
        if person is None or message is None or message.location is None:
            return
        await self.a.handle_location(person, message.location.latitude, message.location.longitude)

    async def on_other(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Voice, photos, stickers, files …: say kindly what the bot can read."""
        message = update.effective_message
        person = await self._incoming(update)
        if person is None or message is None:
            return
        kind = message_kind(message)
        log.info("%s sent a %s", person.key, kind)
        if kind == "text":  # an empty text that slipped past the TEXT filter
            await self.a.handle_text(person, message.text or "")
            return
        if kind == "other" and message.caption is None:
            return  # service messages (pinned, joined …) need no answer
        if await self.a.media_while_held(person, kind):
            return
        await self.a.deliver(person, [self.a.text("text_tg_media", person.language)])

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        try:
            await query.answer()
        except TelegramError as exc:  # too old: still act on the press
            log.info("callback answer failed: %s", exc)
        chat = update.effective_chat
        if chat is not None and chat.type != "private":
            return
        person = self._people.pop(update.update_id, None) or await self._person(update)
        if person is None:
            return
        payload = self.a.tokens.decode(query.data or "")
        if not payload or not payload.startswith("/"):
            await self.a.deliver(person, [self.a.text("text_tg_button_expired", person.language)])
            return
        await self.a.handle_payload(person, payload)

    async def on_group(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Groups: never discuss anything there; point to the private chat (at most hourly)."""
        chat, message = update.effective_chat, update.effective_message
        if chat is None or message is None:
            return
        now = time.monotonic()
        if now - self._group_noticed.get(chat.id, -GROUP_NOTICE_EVERY) < GROUP_NOTICE_EVERY:
            return
        self._group_noticed[chat.id] = now
        user = update.effective_user
        language = (user.language_code or "")[:2] if user else ""
        language = language if language in ("az", "ru", "en") else DEFAULT_LANGUAGE
        try:
            await self.a.sender.send(chat.id, [self.a.text("text_tg_group", language)])
        except Exception as exc:
            log.info("could not answer in a group: %s", exc)

    async def on_member(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The person blocked (or unblocked) the bot: stop (or resume) sending."""
        member = update.my_chat_member
        if member is None or member.chat.type != "private":
            return
        blocked = member.new_chat_member.status in ("kicked", "left")
        await self.a.chats.set_blocked(self.a.key_of(member.from_user.id), blocked)
        log.info(
            "%s %s the bot",
            self.a.key_of(member.from_user.id),
            "blocked" if blocked else "unblocked",
        )

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log without message text; the person still gets the numbers when we can reach them."""
        error = context.error
        log.error(
            "error while handling an update: %s",
            type(error).__name__,
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        if update.effective_chat.type != "private":
            return
        person = await self._person(update)
        if person is not None:
            try:
                await self.a.deliver(person, [self.a.text("utter_default", person.language)])
            except Exception:
                log.exception("could not send the fallback answer")
