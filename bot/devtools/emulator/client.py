"""``EmulatorClient``: the person's side of the emulator from Python (tests, benchmarks).

Thin on purpose: every method is one HTTP call to ``/emulator/api/``, so what a test does is
exactly what the web page can do.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp


class EmulatorError(RuntimeError):
    """The control API refused a request (HTTP 4xx): the message says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class EmulatorClient:
    """Async client for a running emulator at ``base_url`` (e.g. ``http://127.0.0.1:8081``)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> EmulatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(self, verb: str, path: str, body: Any = None, **query: Any) -> Any:
        params = {k: str(v) for k, v in query.items() if v is not None}
        url = f"{self.base_url}/emulator/api{path}"
        async with self._http().request(verb, url, json=body, params=params) as response:
            payload = await response.json(content_type=None)
            if response.status >= 400:
                raise EmulatorError(response.status, (payload or {}).get("error", str(payload)))
            return payload

    @staticmethod
    def _sender(
        user_id: int,
        first_name: str,
        language_code: str,
        chat_type: str,
        chat_id: int | None,
    ) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "first_name": first_name,
            "language_code": language_code,
            "chat_type": chat_type,
            "chat_id": chat_id,
        }

    # ------------------------------------------------------------------ the person acts

    async def send_text(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Test",
        language_code: str = "en",
        chat_type: str = "private",
        chat_id: int | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """Send a text; returns ``{"update_id", "message_id", "chat_id"}``."""
        body = self._sender(user_id, first_name, language_code, chat_type, chat_id)
        return await self._call("POST", "/send/text", {**body, "text": text, "username": username})

    async def send_command(
        self,
        user_id: int,
        command: str,
        *,
        first_name: str = "Test",
        language_code: str = "en",
        chat_type: str = "private",
        chat_id: int | None = None,
        username: str | None = None,
    ) -> dict[str, Any]:
        """Send ``/start`` (with a bot_command entity, which PTB's CommandHandler needs)."""
        body = self._sender(user_id, first_name, language_code, chat_type, chat_id)
        return await self._call(
            "POST", "/send/command", {**body, "command": command, "username": username}
        )

    async def send_location(
        self,
        user_id: int,
        latitude: float,
        longitude: float,
        *,
        first_name: str = "Test",
        language_code: str = "en",
        chat_type: str = "private",
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        body = self._sender(user_id, first_name, language_code, chat_type, chat_id)
        return await self._call(
            "POST", "/send/location", {**body, "latitude": latitude, "longitude": longitude}
        )

    async def send_media(
        self,
        user_id: int,
        kind: str,
        *,
        caption: str | None = None,
        first_name: str = "Test",
        language_code: str = "en",
        chat_type: str = "private",
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        """Send a sticker, voice, photo, video, video_note, audio, document, animation,
        contact, poll or dice."""
        body = self._sender(user_id, first_name, language_code, chat_type, chat_id)
        return await self._call("POST", "/send/media", {**body, "media": kind, "caption": caption})

    async def edit_text(
        self, user_id: int, message_id: int, text: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """The person edits their message: an ``edited_message`` update."""
        body = {"user_id": user_id, "message_id": message_id, "text": text, "chat_id": chat_id}
        return await self._call("POST", "/edit", body)

    async def press(
        self, user_id: int, message_id: int, callback_data: str, *, chat_id: int | None = None
    ) -> dict[str, Any]:
        """Press an inline button: ``{"update_id", "callback_query_id", "chat_id"}``."""
        body = {
            "user_id": user_id,
            "message_id": message_id,
            "callback_data": callback_data,
            "chat_id": chat_id,
        }
        return await self._call("POST", "/press", body)

    async def block(self, user_id: int) -> dict[str, Any]:
        return await self._call("POST", "/block", {"user_id": user_id})

    async def unblock(self, user_id: int) -> dict[str, Any]:
        return await self._call("POST", "/unblock", {"user_id": user_id})

    async def redeliver(self, update_id: int) -> dict[str, Any]:
        return await self._call("POST", "/redeliver", {"update_id": update_id})

    # ------------------------------------------------------------------ the emulator

    async def inject_fault(
        self, method: str, status: int, count: int = 1, retry_after: int | None = None
    ) -> dict[str, Any]:
        body = {"method": method, "status": status, "count": count, "retry_after": retry_after}
        return await self._call("POST", "/faults", body)

    async def clear_faults(self) -> dict[str, Any]:
        return await self._call("DELETE", "/faults")

    async def age_messages(self, chat_id: int, hours: float) -> dict[str, Any]:
        return await self._call("POST", "/age", {"chat_id": chat_id, "hours": hours})

    async def reset(self) -> dict[str, Any]:
        return await self._call("POST", "/reset")

    # ------------------------------------------------------------------ what happened

    async def transcript(self, chat_id: int, after: int = 0) -> list[dict[str, Any]]:
        return await self._call("GET", f"/chats/{chat_id}/transcript", after=after)

    async def events(self, chat_id: int, after: int = 0, wait: float = 0) -> dict[str, Any]:
        """One long-poll: ``{"events", "changed", "last_seq", "blocked"}``."""
        return await self._call("GET", f"/chats/{chat_id}/events", after=after, wait=wait)

    async def wait_for(
        self,
        chat_id: int,
        count: int = 1,
        *,
        after: int = 0,
        timeout: float = 10.0,
        direction: str | None = "out",
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` entries (bot messages by default) arrive after seq ``after``.

        ``direction=None`` counts every entry. Raises TimeoutError listing what did arrive.
        """
        deadline = time.monotonic() + timeout
        got: list[dict[str, Any]] = []
        cursor = after
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"waited {timeout}s for {count} {direction or 'any'} event(s) in chat "
                    f"{chat_id} after seq {after}; got {json.dumps(got, ensure_ascii=False)}"
                )
            answer = await self.events(chat_id, cursor, wait=min(remaining, 30.0))
            for event in answer["events"]:
                cursor = max(cursor, event["seq"])
                if direction is None or event["direction"] == direction:
                    got.append(event)
            if len(got) >= count:
                return got
            await asyncio.sleep(0)

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        return await self._call("GET", "/calls", method=method)

    async def commands(
        self, language_code: str | None = None, scope: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self._call(
            "GET",
            "/commands",
            language_code=language_code,
            scope=json.dumps(scope) if scope else None,
        )

    async def webhook_info(self) -> dict[str, Any]:
        return await self._call("GET", "/webhook")
