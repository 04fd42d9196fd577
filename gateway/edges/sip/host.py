"""The session host: the asyncio side of the SIP edge, inside `gateway serve`.

Workers connect to its Unix socket (wire.py). For each call a worker announces, the host builds a
`SipCallTransport` and runs the session factory on it as an asyncio task, so every SIP call's
session lives in this one process (where VAD/barge-in inference can be batched across calls) and
the pjsua2 workers stay thin media bridges.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.audio.frames import FRAME_SECONDS, Pcm
from gateway.calls import (
    CallEnded,
    CallInfo,
    Dtmf,
    InboundFrame,
    InboundQueue,
    RefusedAttempt,
    SessionFactory,
    TransportEvent,
    report_refusal,
)
from gateway.edges.sip import wire
from gateway.edges.sip.admission import Admission, Limits, LoadMeter
from gateway.edges.sip.lateness import FrameLateness

log = logging.getLogger(__name__)


class SipCallTransport:
    """One SIP call as a `CallTransport`; frames come from the worker over the link."""

    def __init__(self, info: CallInfo, link: WorkerLink, slot: int, max_queued_frames: int = 250) -> None:
        self.info = info
        self._link = link
        self._slot = slot
        self._inbound = InboundQueue(max_queued_frames)
        self.ended = asyncio.Event()
        self.end_reason = ""
        self.worker_frames_dropped = 0  # in the worker, when this process fell behind
        self.dtmf: list[Dtmf] = []
        self.lateness = FrameLateness()

    @property
    def frames_dropped(self) -> int:
        """Frames dropped here, when the session fell behind."""
        return self._inbound.dropped

    # -- fed by the host ---------------------------------------------------------------------
    def _push(self, event: TransportEvent) -> None:
        if isinstance(event, InboundFrame):
            self.lateness.arrived(event.t)
        self._inbound.put(event)

    def _finish(self, reason: str, worker_dropped: int = 0) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        self.worker_frames_dropped = worker_dropped
        self._push(CallEnded(reason))
        self.ended.set()

    # -- CallTransport -----------------------------------------------------------------------
    async def events(self) -> AsyncIterator[TransportEvent]:
        lateness = self.lateness
        async for event in self._inbound.events():
            if isinstance(event, InboundFrame):
                lateness.taken(event.t)
            yield event

    def unheard_seconds(self) -> float:
        return 0.0  # the worker's playout buffer is a frame or two: heard as it is sent

    def play(self, pcm: Pcm) -> None:
        if not self.ended.is_set():
            self._link.send(wire.pack(wire.Kind.PLAY, self._slot, np.asarray(pcm, "<i2").tobytes()))

    def clear(self) -> None:
        if not self.ended.is_set():
            self._link.send(wire.pack(wire.Kind.CLEAR, self._slot))

    def pause(self) -> None:
        if not self.ended.is_set():
            self._link.send(wire.pack(wire.Kind.PAUSE, self._slot))

    def resume(self) -> None:
        if not self.ended.is_set():
            self._link.send(wire.pack(wire.Kind.RESUME, self._slot))

    async def hangup(self, reason: str = "agent_hangup") -> None:
        if not self.ended.is_set():
            self._link.send(wire.pack_json(wire.Kind.HANGUP, self._slot, {"reason": reason}))
            await self.ended.wait()


@dataclass
class WorkerLink:
    """The host's view of one connected worker."""

    writer: asyncio.StreamWriter
    index: int = -1
    pid: int = 0
    sip_port: int = 0
    fast_read: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)
    calls: dict[int, SipCallTransport] = field(default_factory=dict)
    door: tuple[bool, int | None] = (True, None)  # what the worker was last told (ADMIT)
    _out: list[bytes] = field(default_factory=list, repr=False)
    _flush_scheduled: bool = field(default=False, repr=False)

    reader: asyncio.StreamReader | None = None

    @property
    def call_count(self) -> int:
        return len(self.calls)

    def seen(self, now: float) -> float:
        """When the worker last showed it is alive: now while bytes from it wait unread (this
        host is behind, not the worker), else when its last message was read."""
        buffered = getattr(self.reader, "_buffer", b"") if self.reader is not None else b""
        return now if buffered or self._unread_in_kernel() else self.last_seen

    def _unread_in_kernel(self) -> bool:
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        try:
            waiting = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
        except (OSError, ValueError):  # closed meanwhile (fileno -1)
            return False
        return bool(waiting)

    def send(self, data: bytes) -> None:
        """Queue `data` for the worker; everything queued in one turn of the event loop goes out
        in one write (each call's playout frame would otherwise cost a system call)."""
        if self.writer.is_closing():
            return
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.writer.is_closing():
            self.writer.write(b"".join(self._out))
        self._out.clear()

    def admit(self, open_: bool, max_calls: int | None) -> None:
        self.send(wire.pack_json(wire.Kind.ADMIT, 0, {"open": open_, "max_calls": max_calls}))

    def drain(self, timeout: float) -> None:
        self.send(wire.pack_json(wire.Kind.DRAIN, 0, {"timeout": timeout}))


