"""PTB handlers: thin wrappers that turn a Telegram update into a call on ``TelegramAdapter``.

Registration order matters (PTB runs the first matching handler per group): duplicates are
dropped in group -1, commands before free text, and a catch-all last so every private message
gets an answer whatever it contains.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

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
from bot.safety import is_emergency
from bot.storage.transient import DatabaseUnavailable, is_transient
from bot.telegram.adapter import Person, TelegramAdapter
from bot.telegram.ledger import Outcome, UpdateLedger
from bot.telegram.state import Claim

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


def register(
    application: Application, adapter: TelegramAdapter, ledger: UpdateLedger | None = None
) -> None:
    """Attach every handler of the assistant to ``application``; ``ledger`` receives how each
    update ended (whether it may be acknowledged)."""
    h = _Handlers(adapter, ledger or UpdateLedger())
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


def in_danger(update: Update) -> bool:
    """/sos or a danger phrase: what gets the emergency answer even without the database."""
    message = update.effective_message
    if update.callback_query is not None or message is None or not message.text:
        return False
    text = message.text
    if text.startswith("/"):
        return text[1:].split(maxsplit=1)[0].split("@")[0].lower() == "sos"
    return is_emergency(text)


class _Handlers:
    def __init__(self, adapter: TelegramAdapter, ledger: UpdateLedger) -> None:
        self.a = adapter
        self.ledger = ledger
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
        in the same short transaction (the only database work before the engine).

        An update another process is still on is dropped *unacknowledged* (Outcome.BUSY):
        Telegram delivers it again, and once that process finished, or died and its claim went
        stale, it is answered — exactly once. With the database unreachable the person gets
        the hotline numbers (or the emergency answer) now and the update is kept for later.
        """
        uid = update.update_id
        user, chat, message = update.effective_user, update.effective_chat, update.effective_message
        query = update.callback_query
        mine = self.ledger.is_unfinished(uid)
        if (
            user is not None
            and chat is not None
            and chat.type == "private"
            and (message is not None or query is not None)  # not e.g. "blocked the bot"
        ):
            text = None
            if query is None and message is not None and message.text:
                text = None if message.text.startswith("/") else message.text

            async def danger_first() -> None:  # the database hesitates: danger does not wait
                if in_danger(update):
                    await self._answer_offline(update)

            try:
                claim, person, detected = await self.a.begin(
                    uid, user.id, chat.id, user.language_code, text,
                    mine=mine, on_first_failure=danger_first,
                )  # fmt: skip
            except DatabaseUnavailable:
                await self._unavailable(update)
                raise ApplicationHandlerStop from None
            if person is not None:
                person = replace(person, offline=self.ledger.answered_offline(uid))
                self._people[uid] = person
                message_id = message.message_id if message is not None and query is None else None
                self._after[uid] = (person.key, chat.id, detected, message_id)
                return
        else:
            try:
                claim = await self.a.chats.claim_update(uid, mine=mine)
            except DatabaseUnavailable:
                self.ledger.mark_unfinished(uid)
                self.ledger.set_outcome(uid, Outcome.UNAVAILABLE)
                raise ApplicationHandlerStop from None
            if claim.granted:
                return
        if claim is Claim.BUSY:
            log.info("update %s is being processed elsewhere; not acknowledged", uid)
            self.ledger.set_outcome(uid, Outcome.BUSY)
        else:
            log.info("update %s already processed; dropped", uid)
            self.ledger.finished(uid)
        raise ApplicationHandlerStop

    async def _unavailable(self, update: Update, error: BaseException | None = None) -> None:
        """The database is unreachable: keep the update for later (the service spools it and
        replays it, see ``bot.telegram.spool``) and answer the person now, once per update,
        without it."""
        uid = update.update_id
        self.ledger.mark_unfinished(uid)
        self.ledger.set_outcome(uid, Outcome.UNAVAILABLE)
        self._people.pop(uid, None)
        self._after.pop(uid, None)
        log.warning(
            "database unreachable for update %s (%s); kept for later",
            uid,
            type(error.__cause__ or error).__name__ if error else "claim",
        )
        await self._answer_offline(update)

    async def _answer_offline(self, update: Update) -> None:
        """The emergency answer or the hotline fallback without the database, at most once per
        update (a kept update is replayed, and may be delivered again by Telegram)."""
        uid = update.update_id
        if self.ledger.answered_offline(uid) is not None:
            return
        user, chat, message = update.effective_user, update.effective_chat, update.effective_message
        if user is None or chat is None or chat.type != "private":
            return
        text = message.text if message is not None and update.callback_query is None else None
        plain = None if text is None or text.startswith("/") else text
        person = self.a.offline_person(user.id, chat.id, user.language_code, plain)
        kind = await self.a.answer_offline(person, emergency=in_danger(update))
        if kind is not None:
            self.ledger.note_offline_answer(uid, kind)

    async def finish(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """After the handler: remember the chat (language, message id) and mark the update done.

        The reply is out: an unreachable database here is logged, not raised — the update
        then stays ``processing`` (it is acknowledged, so Telegram does not send it again).
        """
        uid = update.update_id
        self._people.pop(uid, None)
        after = self._after.pop(uid, None)
        self.ledger.finished(uid)
        try:
            if after is not None:
                await self.a.chats.remember(uid, *after)
            else:
                await self.a.chats.finish_update(uid)
        except DatabaseUnavailable:
            log.warning("database unreachable: update %s answered but not marked done", uid)

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
        """Log without message text; the person is never left with silence.

        Needs no database: the person is identified from the update alone. When the database
        was unreachable the update is kept (Outcome.UNAVAILABLE, ``finish`` skipped) and the
        person gets the hotline numbers with "I saved your message"; any other error gets the
        apology with the hotline numbers and the update counts as done.
        """
        error = context.error
        if isinstance(update, Update) and error is not None and is_transient(error):
            await self._unavailable(update, error)
            raise ApplicationHandlerStop  # not done: `finish` must not mark it
        log.error(
            "error while handling an update: %s",
            type(error).__name__,
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
        if not isinstance(update, Update) or update.effective_chat is None:
            return
        user, chat = update.effective_user, update.effective_chat
        if chat.type != "private" or user is None:
            return
        person = self._people.get(update.update_id) or self.a.offline_person(
            user.id, chat.id, user.language_code, None
        )
        try:
            await self.a.deliver(person, [self.a.text("utter_default", person.language)])
        except Exception:
            log.exception("could not send the fallback answer")
