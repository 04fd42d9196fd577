"""Plivo audio streams (`<Stream bidirectional="true">`).

Inbound: `start` (start.streamId, start.callId, start.mediaFormat {encoding audio/x-mulaw or
audio/x-l16, sampleRate}, extra_headers), `media` (base64), `dtmf`, `playedStream` (our
checkpoint was played), `clearedAudio`, `stop`. Outbound: `playAudio` {media.contentType,
sampleRate, payload}, `checkpoint` {streamId, name}, `clearAudio` {streamId}.
"""

from __future__ import annotations

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
    str_dict,
    text,
)
from gateway.edges.mediastream.dialects.twilio import wire_format

ENCODINGS = {"audio/x-mulaw": "mulaw", "audio/x-l16": "l16"}
CONTENT_TYPES = {"mulaw": "audio/x-mulaw", "l16": "audio/x-l16"}


def _extra_headers(value: object) -> dict[str, str]:
    """Plivo's `extra_headers`: a JSON object or a `k=v,k=v` / `k=v;k=v` string."""
    if isinstance(value, dict):
        return str_dict(value)
    if not isinstance(value, str):
        return {}
    out: dict[str, str] = {}
    for part in value.replace(";", ",").split(","):
        key, sep, val = part.partition("=")
        if sep:
            out[key.strip()] = val.strip()
    return out


class Plivo(Dialect):
    name = "plivo"

    def parse(self, message: Outbound) -> list[Inbound]:
        data = load_json(message)
        event = data.get("event")
        if event == "connected":
            return [Connected()]
        if event == "start":
            start = obj(data, "start")
            stream_id = text(start, "streamId") or text(data, "streamId")
            if not stream_id:
                raise ProtocolError("start: no streamId")
            params = _extra_headers(data.get("extra_headers", start.get("extra_headers")))
            return [
                self.started(
                    Started(
                        call_id=text(start, "callId") or stream_id,
                        stream_id=stream_id,
                        wire=wire_format(obj(start, "mediaFormat"), ENCODINGS),
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
        if event in ("playedStream", "played"):
            return [MarkEcho(text(data, "name"))]
        if event == "clearedAudio":
            return [Ignored("clearedAudio acknowledgement")]
        if event == "dtmf":
            return [DtmfDigit(text(obj(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stopped("caller_hangup")]
        return [Ignored(f"unknown event {event!r}")]

    def media(self, payload: bytes) -> list[Outbound]:
        media = {
            "contentType": CONTENT_TYPES.get(self.wire.encoding, "audio/x-mulaw"),
            "sampleRate": self.wire.rate,
            "payload": b64s(payload),
        }
        return [dumps({"event": "playAudio", "media": media})]

    def mark(self, name: str) -> Outbound:
        return dumps({"event": "checkpoint", "streamId": self.stream_id, "name": name})

    def clear(self) -> Outbound:
        return dumps({"event": "clearAudio", "streamId": self.stream_id})
