"""Session hosts in processes of their own, about one per core: the parent side.

`gateway serve` with `sip.session_hosts: N` (N >= 1; `auto`: one per CPU core) starts N children
(`host_child.py`), each a `SessionHost` on its own Unix socket. Worker `i` is assigned to host
`i % N` (its `control` socket path), so a call's frames, inference, STT and replies all run in the
process of its worker's host, and N hosts use N cores. The pool shows the supervisor and the SIP
service the same face as an in-process `SessionHost`: `workers` (a view per connected worker,
refreshed from each child's status heartbeat), call and drop counters, and `drain`.

Children are restarted when they die (their workers lose the link, hang up their calls — BYE to
the callers — drain and are restarted by the supervisor, and reconnect to the new child on the
same socket path). Records of the calls (metrics rows, Prometheus observations) come back over the
control socket to `on_message`, so the one `MetricsWriter` of the parent writes them; the pool
keeps which calls a child has open, so when it dies their rows are closed here
(`("calls_lost", uids, "host_lost")` to `on_message`, and a `call_ended` observation each).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.edges.sip.host_child import Control
from gateway.edges.sip.procs import die_with_parent

log = logging.getLogger(__name__)

STATUS_STALE = 1.0  # seconds without a status from a host after which its reports are late


@dataclass
class HostProcesses:
    """How `gateway serve` starts its session-host processes (given by the process layer)."""

    command: list[str]  # e.g. [python, -m, gateway, session-host]
    init: Any  # the child's first message: what it builds its sessions from (picklable)
    on_message: Callable[[tuple[Any, ...]], None] | None = None  # what else the children send


@dataclass
class LinkView:
    """A worker connected to a child host, as the child last reported it."""

    index: int
    host: HostChild
    pid: int = 0
    sip_port: int = 0
    call_count: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)

    def drain(self, timeout: float) -> None:
        self.host.send("drain", self.index, timeout)

    def seen(self, now: float) -> float:
        """As its host last reported; `now` while the host's reports are late (a host that is
        behind cannot tell a hung worker from its own backlog, so its workers are not judged)."""
        return now if now - self.host.status_at > STATUS_STALE else self.last_seen


@dataclass
class HostChild:
    index: int
    socket_path: str
    proc: asyncio.subprocess.Process | None = None
    control: Control | None = None
    status: dict[str, Any] = field(default_factory=dict)
    status_at: float = 0.0  # when the last status arrived
    links: dict[int, LinkView] = field(default_factory=dict)
    restarts: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    open_calls: dict[str, str] = field(default_factory=dict)  # call row uid -> Call-ID

    def track(self, record: Any) -> None:
        """Follow the `calls` rows of a record the child sent: inserted, then ended. (Duck-typed:
        the edges do not import the metrics layer.)"""
        if getattr(record, "table", None) != "calls":
            return
        if getattr(record, "op", None) == "insert":
            self.open_calls[record.uid] = str(record.values.get("call_id", ""))
        elif "end_reason" in getattr(record, "values", {}):
            self.open_calls.pop(record.uid, None)

    def send(self, *message: Any) -> None:
        if self.control is not None:
            self.control.send(*message)


class HostPool:
    def __init__(
        self,
        count: int,
        run_dir: Path,
        command: list[str],
        init: Any,
        on_message: Callable[[tuple[Any, ...]], None] | None = None,
        on_frames_dropped: Callable[[int], None] | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        """`command` starts one child (the process layer's `gateway session-host`); the pool adds
        `--control-fd FD --socket PATH --index I`. `init` (picklable) is the child's first message."""
        self.children = [HostChild(i, str(run_dir / f"host{i}.sock")) for i in range(max(count, 1))]
        self.run_dir = run_dir
        self.command = command
        self.init = init
        self.on_message = on_message
        self.on_frames_dropped = on_frames_dropped
        self.start_timeout = start_timeout
        self.stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    def socket_for(self, worker_index: int) -> str:
        return self.children[worker_index % len(self.children)].socket_path

    # -- the face of a SessionHost ----------------------------------------------------------------
    @property
    def workers(self) -> dict[int, LinkView]:
        return {i: link for child in self.children for i, link in child.links.items()}

    @property
    def active_calls(self) -> int:
        return sum(link.call_count for link in self.workers.values())

    def _sum(self, key: str) -> Any:
        values = [c.status.get(key) for c in self.children if c.status.get(key) is not None]
        if values and isinstance(values[0], dict):
            out: dict[str, int] = {}
            for v in values:
                assert isinstance(v, dict)
                for k, n in v.items():
                    out[k] = out.get(k, 0) + n
            return out
        return sum(values)

    @property
    def calls_started(self) -> int:
        return int(self._sum("calls_started") or 0)

    @property
    def calls_ended(self) -> dict[str, int]:
        return dict(self._sum("calls_ended") or {})

    @property
    def frames_dropped(self) -> dict[str, int]:
        return {"worker": 0, "host": 0, **(self._sum("frames_dropped") or {})}

    def hosts(self) -> list[dict[str, Any]]:
        """Per child: up, admitting, refusals, load, restarts (health and Prometheus)."""
        return [
            {
                "index": c.index,
                "up": c.proc is not None and c.proc.returncode is None and c.ready.is_set(),
                "pid": c.proc.pid if c.proc is not None else 0,
                "admitting": bool(c.status.get("admitting", True)),
                "refusals": int(c.status.get("refusals", 0)),
                "load": dict(c.status.get("load", {})),
                "restarts": c.restarts,
            }
            for c in self.children
        ]

    # -- life -------------------------------------------------------------------------------------
    async def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(*(self._spawn(c) for c in self.children))
        self._watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
        log.info("%d session hosts up", len(self.children))

    async def _spawn(self, child: HostChild) -> None:
        child.ready.clear()
        child.status = {}
        child.links = {}
        with contextlib.suppress(FileNotFoundError):
            os.unlink(child.socket_path)
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = child_sock.fileno()
        args = ["--control-fd", str(fd), "--socket", child.socket_path, "--index", str(child.index)]
        try:
            child.proc = await asyncio.create_subprocess_exec(
                *self.command,
                *args,
                pass_fds=(fd,),
                stdin=asyncio.subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        finally:
            child_sock.close()
        child.control = await Control.open(parent_sock)
        child.control.send("init", self.init)
        child.reader = asyncio.create_task(self._read(child))
        try:
            await asyncio.wait_for(child.ready.wait(), self.start_timeout)
        except TimeoutError:
            self._kill(child)
            raise RuntimeError(f"session host {child.index} did not start") from None
        log.info("session host %d ready (pid %d)", child.index, child.proc.pid)

    async def _read(self, child: HostChild) -> None:
        control = child.control
        assert control is not None
        while (message := await control.recv()) is not None:
            tag = message[0]
            try:
                if tag == "status":
                    self._apply_status(child, message[1])
                elif tag == "ready":
                    child.ready.set()
                elif tag == "dropped":
                    if self.on_frames_dropped is not None:
                        self.on_frames_dropped(int(message[1]))
                elif self.on_message is not None:
                    if tag == "record":
                        child.track(message[1])
                    self.on_message(message)
            except Exception:
                log.exception("message %r from session host %d failed", tag, child.index)

    def _apply_status(self, child: HostChild, status: dict[str, Any]) -> None:
        child.status = status
        now = child.status_at = time.monotonic()
        links: dict[int, LinkView] = {}
        for index, w in status.get("workers", {}).items():
            view = child.links.get(index) or LinkView(int(index), child)
            view.pid = int(w.get("pid", 0))
            view.sip_port = int(w.get("sip_port", 0))
            view.call_count = int(w.get("calls", 0))
            view.stats = dict(w.get("stats", {}))
            view.last_seen = now - float(w.get("age", 0.0))
            links[index] = view
        child.links = links

    async def _watch(self, child: HostChild) -> None:
        backoff = 0.5
        while not self.stopping:
            assert child.proc is not None
            code = await child.proc.wait()
            if self.stopping:
                return
            log.error("session host %d exited with %s; restarting it", child.index, code)
            child.links = {}
            if child.reader is not None:  # what it sent before it died: records first
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(child.reader), 2.0)
            self._close_lost_calls(child)
            await asyncio.sleep(backoff)  # restart back-off, not synchronisation
            backoff = min(backoff * 2, 10.0)
            try:
                await self._spawn(child)
                child.restarts += 1
            except (RuntimeError, OSError):
                log.exception("restarting session host %d failed", child.index)

    def _close_lost_calls(self, child: HostChild, reason: str = "host_lost") -> None:
        """The rows of the calls a dead child had open: its sessions cannot end them any more
        (its workers hang the calls up: the callers get a BYE)."""
        lost, child.open_calls = child.open_calls, {}
        if not lost:
            return
        log.error(
            "session host %d died in %d calls; closing them (%s): %s",
            child.index,
            len(lost),
            reason,
            ", ".join(lost.values()),
        )
        if self.on_message is None:
            return
        try:
            self.on_message(("calls_lost", list(lost), reason))
            for _ in lost:
                self.on_message(("metric", "call_ended", (reason,)))
        except Exception:
            log.exception("closing the calls of session host %d failed", child.index)

    def _kill(self, child: HostChild, sig: int = signal.SIGKILL) -> None:
        if child.proc is not None and child.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.proc.pid, sig)

    async def stop(self, timeout: float = 10.0) -> None:
        """Each child closes its host and ends its sessions (their last records come back here)."""
        self.stopping = True
        for child in self.children:
            child.send("stop")
        procs = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        if procs:
            await asyncio.wait([asyncio.create_task(p.wait()) for p in procs], timeout=timeout)
        for child in self.children:
            self._kill(child)
        readers = [c.reader for c in self.children if c.reader is not None]
        if readers:  # the rest of what the children wrote: status, records
            await asyncio.wait(readers, timeout=2.0)
        for child in self.children:
            if child.reader is not None:
                child.reader.cancel()
            if child.control is not None:
                await child.control.close()
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(
            *self._watchers, *(c.reader for c in self.children if c.reader), return_exceptions=True
        )
        for child in self.children:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(child.socket_path)
