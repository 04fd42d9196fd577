"""A session host in its own process: the child side of `host_pool.py`.

`gateway serve` starts `sip.session_hosts` of these (`gateway session-host`, assembled by the
process layer, which builds the sessions). Each runs a `SessionHost` on its own Unix socket for the
workers assigned to it, and talks to the parent over a control socket (a socketpair inherited as a
file descriptor) carrying pickled tuples, length-prefixed:

    parent -> child   ("init", payload)          first message: what the child builds sessions from
                      ("drain", worker, timeout)  pass DRAIN to one worker
                      ("stop",)                   close the host, end the sessions, then exit
    child -> parent   ("ready", {"pid": ...})     the host socket listens
                      ("status", {...})           SessionHost.status(), every 250 ms (heartbeat)
                      ("dropped", n)              frames an ended call lost
                      (tag, ...)                  anything else the process layer sends (the
                                                  metrics records of its calls): `on_message`

Both ends are the same program version on the same machine (the parent starts the child), so
pickle is safe here; nothing from the network reaches this channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import struct
from typing import Any

from gateway.edges.sip.host import SessionHost

log = logging.getLogger(__name__)

LENGTH = struct.Struct("!I")
STATUS_INTERVAL = 0.25


class Control:
    """One end of the control socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sock: socket.socket) -> Control:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, *message: Any) -> None:
        if self.writer.is_closing():
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(LENGTH.pack(len(data)) + data)

    async def recv(self) -> tuple[Any, ...] | None:
        """The next message; None at the end of the stream."""
        try:
            (n,) = LENGTH.unpack(await self.reader.readexactly(LENGTH.size))
            message = pickle.loads(await self.reader.readexactly(n))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return tuple(message)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


async def open_parent(fd: int) -> Control:
    """The child's end, from the inherited descriptor."""
    return await Control.open(socket.socket(fileno=fd))


async def run_child(control: Control, host: SessionHost) -> None:
    """Serve `host` until the parent says stop (or goes away), reporting status meanwhile."""
    await host.start()
    control.send("ready", {"pid": os.getpid()})

    async def report() -> None:
        while True:
            try:
                control.send("status", host.status())
            except Exception:  # a report lost is not a host lost: the next one may go through
                log.exception("session host status failed")
            await asyncio.sleep(STATUS_INTERVAL)  # the heartbeat period

    reporter = asyncio.create_task(report())
    try:
        while (message := await control.recv()) is not None:
            if message[0] == "stop":
                break
            if message[0] == "drain":
                _, index, timeout = message
                link = host.workers.get(int(index))
                if link is not None:
                    link.drain(float(timeout))
    finally:
        await host.stop()  # ends the links; sessions finish (and emit their last records)
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        with contextlib.suppress(Exception):
            control.send("status", host.status())
        await control.close()
