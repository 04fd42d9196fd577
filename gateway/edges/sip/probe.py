"""A SIP OPTIONS ping over UDP: is something answering SIP on host:port?"""

from __future__ import annotations

import asyncio
import secrets
import socket
import time


def options_request(host: str, port: int, local_port: int) -> bytes:
    tag, branch, call_id = secrets.token_hex(4), secrets.token_hex(6), secrets.token_hex(8)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{branch};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:probe@127.0.0.1>;tag={tag}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {call_id}@probe\r\n"
        f"CSeq: 1 OPTIONS\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def sip_ping(host: str, port: int, timeout: float = 0.5) -> int | None:
    """Status code of the reply to one OPTIONS, None if nothing answered within `timeout`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(timeout)
        sock.sendto(options_request(host, port, sock.getsockname()[1]), (host, port))
        try:
            data = sock.recv(65535)
        except OSError:
            return None
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


async def wait_for_sip(host: str, port: int, timeout: float) -> bool:
    """Ping until something answers (another process is starting up: polling is the only way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = await asyncio.to_thread(sip_ping, host, port, 0.3)
        if code is not None:
            return True
        await asyncio.sleep(0.1)
    return False
