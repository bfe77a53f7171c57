"""`make bench` (soak part): 100 made-up people talk to the whole stack for 10 minutes.

Full stack, each piece its own process so its memory is its own: the Bot API emulator
(`python -m bot.devtools.telegram_emulator`), the bot service (`ctip run` with a token and
`TELEGRAM_API_BASE_URL`, as production starts it: PTB polling the emulator, the actions and the
database inside) and the Rasa engine (the service's child). This process plays the people.

Polling, not webhook: it is the default production mode, and the emulator's webhook delivers
updates one at a time (as Telegram does per bot), which would serialise 100 people behind each
other's engine turns and measure the emulator rather than the assistant.

Each person runs realistic conversations in az/ru/en (hotline, shelter by city or location,
legal questions, the screening answered with its buttons, language switch, /help), waits for the
answer to each message, then thinks for a while. A turn ends for the person when a real answer
has arrived and nothing more came for a quiet window; its latency is from the send to the last
bot message of the turn. After the soak the chats are checked against the engine's own trackers:
for every message, the replies the engine produced must each arrive exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url

from benchmarks.common import (
    LANGUAGES,
    SECRET_KEY,
    cpu_seconds,
    descendants,
    percentile,
    read_metrics,
    rendered_texts,
    rss_mb,
    service_env,
    start_process,
    stop_process,
    wait_ready,
)
from bot.devtools.emulator import EmulatorClient, EmulatorError
from bot.engine import EngineClient, EngineError
from bot.metrics import WINDOW
from bot.privacy import pseudonymise
from bot.safety import is_emergency
from bot.stack import free_port
from bot.storage.db import make_engine
from bot.telegram.delivery import split_text

TOKEN = "900000003:bench-soak"
FIRST_USER_ID = 7_700_000_000
NAMES = ("Aysel", "Rashad", "Olga", "Murad", "Leyla", "Ivan", "Nigar", "Elvin", "Sara", "Tural")

# ------------------------------------------------------------------------------ conversations

# A step: a text, a "/command", ("press", button data or title), city(...), ("location", lat, lon)
Step = str | tuple[Any, ...]
SCREENING = ("screening",)  # answer the screening's yes/no buttons until its result
BAKU = ("location", 40.4093, 49.8671)
LOCAL_REPLIES = {"/start": 2, "/help": 1, "/language": 1, "/privacy": 1}  # answered by the adapter


def switch(language: str) -> tuple[str, str]:
    """Press the language button (the keyboard /language shows)."""
    return ("press", f'/change_language{{"language": "{language}"}}')


def city(name: str) -> tuple[str, str]:
    """Press a city button if the bot asks for the city (it does not when it remembers one)."""
    return ("press-if-asked", name)


# Each person mostly writes in their own language; the "language" conversation switches to
# another one and back. Azerbaijani comes both with its letters and without (typed on a
# Russian or Latin keyboard). Emergencies and /operator are left out: they open cases for
# operators (bench_console.py measures those), and /forget would erase what is checked here.
CONVERSATIONS: dict[str, dict[str, list[Step]]] = {
    "en": {
        "hotline": ["hi", "what number can I call for help?", "thanks a lot", "bye"],
        "shelter_city": ["I need a safe place to stay tonight", city("Gəncə"),
                         "is there a shelter in Baku?", "thank you"],
        "shelter_location": ["where is the nearest shelter?", BAKU, "thanks"],
        "screening": ["my employer took my passport and won't give it back",
                      ("press", "/start_screening"), SCREENING, "thank you"],
        "legal": ["what punishment does article 144-1 of the criminal code provide?",
                  "how can I get a free lawyer?", "what rights do trafficking victims have?",
                  "ok, goodbye"],
        "job_offer": ["an agency offered me a job in Dubai with free flights, is it a scam?",
                      "they have not paid my salary for three months", "what are my rights?"],
        "language": ["/language", switch("ru"), "где найти приют в Баку?", "/language",
                     switch("en"), "thank you"],
        "help": ["/help", "/start", ("press", "/ask_hotline"), "thanks"],
    },
    "ru": {
        "hotline": ["здравствуйте", "по какому номеру звонить, если нужна помощь?",
                    "спасибо большое", "до свидания"],
        "shelter_city": ["мне негде ночевать, нужно безопасное место", city("Sumqayıt"),
                         "а в Баку есть приют?", "спасибо"],
        "shelter_location": ["где ближайший приют?", BAKU, "спасибо"],
        "screening": ["работодатель забрал мой паспорт и не отдаёт",
                      ("press", "/start_screening"), SCREENING, "спасибо"],
        "legal": ["какое наказание предусматривает статья 144-1 уголовного кодекса?",
                  "как получить бесплатного адвоката?", "какие права у жертв торговли людьми?",
                  "до свидания"],
        "job_offer": ["мне предложили работу в Турции, билеты бесплатно, это не обман?",
                      "мне не платят зарплату уже три месяца", "какие у меня права?"],
        "language": ["/language", switch("en"), "where can I find a shelter in Ganja?",
                     "/language", switch("ru"), "спасибо"],
        "help": ["/help", "/start", ("press", "/ask_shelter"), city("Bakı"), "спасибо"],
    },
    "az": {
        "hotline": ["salam", "qaynar xettin nomresi nedir?", "cox sag olun", "hələlik"],
        "shelter_city": ["gecələmək üçün təhlükəsiz yer lazımdır", city("Bakı"),
                         "Gencede de siginacaq var?", "təşəkkür edirəm"],
        "shelter_location": ["en yaxin siginacaq haradadir?", BAKU, "sag olun"],
        "screening": ["işəgötürən pasportumu götürüb qaytarmır", ("press", "/start_screening"),
                      SCREENING, "təşəkkürlər"],
        "legal": ["Cinayət Məcəlləsinin 144-1-ci maddəsi ilə hansı cəza nəzərdə tutulub?",
                  "pulsuz vekil nece tapa bilerem", "insan alveri qurbaninin huquqlari nelerdir",
                  "sağ olun"],
        "job_offer": ["Rusiyada iş təklif ediblər, yol pulsuzdur, fırıldaq ola bilər?",
                      "3 aydir maasimi vermirler", "huquqlarim nedir?"],
        "language": ["/language", switch("ru"), "где приют в Гяндже?", "/language", switch("az"),
                     "sag ol"],
        "help": ["/help", "/start", ("press", "/ask_rights"), "təşəkkür"],
    },
}  # fmt: skip
WEIGHTS = {"hotline": 3, "shelter_city": 2, "shelter_location": 1, "screening": 2, "legal": 2,
           "job_offer": 1, "language": 1, "help": 1}  # fmt: skip
SCREENING_STOP = 0.05  # chance that a person presses "Stop" instead of answering

# The adapter's own messages: not answers from the engine. The first two are the engine-timeout
# path (hotlines + "I saved your message", later "here is my answer"); the others are errors.
WAIT_NOTES = ("text_tg_engine_down", "text_tg_late_reply")
ERROR_NOTES = ("text_tg_slow_down", "text_tg_button_expired")
ERROR_ANSWERS = ("utter_default", "text_tg_unknown_command")  # counted as answers and as errors
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback")


# ------------------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class Soak:
    """How long, how many people and how fast they write."""

    seconds: float
    users: int
    rate: float  # offered messages per second, all people together
    quiet: float  # seconds without a new bot message that end a turn
    turn_timeout: float  # a person who got no answer by then leaves
    drain: float  # after the soak, how long to wait for replies still under way
    rss_every: float
    seed: int
    database_url: str | None
    profile: str = "single"  # single: `ctip run`; production: replicas, engines, PG + Redis
    redis_url: str | None = None

    @property
    def turn_estimate(self) -> float:
        """A turn's time as the person lives it: the answer (~0.3 s at this load) + quiet window."""
        return 0.3 + self.quiet

    @property
    def mean_think(self) -> float:
        """Thinking time that makes the people together send ``rate`` messages per second.

        Never under 5 s: the service lets one person send at most 20 messages a minute.
        """
        return max(5.0, self.users / self.rate - self.turn_estimate)

    @property
    def offered_rate(self) -> float:
        return self.users / (self.mean_think + self.turn_estimate)


