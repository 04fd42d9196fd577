"""HTTP plumbing shared by the vendor adapters: one aiohttp session per event loop, retries."""

from __future__ import annotations

import asyncio
import email.utils
import time

import aiohttp


class LoopSession:
    """An `aiohttp.ClientSession` created lazily in the running loop (and again if the loop changes)."""

    def __init__(self, headers: dict[str, str] | None = None) -> None:
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(headers=self._headers)
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        if (
            self._session is not None
            and not self._session.closed
            and self._loop is asyncio.get_running_loop()
        ):
            await self._session.close()
        self._session = None


def retry_after(value: str | None, default: float) -> float:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP date)."""
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())


def retryable_status(status: int) -> bool:
    """429 and 5xx may succeed on a second try; other errors will not."""
    return status == 429 or 500 <= status <= 599


async def error_text(resp: aiohttp.ClientResponse, limit: int = 300) -> str:
    """The start of an error response's body, for messages."""
    try:
        body = await resp.text(errors="replace")
    except (TimeoutError, aiohttp.ClientError):
        return ""
    body = " ".join(body.split())
    return body[:limit] + ("..." if len(body) > limit else "")
