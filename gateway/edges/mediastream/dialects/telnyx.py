"""Telnyx media streaming (bidirectional RTP over WebSocket).

Inbound: `connected`, `start` (stream_id, start.call_control_id, start.media_format
{encoding PCMU|PCMA, sample_rate}), `media` (base64), `dtmf`, `mark`, `stop`.
Outbound: `media` {media.payload}, `mark` {mark.name}, `clear`.
"""

from __future__ import annotations

import base64
import binascii

from gateway.edges.mediastream.dialects.base import (
    Connected,
    Dialect,
    DtmfDigit,
    Ignored,
    Inbound,
    MarkEcho,
    Media,
    Outbound,
    ProtocolError,
    Started,
    Stopped,
    b64,
    b64s,
    dumps,
    load_json,
    obj,
    text,
)
from gateway.edges.mediastream.dialects.twilio import wire_format

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


class Telnyx(Dialect):
    name = "telnyx"

    def parse(self, message: Outbound) -> list[Inbound]:
        data = load_json(message)
        event = data.get("event")
        if event == "connected":
            return [Connected()]
        if event == "start":
            start = obj(data, "start")
            stream_id = text(data, "stream_id")
            if not stream_id:
                raise ProtocolError("start: no stream_id")
            params = _client_state(text(start, "client_state"))
            return [
                self.started(
                    Started(
                        call_id=text(start, "call_control_id") or stream_id,
                        stream_id=stream_id,
                        wire=wire_format(obj(start, "media_format"), ENCODINGS),
                        caller=text(start, "from"),
                        callee=text(start, "to"),
                        parameters=params,
                    )
                )
            ]
        if event == "media":
            media = obj(data, "media")
            if media.get("track", "inbound") != "inbound":
                return [Ignored(f"media of track {media.get('track')!r}")]
            return [Media(b64(media.get("payload")))]
        if event == "mark":
            return [MarkEcho(text(obj(data, "mark"), "name"))]
        if event == "dtmf":
            return [DtmfDigit(text(obj(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stopped("caller_hangup")]
        if event == "error":
            return [Ignored(f"carrier error: {data.get('payload')!r}")]
        return [Ignored(f"unknown event {event!r}")]

    def media(self, payload: bytes) -> list[Outbound]:
        return [dumps({"event": "media", "media": {"payload": b64s(payload)}})]

    def mark(self, name: str) -> Outbound:
        return dumps({"event": "mark", "mark": {"name": name}})

    def clear(self) -> Outbound:
        return dumps({"event": "clear"})