# ------------------------------------------------------------------------------ one person


class Outcome(Enum):
    DONE = "done"
    OFF_SCRIPT = "off_script"  # the button the script wanted was not there
    GAVE_UP = "gave_up"  # no answer within the turn timeout: the person leaves


@dataclass
class Turn:
    """One message a person sent (times in seconds since the soak started)."""

    kind: str  # text, command, press, location
    text: str | None  # what the engine should see; None when not known here (a location)
    sent_at: float
    done_at: float = 0.0  # when the person stopped waiting
    error: str | None = None  # the send itself failed

    @property
    def engine_bound(self) -> bool:
        return self.kind != "command"


class Person:
    """A made-up Telegram user: runs conversations, waits for answers, thinks, repeats."""

    def __init__(
        self,
        user_id: int,
        language: str,
        client: EmulatorClient,
        soak: Soak,
        notes: dict[str, str],
        clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self.user_id = user_id
        self.language = language
        self.name = NAMES[user_id % len(NAMES)]
        self.client = client
        self.soak = soak
        self.notes = notes
        self.clock = clock
        self.rng = rng
        self.turns: list[Turn] = []
        self.seen: dict[int, float] = {}  # emulator seq → when this person first saw it
        self.last_answer: list[dict[str, Any]] = []  # the bot messages of the latest turn
        self.cursor = 0
        self.http_errors: list[str] = []
        self.off_script: Counter[str] = Counter()
        self.gave_up = False

    # -- the conversation ------------------------------------------------------------------
    async def live(self, start_after: float, until: float) -> None:
        """Arrive (spread over the first cycle), say /start, then converse until ``until``."""
        await asyncio.sleep(start_after)
        if await self.step("/start") is Outcome.GAVE_UP:
            return
        names = list(WEIGHTS)
        while self.clock() < until:
            name = self.rng.choices(names, [WEIGHTS[n] for n in names])[0]
            outcome = await self.converse(name, CONVERSATIONS[self.language][name], until)
            if outcome is Outcome.GAVE_UP:
                return

    async def converse(self, name: str, steps: list[Step], until: float) -> Outcome:
        for step in steps:
            await self.think(until)
            if self.clock() >= until:
                return Outcome.DONE
            outcome = await (self.screening(until) if step == SCREENING else self.step(step))
            if outcome is Outcome.OFF_SCRIPT:
                self.off_script[name] += 1
            if outcome is not Outcome.DONE:
                return outcome
        return Outcome.DONE

    async def screening(self, until: float) -> Outcome:
        """Answer yes/no (now and then Stop) while the last bot message asks a question."""
        for question in range(20):
            if "/affirm" not in self.buttons(self.last_answer[-1] if self.last_answer else {}):
                return Outcome.DONE
            if question:
                await self.think(until)
                if self.clock() >= until:
                    return Outcome.DONE
            stop = self.rng.random() < SCREENING_STOP
            choice = "/stop_screening" if stop else self.rng.choice(("/affirm", "/deny"))
            outcome = await self.step(("press", choice))
            if outcome is not Outcome.DONE:
                return outcome
        return Outcome.DONE

    async def think(self, until: float) -> None:
        """Read the answer and type the next message (never past the end of the soak)."""
        pause = self.rng.uniform(0.5, 1.5) * self.soak.mean_think
        await asyncio.sleep(max(0.0, min(pause, until - self.clock())))

    # -- one message -------------------------------------------------------------------------
    async def step(self, step: Step) -> Outcome:
        """Send one message (or press one button) and wait for the whole answer."""
        planned = self.plan(step)
        if planned is None:  # the button is not on the latest answer
            return Outcome.OFF_SCRIPT if step[0] == "press" else Outcome.DONE
        kind, text, send = planned
        turn = Turn(kind, text, self.clock())
        self.turns.append(turn)
        try:
            await send
        except (EmulatorError, aiohttp.ClientError, TimeoutError) as exc:
            turn.error = f"{type(exc).__name__}: {exc}"
            self.http_errors.append(turn.error)
            return Outcome.DONE
        await self.wait_answer(turn)
        if turn.done_at - turn.sent_at >= self.soak.turn_timeout:
            self.gave_up = True
            return Outcome.GAVE_UP
        return Outcome.DONE

    def plan(self, step: Step) -> tuple[str, str | None, Coroutine[Any, Any, Any]] | None:
        """Kind, the text the engine should see, and the (not yet started) emulator call."""
        c, uid, lang, name = self.client, self.user_id, self.language, self.name
        if isinstance(step, tuple) and step[0] in ("press", "press-if-asked"):
            found = self.find_button(step[1])
            if found is None:
                return None
            message_id, data = found  # a long payload travels as a "p:" token
            return "press", None if data.startswith("p:") else data, c.press(uid, message_id, data)
        if isinstance(step, tuple):
            return "location", None, c.send_location(uid, step[1], step[2], language_code=lang)
        if step.startswith("/"):
            return "command", step, c.send_command(uid, step, first_name=name, language_code=lang)
        return "text", step, c.send_text(uid, step, first_name=name, language_code=lang)

    async def wait_answer(self, turn: Turn) -> None:
        """Long-poll the chat until an answer came and then nothing for the quiet window.

        Bot messages before this turn's own message in the chat are late parts of the previous
        turn: they do not end this one (the check after the soak attributes them).
        """
        deadline = turn.sent_at + self.soak.turn_timeout
        mine = answered = False
        self.last_answer = []
        while (remaining := deadline - self.clock()) > 0:
            wait = min(remaining, self.soak.quiet if answered else 30.0)
            try:
                got = await self.client.events(self.user_id, self.cursor, wait=wait)
            except (EmulatorError, aiohttp.ClientError, TimeoutError) as exc:
                self.http_errors.append(f"events: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                continue
            now = self.clock()
            self.cursor = max(self.cursor, got["last_seq"])
            for event in got["events"]:
                self.seen.setdefault(event["seq"], now)
                if event["direction"] == "in":
                    mine = True
                elif event["direction"] == "out" and mine:
                    self.last_answer.append(event)
                    note = self.notes.get((event.get("plain_text") or "").strip())
                    answered = answered or note not in WAIT_NOTES
            if answered and not got["events"]:
                break
        turn.done_at = self.clock()

    @staticmethod
    def buttons(message: dict[str, Any]) -> dict[str, str]:
        """callback_data → title of a bot message's inline keyboard."""
        rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        return {b["callback_data"]: b["text"] for row in rows for b in row if "callback_data" in b}

    def find_button(self, wanted: str) -> tuple[int, str] | None:
        """A button of the latest answer whose data or title is ``wanted``."""
        for message in reversed(self.last_answer):
            for data, title in self.buttons(message).items():
                if wanted in (data, title):
                    return message["message_id"], data
        return None


# ------------------------------------------------------------------------------ the check


@dataclass
class Verdict:
    """One message after the soak: what the engine said, what arrived, how long it took."""

    turn: Turn
    expected: int  # Telegram messages the engine's replies make (or the adapter's, for commands)
    delivered: int  # answers that arrived (the adapter's wait notes not counted)
    notes: Counter[str]  # the adapter's own messages and error answers in this turn
    latency: float | None  # seconds from the send to the last bot message of the turn
    late: bool  # part of the answer came after the person had stopped waiting
    reached_engine: bool = True

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.delivered)

    @property
    def duplicated(self) -> int:
        return max(0, self.delivered - self.expected)

    @property
    def errors(self) -> int:
        """Engine timeouts, error answers and answers that came after the person stopped
        waiting (the late-reply note belongs to a timeout already counted)."""
        bad = sum(n for name, n in self.notes.items() if name != "text_tg_late_reply")
        return bad + int(self.late)


def telegram_messages(text: str, buttons: list[Any]) -> int:
    """How many Telegram messages the adapter makes of one engine reply (it splits long texts)."""
    return len(split_text(text)) or (1 if buttons else 0)


def engine_turns(tracker: dict[str, Any]) -> list[tuple[str, int]]:
    """Each user message in an engine tracker with the number of Telegram messages it answered."""
    turns: list[tuple[str, int]] = []
    for event in tracker.get("events") or []:
        if event.get("event") == "user":
            turns.append((event.get("text") or "", 0))
        elif event.get("event") == "bot" and turns:
            data = event.get("data") or {}
            count = telegram_messages(event.get("text") or "", data.get("buttons") or [])
            turns[-1] = (turns[-1][0], turns[-1][1] + count)
    return turns


def chat_segments(transcript: list[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], int]:
    """Bot messages grouped under the person's message they follow; plus any before the first."""
    segments: list[list[dict[str, Any]]] = []
    orphans = 0
    for entry in transcript:
        if entry["direction"] == "in":
            segments.append([])
        elif entry["direction"] == "out":
            if segments:
                segments[-1].append(entry)
            else:
                orphans += 1
    return segments, orphans


def judge(
    person: Person, transcript: list[dict[str, Any]], tracker: dict[str, Any]
) -> tuple[list[Verdict], list[str]]:
    """Compare one chat with the engine's tracker, message by message; also list anomalies."""
    sent = [t for t in person.turns if t.error is None]
    segments, orphans = chat_segments(transcript)
    anomalies = [f"{orphans} bot message(s) before the first message"] if orphans else []
    if len(segments) != len(sent):
        anomalies.append(f"{len(sent)} messages sent, {len(segments)} in the chat")
    engine = iter(engine_turns(tracker))
    verdicts = []
    for turn, segment in zip(sent, segments, strict=False):
        reached, expected = True, LOCAL_REPLIES.get(turn.text or "", 1)
        if turn.engine_bound:
            seen_by_engine = next(engine, None)
            reached = seen_by_engine is not None
            expected = seen_by_engine[1] if seen_by_engine else 1
            if seen_by_engine and turn.text is not None and seen_by_engine[0] != turn.text:
                anomalies.append(f"engine saw {seen_by_engine[0]!r} where {turn.text!r} was sent")
        verdicts.append(verdict(person, turn, segment, expected, reached))
    extra = sum(1 for _ in engine)
    if extra:
        anomalies.append(f"the engine has {extra} more user message(s) than were sent")
    return verdicts, anomalies


def verdict(
    person: Person, turn: Turn, segment: list[dict[str, Any]], expected: int, reached: bool
) -> Verdict:
    names = [person.notes.get((e.get("plain_text") or "").strip()) for e in segment]
    notes = Counter(n for n in names if n in WAIT_NOTES + ERROR_NOTES + ERROR_ANSWERS)
    delivered = sum(1 for n in names if n not in WAIT_NOTES + ERROR_NOTES)
    seen = [person.seen.get(e["seq"]) for e in segment]
    late = any(s is None or s > turn.done_at + 0.05 for s in seen)
    known = [s for s in seen if s is not None]
    latency = max(known) - turn.sent_at if known and len(known) == len(seen) else None
    return Verdict(turn, expected, delivered, notes, latency, late, reached)


# ------------------------------------------------------------------------------ the stack


@dataclass
class Stack:
    emulator: EmulatorClient
    groups: dict[str, Callable[[], list[int]]]  # process group name → its pids (RSS, CPU)
    bot_urls: list[str]  # each bot service (replica), for its /metrics
    engine_url: str  # an engine that can read every tracker
    logs: list[Path]  # scanned for ERROR lines
    path: str  # what the messages go through, for the report


async def wait_emulator(client: EmulatorClient, proc: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the emulator exited; see its log")
        with contextlib.suppress(aiohttp.ClientError, EmulatorError):
            await client.webhook_info()
            return
        await asyncio.sleep(0.3)
    raise TimeoutError("the emulator did not start")


@contextlib.asynccontextmanager
async def running(work: Path, users: int, database_url: str | None) -> AsyncIterator[Stack]:
    """The emulator and `ctip run` (which starts the engine) as processes; always stopped."""
    emu_port, bot_port, engine_port = free_port(), free_port(), free_port()
    emu_url = f"http://127.0.0.1:{emu_port}"
    env = service_env(
        work,
        bot_port=bot_port,
        engine_port=engine_port,
        token=TOKEN,
        api_base_url=emu_url,
        database_url=database_url,
    )
    emu_args = ["-m", "bot.devtools.telegram_emulator", "--port", str(emu_port)]
    emu_proc, emu_log = start_process(emu_args, env, work / "emulator.log")
    # One connection per person's long-poll and send, so none waits for a pooled connection.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=users * 2 + 20))
    client = EmulatorClient(emu_url, session=http)
    try:
        await wait_emulator(client, emu_proc)
        svc_proc, svc_log = start_process(["-m", "bot.cli", "run"], env, work / "service.log")
        try:
            bot_url = f"http://127.0.0.1:{bot_port}"
            await wait_ready(bot_url, svc_proc)
            store = "PostgreSQL" if (database_url or "").startswith("postgres") else "SQLite"
            yield Stack(
                client,
                {
                    "emulator": lambda: [emu_proc.pid],
                    "bot service": lambda: [svc_proc.pid],
                    "engine": lambda: descendants(svc_proc.pid),
                },
                [bot_url],
                f"http://127.0.0.1:{engine_port}",
                [work / "service.log", work / "engine" / "engine.log"],
                f"emulator → PTB (polling) → engine → actions → {store}",
            )
        finally:
            stop_process(svc_proc, svc_log)
    finally:
        await http.close()
        stop_process(emu_proc, emu_log, timeout=10)


PRODUCTION_WEBHOOK_SECRET = "bench-soak-webhook-secret"


@contextlib.asynccontextmanager
async def running_production(
    work: Path, users: int, database_url: str, redis_url: str, replicas: int = 2
) -> AsyncIterator[Stack]:
    """The production profile (docs/deploy.md) as processes on this machine.

    ``replicas`` × ``ctip serve`` in webhook mode and as many ``ctip engine`` (replica i asks
    engine i, as the test of the profile does), on one PostgreSQL (our tables and the engines'
    tracker store) and one Redis (the engines' lock store, the flood counters); two balancers
    (``bot.devtools.balancer``) in nginx's place: Telegram's webhook → replicas, engines' NLG
    and actions → replicas. The emulator posts to the webhook in parallel, as Telegram does.
    """
    from bot.telegram.app import WEBHOOK_PATH

    ports = {name: free_port() for name in ("emulator", "edge", "inner")}
    bot_ports = [free_port() for _ in range(replicas)]
    engine_ports = [free_port() for _ in range(replicas)]
    local = "http://127.0.0.1:{}".format
    base = service_env(
        work, bot_port=0, engine_port=0, token=TOKEN, api_base_url=local(ports["emulator"]),
        database_url=database_url,
    )  # fmt: skip
    for name in ("ENGINE_WORK_DIR", "RASA_URL", "BOT_PORT"):
        base.pop(name, None)
    started: list[tuple[Any, Any]] = []

    def start(args: list[str], env: dict[str, str], log: str) -> Any:
        proc, handle = start_process(args, env, work / log)
        started.append((proc, handle))
        return proc

    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=users * 2 + 20))
    client = EmulatorClient(local(ports["emulator"]), session=http)
    try:
        emu = start(
            ["-m", "bot.devtools.telegram_emulator", "--port", str(ports["emulator"]),
             "--webhook-parallel"], base, "emulator.log",
        )  # fmt: skip
        await wait_emulator(client, emu)
        bots = [local(p) for p in bot_ports]
        balancers = [
            start(["-m", "bot.devtools.balancer", "--port", str(ports[name]), *bots], base, log)
            for name, log in (("edge", "balancer-edge.log"), ("inner", "balancer-inner.log"))
        ]
        engines = [
            start(["-m", "bot.cli", "engine"], {**base, "TRACKER_STORE_URL": database_url,
                  "LOCK_STORE_URL": redis_url, "BOT_URL": local(ports["inner"]),
                  "ENGINE_PORT": str(port)}, f"engine-{i + 1}.log")
            for i, port in enumerate(engine_ports)
        ]  # fmt: skip
        services = [
            start(["-m", "bot.cli", "serve"], {**base, "BOT_PORT": str(port),
                  "RASA_URL": local(engine), "TRACKER_STORE_URL": database_url,
                  "REDIS_URL": redis_url,
                  "TELEGRAM_WEBHOOK_URL": local(ports["edge"]) + WEBHOOK_PATH,
                  "TELEGRAM_WEBHOOK_SECRET": PRODUCTION_WEBHOOK_SECRET,
                  "SPOOL_DIR": str(work / "spool")}, f"replica-{i + 1}.log")
            for i, (port, engine) in enumerate(zip(bot_ports, engine_ports, strict=True))
        ]  # fmt: skip
        await asyncio.gather(
            *(wait_ready(url, proc) for url, proc in zip(bots, services, strict=True))
        )
        yield Stack(
            client,
            {
                "emulator": lambda: [emu.pid],
                "balancers": lambda: [b.pid for b in balancers],
                "bot replicas": lambda: [s.pid for s in services],
                "engines": lambda: [pid for e in engines for pid in (e.pid, *descendants(e.pid))],
            },
            bots,
            local(engine_ports[0]),
            [work / f"replica-{i + 1}.log" for i in range(replicas)]
            + [work / f"engine-{i + 1}.log" for i in range(replicas)],
            f"emulator → webhook (parallel) → balancer → {replicas} PTB replicas → "
            f"{replicas} engines (PostgreSQL tracker store, Redis lock store) → actions → "
            "PostgreSQL",
        )
    finally:
        await http.close()
        for proc, handle in reversed(started):
            stop_process(proc, handle, timeout=30)


