"""What the caller has heard of the agent audio sent to a carrier, from the carrier's mark echoes.

Carriers buffer the audio we send and play it in real time. After each outbound chunk the
transport sends a mark (Twilio/Telnyx/Exotel `mark`, Plivo `checkpoint`, Vonage `notify`); the
carrier echoes it when playback reaches it. So at any moment:

    sent  = samples handed to the carrier
    heard = the `sent` position recorded with the newest echoed mark
    unheard = sent - heard   (in the carrier's buffer or on the wire: not heard yet)

`unheard / rate` is the transport's `unheard_seconds()` (the Playout's `edge_delay`), so "the
words the caller heard" stops at the last echoed mark. A `clear` makes the carrier drop its
buffer: what was sent but not heard is discarded (counted), and the echoes of marks that were
pending at the clear (Twilio returns them at once) are recognised as flushed, not as playback.
"""

from __future__ import annotations

import itertools


class PlayedPosition:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.sent = 0
        self.heard = 0
        self.discarded = 0  # samples sent but dropped by clears
        self.echoes = 0
        self.flushed_echoes = 0
        self._seq = itertools.count(1)
        self._pending: dict[str, int] = {}  # mark name -> `sent` when it was placed (in order)
        self._flushed: set[str] = set()

    @property
    def unheard_seconds(self) -> float:
        return (self.sent - self.heard) / self.rate

    @property
    def pending_marks(self) -> int:
        return len(self._pending)

    def on_sent(self, samples: int) -> None:
        self.sent += samples

    def new_mark(self, label: str = "") -> str:
        """A unique mark name for the audio sent so far (`label` is appended for debugging/recording)."""
        name = f"{next(self._seq)}" + (f":{label}" if label else "")
        self._pending[name] = self.sent
        return name

    def on_echo(self, name: str) -> bool:
        """A mark came back; True when it advanced the heard position."""
        if name in self._flushed:
            self._flushed.discard(name)
            self.flushed_echoes += 1
            return False
        position = self._pending.get(name)
        if position is None:
            return False  # not ours, or already passed
        self.echoes += 1
        # Marks are echoed in order; any older pending mark was passed with this one.
        for older in list(self._pending):
            del self._pending[older]
            if older == name:
                break
        self.heard = max(self.heard, position)
        return True

    def on_clear(self) -> None:
        self._flushed.update(self._pending)
        self._pending.clear()
        self.discarded += self.sent - self.heard
        self.sent = self.heard
