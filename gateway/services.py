"""The services of one `gateway serve` process, started together and drained on SIGTERM/SIGINT.

A service is anything with `start()`, `drain(timeout)` and `stop()`: the metrics writer, the SIP
edge (`SipService`) and the HTTP app, as `gateway.runtime` assembles them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Service(Protocol):
    name: str

    async def start(self) -> None: ...

    async def drain(self, timeout: float) -> None: ...

    async def stop(self) -> None: ...


async def run_services(services: Sequence[Service], drain_timeout: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
        print("SERVING " + " ".join(s.name for s in started), flush=True)
        await stop.wait()
        log.info("draining (up to %.0f s)", drain_timeout)
        await asyncio.gather(*(s.drain(drain_timeout) for s in started), return_exceptions=True)
    finally:
        for service in reversed(started):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