async def prepare_database(url: str | None) -> None:
    """PostgreSQL: start from an empty schema (the emulator's update ids restart at each run,
    and the service would drop them as already processed). Only a scratch database."""
    if not url or not url.startswith("postgres"):
        return
    name = make_url(url).database or ""
    if "soak" not in name and "bench" not in name:
        raise SystemExit(f"refusing to empty database {name!r}: its name must contain soak/bench")
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sql("DROP SCHEMA public CASCADE"))
        await conn.execute(sql("CREATE SCHEMA public"))
    await engine.dispose()


# ------------------------------------------------------------------------------ measuring


@dataclass
class Sample:
    at: float
    rss: dict[str, float]
    cpu: dict[str, float]


@dataclass
class ProcessWatch:
    """RSS and CPU time of each process of the stack, sampled over the soak."""

    groups: dict[str, Callable[[], list[int]]]
    samples: list[Sample] = field(default_factory=list)

    def sample(self, at: float) -> None:
        pids = {name: pids() for name, pids in self.groups.items()}
        self.samples.append(
            Sample(
                at,
                {name: sum(rss_mb(p) for p in ps) for name, ps in pids.items()},
                {name: sum(cpu_seconds(p) for p in ps) for name, ps in pids.items()},
            )
        )

    async def run(self, every: float, clock: Callable[[], float]) -> None:
        while True:
            self.sample(clock())
            await asyncio.sleep(every)


