"""Free loopback ports for workers, the front and tests."""

from __future__ import annotations

import contextlib
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both UDP and TCP on `host` right now (the OS picks it)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                tcp.bind((host, port))
                return port
    raise OSError("no free UDP+TCP port found")
