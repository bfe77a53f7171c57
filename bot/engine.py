"""Client for the Rasa engine's HTTP API (REST channel, parse, tracker events).

Why a thin client of our own: the bot, the shell, the benchmark and the tests talk to the engine
the same way, with the same timeout and token handling.
"""

from __future__ import annotations

from typing import Any

import aiohttp


class EngineError(RuntimeError):
    """The engine did not answer in time or answered with an error."""


class EngineClient:
    """Async client for one Rasa engine."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EngineClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _params(self) -> dict[str, str]:
        return {"token": self.token} if self.token else {}

    async def _post(self, path: str, body: dict[str, Any], timeout: float | None = None) -> Any:
        kwargs: dict[str, Any] = {}
        if timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with self.session.post(
                f"{self.base_url}{path}", json=body, params=self._params(), **kwargs
            ) as resp:
                if resp.status >= 400:
                    raise EngineError(f"engine answered {resp.status} on {path}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineError(f"engine unreachable on {path}: {exc!r}") from exc

    async def send(
        self,
        sender: str,
        text: str,
        metadata: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Send one user message through the REST channel; return the bot's messages.

        ``timeout`` overrides the client's for this turn. Closing the request early makes
        Rasa cancel the turn, so a caller that wants the turn to finish regardless (the
        Telegram adapter) passes a long one and stops *waiting* sooner instead.
        """
        body: dict[str, Any] = {"sender": sender, "message": text}
        if metadata:
            body["metadata"] = metadata
        return await self._post("/webhooks/rest/webhook", body, timeout)

    async def parse(self, text: str) -> dict[str, Any]:
        """Classify ``text`` without touching any conversation."""
        return await self._post("/model/parse", {"text": text})

    async def add_event(self, sender: str, event: dict[str, Any] | list[dict[str, Any]]) -> Any:
        """Append an event (slot, pause, resume …), or several at once, to a conversation's
        tracker."""
        return await self._post(f"/conversations/{sender}/tracker/events", event)

    async def execute(self, sender: str, action: str) -> list[dict[str, Any]]:
        """Run one action in a conversation as it stands; return the bot's messages.

        For re-running a custom action that failed inside a finished turn (Rasa marks the
        endpoint deprecated, but 3.6 serves it). Does not predict what follows.
        """
        body = await self._post(f"/conversations/{sender}/execute", {"name": action})
        return list(body.get("messages") or [])

    async def tracker(self, sender: str) -> dict[str, Any]:
        """The conversation's full tracker (events, slots, latest message)."""
        try:
            async with self.session.get(
                f"{self.base_url}/conversations/{sender}/tracker", params=self._params()
            ) as resp:
                if resp.status >= 400:
                    raise EngineError(f"engine answered {resp.status} for tracker")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineError(f"engine unreachable: {exc!r}") from exc

    async def ready(self) -> bool:
        """True when the engine answers and has a model loaded."""
        try:
            async with self.session.get(f"{self.base_url}/status", params=self._params()) as resp:
                if resp.status != 200:
                    return False
                body = await resp.json()
                return bool(body.get("model_file"))
        except (aiohttp.ClientError, TimeoutError):
            return False
