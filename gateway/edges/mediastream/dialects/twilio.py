"""Twilio Media Streams (bidirectional, `<Connect><Stream>`).

Inbound: `connected`, `start` (streamSid, callSid, mediaFormat audio/x-mulaw 8000, customParameters),
`media` (base64 μ-law, 20 ms), `dtmf`, `mark` (echo of ours once played, or flushed by `clear`),
`stop`. Outbound: `media` {streamSid, media.payload}, `mark` {streamSid, mark.name}, `clear`.
"""

from __future__ import annotations

from typing import Any

from gateway.edges.mediastream.dialects.base import str_dict
from gateway.edges.mediastream.dialects.common import JsonEventDialect

ENCODINGS = {"audio/x-mulaw": "mulaw", "audio/x-alaw": "alaw"}


class Twilio(JsonEventDialect):
    name = "twilio"
    stream_id_key = "streamSid"
    call_id_key = "callSid"
    media_format_key = "mediaFormat"
    encodings = ENCODINGS
    inbound_tracks = ("inbound", "inbound_track")

    def _parameters(self, data: dict[str, Any], start: dict[str, Any]) -> dict[str, str]:
        return str_dict(start.get("customParameters"))

    def _parties(self, start: dict[str, Any], params: dict[str, str]) -> tuple[str, str]:
        return params.get("from", params.get("From", "")), params.get("to", params.get("To", ""))
