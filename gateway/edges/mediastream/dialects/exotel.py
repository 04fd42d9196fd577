"""Exotel Voicebot applet (bidirectional AgentStream).

Inbound: `connected`, `start` (stream_sid, start.call_sid, from, to, custom_parameters,
media_format {encoding, sample_rate, bit_rate}), `media` (base64 16-bit little-endian PCM,
~100 ms chunks), `dtmf`, `mark`, `stop`. Outbound: `media` {stream_sid, media.payload}, in
chunks of whole 320-byte units of at least 100 ms; `mark` {stream_sid, mark.name}; `clear`.
"""

from __future__ import annotations

from typing import Any

from gateway.edges.mediastream.dialects.base import WireFormat, str_dict, text
from gateway.edges.mediastream.dialects.common import JsonEventDialect, sample_rate


class Exotel(JsonEventDialect):
    name = "exotel"
    frames_per_message = 5  # 100 ms: Exotel's minimum outbound chunk
    stream_id_key = "stream_sid"
    call_id_key = "call_sid"
    inbound_tracks = None

    def _parameters(self, data: dict[str, Any], start: dict[str, Any]) -> dict[str, str]:
        return str_dict(start.get("custom_parameters"))

    def _wire(self, start: dict[str, Any]) -> WireFormat:
        """Always 16-bit PCM; only the rate is read."""
        fmt = start.get("media_format")
        rate_text = text(fmt, "sample_rate", default="8000") if isinstance(fmt, dict) else "8000"
        return WireFormat("l16", sample_rate(rate_text))
