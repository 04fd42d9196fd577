"""The worker's side of the local link to the session host (plain threads, no asyncio).

- The **sender thread** wakes when a media callback signals a new frame (or every 50 ms), and for
  each call sends, in order: its CALL_START once, its queued frames, its DTMF, and finally its
  CALL_END, after which the call leaves the registry. One `sendall` per wake-up batches all calls.
- The **reader thread** applies PLAY/CLEAR/PAUSE/RESUME to the call's playout buffer directly (they
  are thread-safe and must take effect at once), notes ADMIT (whether the host takes new calls) and
  hands HANGUP/DRAIN to the pjsua2 thread through
  `commands`, because only that thread may call the pjsua2 API.

Without a socket path (`path=None`) the link discards frames: the "bare worker" used as a baseline.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.edges.sip import wire
from gateway.edges.sip.buffers import DropOldestQueue, PlayoutBuffer

log = logging.getLogger(__name__)


@dataclass
class LinkedCall:
    """What the link needs of one call; shared between the pjsua2, media and link threads."""

    slot: int
    inbound: DropOldestQueue
    playout: PlayoutBuffer
    start: dict[str, Any]
    start_sent: bool = False
    controls: deque[bytes] = field(default_factory=deque)
    end: dict[str, Any] | None = None


Command = tuple[wire.Kind, int, dict[str, Any]]


class HostLink:
    def __init__(self, path: str | None, hello: dict[str, Any], stats: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self.wake = threading.Event()
        self.commands: deque[Command] = deque()
        self.calls: dict[int, LinkedCall] = {}
        self.closed = threading.Event()
        # Whether the session host takes new calls (admission control); INVITEs meanwhile get 503.
        self.admitting = True
        self.call_cap: int | None = None  # this worker's share of its host's call cap
        self.refused = 0  # INVITEs refused because the host was overloaded
        self._hello = hello
        self._stats = stats
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def connect(self, timeout: float = 10.0) -> None:
        if self.path is None:
            return
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                break
            except OSError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # the host's socket is in another process: nothing to wait on
        self._sock = sock
        sock.sendall(wire.pack_json(wire.Kind.HELLO, 0, self._hello))

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._send_loop, name="link-send", daemon=True)]
        if self._sock is not None:
            self._threads.append(threading.Thread(target=self._read_loop, name="link-read", daemon=True))
        for t in self._threads:
            t.start()

    def admits(self, calls: int) -> bool:
        """Whether the host takes one more call on this worker, which has `calls` already."""
        return self.admitting and (self.call_cap is None or calls < self.call_cap)

    def add(self, call: LinkedCall) -> None:
        self.calls[call.slot] = call
        self.wake.set()

    def finish(self, slot: int, end: dict[str, Any]) -> None:
        call = self.calls.get(slot)
        if call is not None:
            call.end = end
            self.wake.set()

    def close(self) -> None:
        """Flush what is queued and stop the threads."""
        self.closed.set()
        self.wake.set()
        for t in self._threads:
            if t.name == "link-send":
                t.join(timeout=2)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()

    # -- sender ------------------------------------------------------------------------------
    def _send_loop(self) -> None:
        next_stats = time.monotonic()
        while True:
            self.wake.wait(0.05)
            self.wake.clear()
            closing = self.closed.is_set()
            out: list[bytes] = []
            now = time.monotonic()
            if now >= next_stats:
                out.append(
                    wire.pack_json(wire.Kind.STATS, 0, {**self._stats(), "admission_refused": self.refused})
                )
                next_stats = now + 1.0
            for call in list(self.calls.values()):
                self._collect(call, out)
            if out and self._sock is not None:
                try:
                    self._sock.sendall(b"".join(out))
                except OSError:
                    log.error("lost the link to the session host")
                    self.commands.append((wire.Kind.DRAIN, 0, {"timeout": 0, "reason": "host_lost"}))
                    return
            if closing:
                return

    def _collect(self, call: LinkedCall, out: list[bytes]) -> None:
        if not call.start_sent:
            out.append(wire.pack_json(wire.Kind.CALL_START, call.slot, call.start))
            call.start_sent = True
        end = call.end  # read before draining so no frame is left behind after CALL_END
        for item in call.inbound.drain():
            out.append(wire.pack(wire.Kind.FRAME, call.slot, item))
        while call.controls:
            out.append(call.controls.popleft())
        if end is not None:
            end = dict(end, frames_dropped=call.inbound.dropped, frames_total=call.inbound.total)
            out.append(wire.pack_json(wire.Kind.CALL_END, call.slot, end))
            self.calls.pop(call.slot, None)

    # -- reader ------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        assert self._sock is not None
        f = self._sock.makefile("rb")
        try:
            while True:
                header = f.read(wire.HEADER.size)
                if len(header) < wire.HEADER.size:
                    break
                n, kind, slot = wire.unpack_header(header)
                payload = f.read(n) if n else b""
                self._dispatch(kind, slot, payload)
        except (OSError, ValueError) as exc:
            log.error("link read failed: %s", exc)
        if not self.closed.is_set():
            log.error("session host closed the link; draining")
            self.commands.append((wire.Kind.DRAIN, 0, {"timeout": 0, "reason": "host_lost"}))

    def _dispatch(self, kind: wire.Kind, slot: int, payload: bytes) -> None:
        call = self.calls.get(slot)
        if kind == wire.Kind.PLAY:
            if call is not None:
                call.playout.write(payload)
        elif kind == wire.Kind.CLEAR:
            if call is not None:
                call.playout.clear()
        elif kind == wire.Kind.PAUSE:
            if call is not None:
                call.playout.pause()
        elif kind == wire.Kind.RESUME:
            if call is not None:
                call.playout.resume()
        elif kind == wire.Kind.ADMIT:
            door = wire.load_json(payload)
            cap = door.get("max_calls")
            self.call_cap = int(cap) if cap is not None else None
            self.admitting = bool(door.get("open", True))
        elif kind in (wire.Kind.HANGUP, wire.Kind.DRAIN):
            self.commands.append((kind, slot, wire.load_json(payload)))
        else:
            log.warning("unexpected message %s from the host", kind.name)