def process_groups(stack: Stack) -> dict[str, Callable[[], list[int]]]:
    return {**stack.groups, "load generator": lambda: [os.getpid()]}


def log_errors(paths: list[Path]) -> list[str]:
    """ERROR/CRITICAL lines and tracebacks in the services' logs."""
    lines = []
    for path in paths:
        if path.exists():
            lines += [
                f"{path.name}: {line.strip()[:200]}"
                for line in path.read_text(errors="replace").splitlines()
                if ERROR_LINE.search(line)
            ]
    return lines


async def settle(client: EmulatorClient, probe: int, quiet: float, limit: float) -> float:
    """Wait until no chat changed for ``quiet`` seconds (at most ``limit``); returns the wait."""
    start = last_change = time.monotonic()
    last_seq = -1
    while time.monotonic() - start < limit:
        seq = (await client.events(probe, 10**15))["last_seq"]
        if seq != last_seq:
            last_seq, last_change = seq, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - start


async def collect(
    stack: Stack, people: list[Person]
) -> tuple[list[Verdict], list[str], Counter[str]]:
    """Every chat and every engine tracker, judged; plus anomalies and off-script counts."""
    verdicts: list[Verdict] = []
    anomalies: list[str] = []
    off_script: Counter[str] = Counter()
    async with EngineClient(stack.engine_url, timeout=120) as engine:
        for person in people:
            transcript = await stack.emulator.transcript(person.user_id)
            try:
                tracker = await engine.tracker(pseudonymise(person.user_id, SECRET_KEY))
            except EngineError as exc:
                anomalies.append(f"user {person.user_id}: no tracker ({exc})")
                tracker = {}
            found, odd = judge(person, transcript, tracker)
            verdicts += found
            anomalies += [f"user {person.user_id}: {a}" for a in odd]
            off_script += person.off_script
    return verdicts, anomalies, off_script


