"""Telnyx media streaming (bidirectional RTP over WebSocket).

Inbound: `connected`, `start` (stream_id, start.call_control_id, start.media_format
{encoding PCMU|PCMA, sample_rate}), `media` (base64), `dtmf`, `mark`, `stop`.
Outbound: `media` {media.payload}, `mark` {mark.name}, `clear`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from gateway.edges.mediastream.dialects.base import Ignored, Inbound, text
from gateway.edges.mediastream.dialects.common import JsonEventDialect

ENCODINGS = {"PCMU": "mulaw", "PCMA": "alaw", "L16": "l16"}


def _client_state(value: str) -> dict[str, str]:
    """Telnyx passes `client_state` base64-encoded; ours is `key=value&...` (agent, token)."""
    if not value:
        return {}
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return {}
    out: dict[str, str] = {}
    for part in decoded.split("&"):
        key, sep, val = part.partition("=")
        if sep:
            out[key] = val
    return out


class Telnyx(JsonEventDialect):
    name = "telnyx"
    stream_id_key = "stream_id"
    stream_id_in = ("message",)
    call_id_key = "call_control_id"
    media_format_key = "media_format"
    encodings = ENCODINGS
    sends_stream_id = False

    def _parameters(self, data: dict[str, Any], start: dict[str, Any]) -> dict[str, str]:
        return _client_state(text(start, "client_state"))

    def _other_event(self, event: object, data: dict[str, Any]) -> list[Inbound] | None:
        if event == "error":
            return [Ignored(f"carrier error: {data.get('payload')!r}")]
        return None
