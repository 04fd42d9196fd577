"""Small built-in sessions for demos and smoke tests, until the full CallSession is plugged in.

`gateway serve --session package.module:function` picks any coroutine function that takes a
`CallTransport`; the real agent session (engine, backends) is one of those.
"""

from __future__ import annotations

import numpy as np

from gateway.calls import CallEnded, CallTransport, InboundFrame


def tone(rate: int, seconds: float, freq: float = 440.0, level: float = 0.25) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


async def greeting_echo(transport: CallTransport) -> None:
    """Beep on answer, then echo the caller back with a one-second delay."""
    rate = transport.info.sample_rate
    transport.play(tone(rate, 0.5))
    delay: list[np.ndarray] = []
    async for event in transport.events():
        if isinstance(event, InboundFrame):
            delay.append(event.pcm)
            if len(delay) > 50:
                transport.play(delay.pop(0))
        elif isinstance(event, CallEnded):
            return


async def silent(transport: CallTransport) -> None:
    """Listen until the caller hangs up (the floor for load tests)."""
    async for event in transport.events():
        if isinstance(event, CallEnded):
            return