# ------------------------------------------------------------------------------ the run


async def warm_up(stack: Stack, soak: Soak, notes: dict[str, str]) -> None:
    """A few turns per language before measuring: the engine's first turns are slow."""
    warm = [
        Person(FIRST_USER_ID - 1 - i, lang, stack.emulator, soak, notes, time.monotonic,
               random.Random(i))
        for i, lang in enumerate(CONVERSATIONS)
    ]  # fmt: skip
    for person in warm:
        for step in CONVERSATIONS[person.language]["legal"][:2] + ["where is a shelter in Baku?"]:
            await person.step(step)


async def soak_run(stack: Stack, soak: Soak) -> Report:
    """Warm up, let the people loose for the soak, drain, then check every chat."""
    notes = rendered_texts(WAIT_NOTES + ERROR_NOTES + ERROR_ANSWERS)
    await warm_up(stack, soak, notes)
    before = [await read_metrics(url) for url in stack.bot_urls]
    rng = random.Random(soak.seed)
    start = time.monotonic()

    def clock() -> float:
        return time.monotonic() - start

    people = [
        Person(FIRST_USER_ID + i, LANGUAGES[i % 3], stack.emulator, soak, notes, clock,
               random.Random(rng.random()))
        for i in range(soak.users)
    ]  # fmt: skip
    watch = ProcessWatch(process_groups(stack))
    watcher = asyncio.create_task(watch.run(soak.rss_every, clock))
    cycle = soak.mean_think + soak.turn_estimate
    outcomes = await asyncio.gather(
        *(p.live(rng.uniform(0, cycle), soak.seconds) for p in people), return_exceptions=True
    )
    ended = clock()
    drained = await settle(stack.emulator, people[0].user_id, quiet=5.0, limit=soak.drain)
    watcher.cancel()
    watch.sample(clock())
    verdicts, anomalies, off_script = await collect(stack, people)
    inside: list[tuple[int, dict[str, dict[str, float]]]] = []  # per bot service: turns, figures
    for url, was in zip(stack.bot_urls, before, strict=True):
        now = await read_metrics(url)
        turns = int(now["engine"].get("count", 0) - was["engine"].get("count", 0))
        inside.append((turns, await read_metrics(url, last=max(1, min(WINDOW, turns)))))
    crashes = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    return Report(
        soak=soak,
        ended=ended,
        drained=drained,
        people=people,
        drain_incomplete=drained >= soak.drain,
        verdicts=verdicts,
        anomalies=anomalies + [f"simulated person crashed: {c}" for c in crashes],
        off_script=off_script,
        samples=watch.samples,
        inside=inside,
        log_errors=log_errors(stack.logs),
        path=stack.path,
        crashes=len(crashes),
    )


