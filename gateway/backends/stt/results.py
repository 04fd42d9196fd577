"""The queue between an STT stream's producer (an engine worker, a socket reader) and `results()`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.backends.base import BackendError, Transcript


class TranscriptQueue:
    """One stream's transcripts in order, an error where the producer put one, ended by `close()`."""

    def __init__(self) -> None:
        self._items: asyncio.Queue[Transcript | BackendError | None] = asyncio.Queue()

    def put(self, item: Transcript | BackendError) -> None:
        self._items.put_nowait(item)

    def close(self) -> None:
        """`results()` returns once it has yielded what came before."""
        self._items.put_nowait(None)

    async def results(self) -> AsyncIterator[Transcript]:
        """The transcripts; a `BackendError` that was put is raised (and ends the iteration)."""
        while True:
            item = await self._items.get()
            if item is None:
                return
            if isinstance(item, BackendError):
                raise item
            yield item
