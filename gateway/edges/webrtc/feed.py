"""What the softphone page shows, pushed from the server: engine events and captions of both sides.

The feed follows one CallSession's log (events, caller transcripts, what the agent said) and turns
each new entry into a small JSON message for the page's data channel. It also fans the same
messages out to in-process subscribers (tests await them instead of sleeping).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.agents.session import CallSession
from gateway.turns.events import REPLAY_TYPES

POLL_S = 0.05
# Engine events the page draws on its timeline (decisions that drive playout included).
TIMELINE_TYPES = REPLAY_TYPES | {"pause_playout", "resume_playout", "stop_playout"}


class SessionFeed:
    def __init__(self, send: Callable[[str], None]) -> None:
        self._send = send
        self._subscribers: list[asyncio.Queue[dict[str, Any]]] = []
        self._events = 0
        self._transcripts = 0
        self._said = 0
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

    def poll(self, session: CallSession) -> None:
        log = session.log
        for event in log.events[self._events :]:
            if event.type in TIMELINE_TYPES:
                self.publish({"type": "event", "event": event.to_dict()})
        self._events = len(log.events)
        for t, text in log.transcripts[self._transcripts :]:
            self.publish({"type": "caption", "who": "caller", "t": round(t, 2), "text": text})
        self._transcripts = len(log.transcripts)
        for t, text in log.agent_said[self._said :]:
            self.publish({"type": "caption", "who": "agent", "t": round(t, 2), "text": text})
        self._said = len(log.agent_said)

    async def follow(self, session_of: Callable[[], CallSession | None], done: asyncio.Event) -> None:
        """Poll the session's log until the call is over (a final poll catches the last entries)."""
        session: CallSession | None = None
        while not done.is_set():
            session = session or session_of()
            if session is not None:
                self.poll(session)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), POLL_S)
        if session is not None:
            self.poll(session)