# ------------------------------------------------------------------------------ the report


@dataclass
class Report:
    soak: Soak
    ended: float
    drained: float
    people: list[Person]
    drain_incomplete: bool  # chats still changing when the drain time ran out
    verdicts: list[Verdict]
    anomalies: list[str]
    off_script: Counter[str]
    samples: list[Sample]
    inside: list[tuple[int, dict[str, dict[str, float]]]]
    log_errors: list[str]
    crashes: int
    path: str

    @property
    def lost(self) -> int:
        return sum(v.lost for v in self.verdicts)

    @property
    def duplicated(self) -> int:
        return sum(v.duplicated for v in self.verdicts)

    @property
    def unanswered(self) -> int:
        return sum(1 for v in self.verdicts if v.delivered == 0)

    @property
    def errors(self) -> int:
        http = sum(len(p.http_errors) for p in self.people)
        return sum(v.errors for v in self.verdicts) + http + self.crashes

    @property
    def failed(self) -> bool:
        return bool(self.lost or self.duplicated or self.unanswered or self.anomalies)

    def print(self) -> None:
        self.print_load()
        self.print_latency()
        self.print_correctness()
        self.print_processes()
        self.print_inside()

    def print_load(self) -> None:
        s, v = self.soak, self.verdicts
        print(f"Soak: {s.users} people for {s.seconds:.0f} s through {self.path} (one run, all "
              f"processes on this machine's {os.cpu_count()} cores)")  # fmt: skip
        print(f"offered load: each person thinks {0.5 * s.mean_think:.1f}–{1.5 * s.mean_think:.1f}"
              f" s between an answer and the next message → ≈ {s.offered_rate:.1f} messages/s "
              f"({s.offered_rate * 60:.0f}/min)")  # fmt: skip
        replies = sum(x.delivered + sum(x.notes.values()) for x in v)
        engine = sum(1 for x in v if x.turn.engine_bound)
        print(f"throughput:   {len(v) / self.ended:.2f} messages/s ({len(v)} messages, {engine} "
              f"to the engine), {replies / self.ended:.2f} replies/s ({replies}) over "
              f"{self.ended:.0f} s; drained in {self.drained:.1f} s"
              f"{' (still changing!)' if self.drain_incomplete else ''}")  # fmt: skip
        print()

    def print_latency(self) -> None:
        print("reply latency, send → last bot message of the turn (ms)")
        print(f"{'minute':>6} {'messages':>8} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} "
              f"{'errors':>6}")  # fmt: skip
        minutes = int(self.ended // 60) + 1
        for m in range(minutes):
            rows = [v for v in self.verdicts if m * 60 <= v.turn.sent_at < (m + 1) * 60]
            if rows:
                self.latency_row(f"{m + 1:>6}", rows)
        self.latency_row(f"{'all':>6}", self.verdicts)
        print()

    @staticmethod
    def latency_row(label: str, rows: list[Verdict]) -> None:
        ms = [v.latency * 1000 for v in rows if v.latency is not None]
        figures = [percentile(ms, q) for q in (0.5, 0.95, 0.99)] + [max(ms, default=float("nan"))]
        cells = " ".join(f"{f:>7.0f}" for f in figures)
        print(f"{label} {len(rows):>8} {cells} {sum(v.errors for v in rows):>6}")

    def print_correctness(self) -> None:
        v = self.verdicts
        notes = sum((x.notes for x in v), Counter())
        http = sum(len(p.http_errors) for p in self.people)
        late = sum(1 for x in v if x.late)
        print(f"errors: {self.errors} (target 0): HTTP {http}, engine timeouts (hotline "
              f"fallback) {notes['text_tg_engine_down']}, error replies "
              f"{sum(notes[n] for n in ERROR_NOTES + ERROR_ANSWERS)}, answers after the person "
              f"stopped waiting {late}, crashed people {self.crashes}; ERROR lines in the "
              f"service and engine logs: {len(self.log_errors)}")  # fmt: skip
        print(f"lost replies: {self.lost} (messages never answered: {self.unanswered}); "
              f"duplicated replies: {self.duplicated} (target 0 each; checked against the "
              f"engine's trackers)")  # fmt: skip
        left = sum(1 for p in self.people if p.gave_up)
        print(f"people who left after {self.soak.turn_timeout:.0f} s without an answer: {left}; "
              f"conversations gone off script (expected button missing): "
              f"{sum(self.off_script.values())} {dict(self.off_script) or ''}")  # fmt: skip
        for line in (self.anomalies + self.log_errors)[:10]:
            print(f"  ! {line}")
        print()

    def print_processes(self) -> None:
        if not self.samples:
            return
        names = list(self.samples[0].rss)
        print("RSS per process over time, MB (CPU % of one core since the previous sample); "
              "engine = the Rasa process and its children")  # fmt: skip
        print(f"{'t s':>5} " + " ".join(f"{n:>18}" for n in names))
        previous = self.samples[0]
        for sample in self.samples:
            span = sample.at - previous.at
            cells = []
            for n in names:
                cpu = (sample.cpu[n] - previous.cpu[n]) / span * 100 if span > 0 else 0.0
                cells.append(f"{sample.rss[n]:>10.0f} ({cpu:>3.0f}%)")
            print(f"{sample.at:>5.0f} " + " ".join(f"{c:>18}" for c in cells))
            previous = sample
        print(f"{'':>5} " + " ".join(f"{n:>18}" for n in names))
        first, last = self.samples[0], self.samples[-1]
        for label, pick in (
            ("start", lambda n: first.rss[n]),
            ("end", lambda n: last.rss[n]),
            ("max", lambda n: max(s.rss[n] for s in self.samples)),
            ("growth", lambda n: last.rss[n] - first.rss[n]),
        ):
            print(f"{label:>5} " + " ".join(f"{pick(n):>18.0f}" for n in names))
        print()

    def print_inside(self) -> None:
        for i, (turns, f) in enumerate(self.inside):
            which = f"bot service {i + 1}" if len(self.inside) > 1 else "the bot service"
            print(f"inside {which} (/metrics over the soak's last {min(turns, WINDOW)} of its "
                  f"{turns} engine turns), ms")  # fmt: skip
            print(f"{'':<44} {'p50':>7} {'p95':>7} {'p99':>7}")
            for key, label in (
                ("engine", "engine turn (as the adapter waits for it)"),
                ("adapter_turn", "adapter turn (update → replies handed over)"),
                ("overhead", "adapter's own part (turn − engine)"),
            ):
                cells = " ".join(
                    f"{f[key].get(q, float('nan')):>7.1f}" for q in ("p50", "p95", "p99")
                )
                print(f"{label:<44} {cells}")


# ------------------------------------------------------------------------------ entry point


def parse_args(argv: list[str] | None = None) -> Soak:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(env("SOAK_SECONDS", "600")))
    parser.add_argument("--users", type=int, default=int(env("SOAK_USERS", "100")))
    parser.add_argument(
        "--rate",
        type=float,
        default=float(env("SOAK_RATE", "4.5")),
        help="offered messages/s, all people together (default 4.5)",
    )
    parser.add_argument(
        "--quiet", type=float, default=1.0, help="seconds without a new bot message that end a turn"
    )
    parser.add_argument("--turn-timeout", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=120.0)
    parser.add_argument("--rss-every", type=float, default=float(env("SOAK_RSS_EVERY", "30")))
    parser.add_argument("--seed", type=int, default=int(env("SOAK_SEED", "1")))
    parser.add_argument(
        "--database-url",
        default=env("SOAK_DATABASE_URL"),
        help="PostgreSQL scratch database (emptied first); default SQLite",
    )
    parser.add_argument(
        "--profile",
        choices=["single", "production"],
        default=env("SOAK_PROFILE", "single"),
        help="single: `ctip run` (polling, one engine); production: 2 webhook replicas and 2 "
        "engines on PostgreSQL (--database-url) and Redis (--redis-url)",
    )
    parser.add_argument("--redis-url", default=env("SOAK_REDIS_URL"))
    args = parser.parse_args(argv)  # fmt: skip
    soak = Soak(
        seconds=args.seconds,
        users=args.users,
        rate=args.rate,
        quiet=args.quiet,
        turn_timeout=args.turn_timeout,
        drain=args.drain,
        rss_every=args.rss_every,
        seed=args.seed,
        database_url=args.database_url,
        profile=args.profile,
        redis_url=args.redis_url,
    )
    if soak.profile == "production" and not (
        (soak.database_url or "").startswith("postgres") and soak.redis_url
    ):
        parser.error("--profile production needs --database-url postgresql://… and --redis-url")
    return soak


def check_scripts() -> None:
    """No script text may trip the safety net: it would open urgent cases, not test the engine."""
    for conversations in CONVERSATIONS.values():
        for steps in conversations.values():
            for step in steps:
                if isinstance(step, str) and is_emergency(step):
                    raise SystemExit(f"script text {step!r} is an emergency phrase")


async def main_async(soak: Soak) -> int:
    check_scripts()
    await prepare_database(soak.database_url)
    work = Path(tempfile.mkdtemp(prefix="ctip-bench-soak-"))
    report = None
    try:
        if soak.profile == "production":
            assert soak.database_url and soak.redis_url
            stack_cm = running_production(work, soak.users, soak.database_url, soak.redis_url)
        else:
            stack_cm = running(work, soak.users, soak.database_url)
        async with stack_cm as stack:
            report = await soak_run(stack, soak)
    finally:
        if report is None or report.failed:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report.print()
    return 1 if report.failed else 0


def main() -> None:
    soak = parse_args()

    async def run() -> int:
        task = asyncio.ensure_future(main_async(soak))
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await task

    sys.exit(asyncio.run(run()))


if __name__ == "__main__":
    main()
