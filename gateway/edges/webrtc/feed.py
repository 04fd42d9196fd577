"""What the softphone page shows, pushed from the server: engine events and captions of both sides.

The feed follows one call's `CallObserver` and turns each new entry into a small JSON message for
the page's data channel. It also fans the same messages out to in-process subscribers (tests await
them instead of sleeping).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.calls import CallObserver, Caption, Observation
from gateway.turns.events import REPLAY_TYPES, Event

# Engine events the page draws on its timeline (decisions that drive playout included).
TIMELINE_TYPES = REPLAY_TYPES | {"pause_playout", "resume_playout", "stop_playout"}


def page_message(item: Observation) -> dict[str, Any] | None:
    """The page's message for one observation; None for what the page does not show."""
    if isinstance(item, Event):
        return {"type": "event", "event": item.to_dict()} if item.type in TIMELINE_TYPES else None
    if isinstance(item, Caption):
        return {"type": "caption", "who": item.who, "t": round(item.t, 2), "text": item.text}
    return None


class SessionFeed:
    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []

    def publish(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        self._send(json.dumps(message))
        for queue in self._subscribers:
            queue.put_nowait(message)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        """Every message published from now on (and the ones already sent, first)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for message in self.sent:
            queue.put_nowait(message)
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    async def follow(self, observer: CallObserver) -> None:
        """Publish what the page shows of the call until the observer closes."""
        async for item in observer.follow():
            message = page_message(item)
            if message is not None:
                self.publish(message)
