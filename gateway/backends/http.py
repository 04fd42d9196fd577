"""HTTP plumbing shared by the vendor adapters: one aiohttp session per event loop, retries."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any, Protocol

import aiohttp
from pydantic import SecretStr

from gateway.backends.base import BackendError, Usage


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


class RetryOptions(Protocol):
    """The options of an HTTP adapter that `HttpBackend.post` reads."""

    @property
    def timeout(self) -> float: ...  # seconds to the response headers (and between body reads)
    @property
    def connect_timeout(self) -> float: ...
    @property
    def retries(self) -> int: ...
    @property
    def retry_backoff(self) -> float: ...  # the first wait; doubled on each retry
    @property
    def max_retry_after(self) -> float: ...  # the longest `Retry-After` honoured


class HttpBackend:
    """Base of the adapters that POST JSON to one vendor URL with an optional bearer key.

    Owns the per-loop session and the usage counters (`usage()`, `aclose()`); `post()` counts a
    request per attempt and retries what may succeed on a second try.
    """

    name = ""

    def __init__(
        self,
        url: str,
        retry: RetryOptions,
        *,
        api_key: SecretStr | None,
        model: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self._retry = retry
        headers = dict(headers or {})
        if api_key is not None and api_key.get_secret_value():
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._http = LoopSession(headers)
        self._usage = Usage(provider=self.name, model=model)

    def usage(self) -> Usage:
        return Usage(**vars(self._usage))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def post(
        self,
        body: dict[str, Any],
        *,
        deadline: float | None = None,
        log: logging.Logger | None = None,
    ) -> aiohttp.ClientResponse:
        """The response with status 200 (its body unread).

        Connection errors, 429 and 5xx are retried `retries` times with exponential backoff
        (honouring `Retry-After`, up to `max_retry_after`); a server that took the request and did
        not answer within `timeout` (or the whole `deadline`, if given) is not retried: it may be
        working on it. Retries are logged to `log`, if given. Gives up with a `BackendError`.
        """
        o = self._retry
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=o.connect_timeout, sock_read=o.timeout)
        attempt = 0
        while True:
            attempt += 1
            self._usage.requests += 1
            wait = o.retry_backoff * (2 ** (attempt - 1))
            request = self._http.get().post(self.url, json=body, timeout=timeout)
            try:
                resp = await (request if deadline is None else asyncio.wait_for(request, deadline))
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                # aiohttp's read timeouts are TimeoutErrors too; a connect timeout is worth a retry.
                if isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
                    raise BackendError(
                        f"{self.name}: no response from {self.url} within {o.timeout:g} s"
                    ) from exc
                if attempt > o.retries:
                    raise BackendError(f"{self.name}: cannot connect to {self.url}: {exc}") from exc
                if log is not None:
                    log.warning("%s: %s, retrying in %.2f s", self.name, exc, wait)
                await asyncio.sleep(wait)
                continue
            if resp.status == 200:
                return resp
            detail = await error_text(resp)
            resp.release()
            if retryable_status(resp.status) and attempt <= o.retries:
                delay = min(retry_after(resp.headers.get("Retry-After"), wait), o.max_retry_after)
                if log is not None:
                    log.warning("%s: HTTP %d, retrying in %.2f s", self.name, resp.status, delay)
                await asyncio.sleep(delay)
                continue
            raise BackendError(f"{self.name}: HTTP {resp.status} from {self.url}: {detail}")