class SessionHost:
    def __init__(
        self,
        socket_path: str,
        session_factory: SessionFactory,
        on_frames_dropped: Callable[[int], None] | None = None,
        *,
        limits: Limits | None = None,
        probes: dict[str, Callable[[], float]] | None = None,
        index: int = 0,
    ) -> None:
        """`limits`: admission control (None: every call is taken while a worker has room);
        `probes`: extra load measures, e.g. utterances queued for a local STT."""
        self.socket_path = socket_path
        self.session_factory = session_factory
        self.on_frames_dropped = on_frames_dropped
        self.index = index
        self.admission = Admission(limits) if limits is not None else None
        self.meter = LoadMeter(probes)
        self._ticker: asyncio.Task[None] | None = None
        self.workers: dict[int, WorkerLink] = {}
        self.sessions: set[asyncio.Task[None]] = set()
        self.calls_started = 0
        self.calls_ended: dict[str, int] = {}
        # Inbound frames lost by ended calls: in the workers' queues and in this process's.
        self.frames_dropped = {"worker": 0, "host": 0}
        self._server: asyncio.AbstractServer | None = None
        self.worker_connected = asyncio.Condition()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve_worker, path=self.socket_path)
        self.meter.start()
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self, interval: float = 0.25) -> None:
        """Measure the load; open or close the door to new calls (admission control)."""
        while True:
            await asyncio.sleep(interval)  # the sampling period
            load = self.meter.sample(self.active_calls)
            if self.admission is None:
                continue
            was = self.admission.admitting
            now = self.admission.update(time.monotonic(), load)
            if now != was:
                if now:
                    log.warning("session host %d takes new calls again", self.index)
                else:
                    log.warning(
                        "session host %d refuses new calls (%s): loop lag %.0f ms, CPU %.2f cores, "
                        "machine %.0f %%, STT queue %d, %d calls",
                        self.index,
                        self.admission.reason,
                        load.loop_lag * 1000,
                        load.host_cpu,
                        load.machine_cpu * 100,
                        load.stt_queue,
                        load.calls,
                    )
            self._tell_workers()

    def _tell_workers(self) -> None:
        """Each worker's door (ADMIT): open or not, and its share of the host's call cap, so a
        burst of INVITEs cannot take more calls than the cap before the next sample."""
        if self.admission is None:
            return
        cap = self.admission.limits.max_calls
        links = sorted(self.workers.values(), key=lambda link: link.index)
        base, extra = divmod(cap, len(links)) if cap and links else (0, 0)
        for i, link in enumerate(links):
            door = (self.admission.admitting, base + (1 if i < extra else 0) if cap else None)
            if door != link.door:
                link.door = door
                link.admit(*door)

    @property
    def admitting(self) -> bool:
        return self.admission is None or self.admission.admitting

    def status(self) -> dict[str, Any]:
        """What the parent of a session-host process needs to know (host_pool.py), as plain data."""
        now = time.monotonic()
        load = self.meter.last
        return {
            "workers": {
                index: {
                    "pid": link.pid,
                    "sip_port": link.sip_port,
                    "calls": link.call_count,
                    "stats": link.stats,
                    "age": now - link.seen(now),
                }
                for index, link in self.workers.items()
            },
            "calls_started": self.calls_started,
            "calls_ended": dict(self.calls_ended),
            "frames_dropped": dict(self.frames_dropped),
            "admitting": self.admitting,
            "refusals": self.admission.refusals if self.admission is not None else 0,
            "load": vars(load),
        }

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.meter.stop()
        if self._server is not None:
            self._server.close()
        for link in list(self.workers.values()):
            link.writer.close()
        if self.sessions:
            await asyncio.wait(self.sessions, timeout=5)

    @property
    def active_calls(self) -> int:
        return sum(len(w.calls) for w in self.workers.values())

    async def _serve_worker(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = WorkerLink(writer=writer, reader=reader)
        try:
            while True:
                header = await reader.readexactly(wire.HEADER.size)
                n, kind, slot = wire.unpack_header(header)
                payload = await reader.readexactly(n) if n else b""
                link.last_seen = time.monotonic()
                await self._handle(link, kind, slot, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("worker %d link failed", link.index)
        finally:
            for transport in list(link.calls.values()):
                transport._finish("worker_lost")  # the worker died mid-call
                self._count_drops(0, transport.frames_dropped)
            link.calls.clear()
            if self.workers.get(link.index) is link:
                del self.workers[link.index]
                self._tell_workers()
            writer.close()
            log.info("worker %d disconnected", link.index)

    async def _handle(self, link: WorkerLink, kind: wire.Kind, slot: int, payload: bytes) -> None:
        if kind == wire.Kind.FRAME:
            transport = link.calls.get(slot)
            if transport is not None:
                seq, pcm = wire.unpack_frame(payload)
                transport._push(InboundFrame(seq * FRAME_SECONDS, np.frombuffer(pcm, "<i2")))
            return
        body = wire.load_json(payload)
        if kind == wire.Kind.HELLO:
            link.index = int(body["worker"])
            link.pid = int(body.get("pid", 0))
            link.sip_port = int(body.get("sip_port", 0))
            link.fast_read = bool(body.get("fast_read"))
            self.workers[link.index] = link
            self._tell_workers()
            log.info(
                "worker %d connected (pid %d, SIP port %d, fast ByteVector read %s)",
                link.index,
                link.pid,
                link.sip_port,
                "verified" if link.fast_read else "FAILED its check: slow path",
            )
            async with self.worker_connected:
                self.worker_connected.notify_all()
        elif kind == wire.Kind.STATS:
            for refused in body.pop("refused", ()):  # INVITEs the worker refused: log, count, row
                report_refusal(self.session_factory, RefusedAttempt.from_dict(refused, "sip"))
            link.stats = body
        elif kind == wire.Kind.CALL_START:
            info = CallInfo(
                call_id=str(body["call_id"]),
                edge="sip",
                agent=str(body["agent"]),
                caller=str(body.get("caller", "")),
                callee=str(body.get("callee", "")),
                codec=str(body.get("codec", "")),
                sample_rate=int(body.get("sample_rate", 8000)),
                extra={"worker": str(link.index)},
            )
            transport = SipCallTransport(info, link, slot)
            link.calls[slot] = transport
            self.calls_started += 1
            task = asyncio.create_task(self._run_session(transport), name=f"session {info.call_id}")
            self.sessions.add(task)
            task.add_done_callback(self.sessions.discard)
        elif kind == wire.Kind.DTMF:
            transport = link.calls.get(slot)
            if transport is not None:
                dtmf = Dtmf(
                    int(body.get("seq", 0)) * FRAME_SECONDS, str(body["digit"]), str(body.get("method", ""))
                )
                transport.dtmf.append(dtmf)
                transport._push(dtmf)
        elif kind == wire.Kind.CALL_END:
            transport = link.calls.pop(slot, None)
            if transport is not None:
                reason = str(body.get("reason", "error"))
                self.calls_ended[reason] = self.calls_ended.get(reason, 0) + 1
                dropped, total = int(body.get("frames_dropped", 0)), int(body.get("frames_total", 0))
                transport._finish(reason, dropped)
                self._count_drops(dropped, transport.frames_dropped)
                log.info(
                    "call %s ended: %s; frames %d, dropped in worker %d, dropped here %d, "
                    "lateness p50 %.0f ms p99 %.0f ms max %.0f ms",
                    transport.info.call_id,
                    reason,
                    total,
                    dropped,
                    transport.frames_dropped,
                    transport.lateness.percentile(50),
                    transport.lateness.percentile(99),
                    transport.lateness.percentile(100),
                )

    def _count_drops(self, worker: int, host: int) -> None:
        self.frames_dropped["worker"] += worker
        self.frames_dropped["host"] += host
        if worker + host and self.on_frames_dropped is not None:
            try:
                self.on_frames_dropped(worker + host)
            except Exception:
                log.exception("counting dropped frames failed")

    async def _run_session(self, transport: SipCallTransport) -> None:
        try:
            await self.session_factory(transport)
        except Exception:
            log.exception("session for call %s failed", transport.info.call_id)
        finally:
            # A session that returns while the call is up means the agent is done: hang up.
            if not transport.ended.is_set():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(transport.hangup("agent_hangup"), timeout=5)
