"""Vonage Voice API WebSockets (NCCO `connect` to a `websocket` endpoint).

Inbound: first a text `websocket:connected` {content-type "audio/l16;rate=16000", plus the NCCO's
custom headers}, then binary frames of 16-bit little-endian PCM (20 ms: 640 bytes at 16 kHz, 320
at 8 kHz); text events `websocket:notify` (our notify was reached in playback), `websocket:cleared`,
`websocket:dtmf`. Outbound: binary L16 frames of the same size, `{"action": "notify", "payload"}`,
`{"action": "clear"}`. Vonage has no `start` or `stop`: the connected event starts the call and
closing the socket ends it.
"""

from __future__ import annotations

import re

from gateway.edges.mediastream.dialects.base import (
    Dialect,
    DtmfDigit,
    Ignored,
    Inbound,
    MarkEcho,
    Media,
    Outbound,
    ProtocolError,
    Started,
    WireFormat,
    dumps,
    load_json,
    str_dict,
    text,
)

_RATE = re.compile(r"audio/l16\s*;\s*rate\s*=\s*(\d+)", re.IGNORECASE)


class Vonage(Dialect):
    name = "vonage"

    def __init__(self) -> None:
        super().__init__()
        self._started = False

    def parse(self, message: Outbound) -> list[Inbound]:
        if isinstance(message, bytes):
            if not self._started:
                raise ProtocolError("audio before websocket:connected")
            if len(message) % 2:
                raise ProtocolError(f"L16 frame of odd length {len(message)}")
            return [Media(message)]
        data = load_json(message)
        event = data.get("event")
        if event == "websocket:connected":
            if self._started:
                return [Ignored("duplicate websocket:connected")]
            content_type = text(data, "content-type", default="audio/l16;rate=16000")
            match = _RATE.fullmatch(content_type.strip())
            if match is None or int(match.group(1)) not in (8000, 16000):
                raise ProtocolError(f"unsupported content-type {content_type!r}")
            params = str_dict({k: v for k, v in data.items() if k not in ("event", "content-type")})
            call_id = params.get("uuid") or params.get("conversation_uuid") or params.get("call_id", "")
            self._started = True
            return [
                self.started(
                    Started(
                        call_id=call_id,
                        stream_id=call_id,
                        wire=WireFormat("l16", int(match.group(1))),
                        caller=params.get("from", ""),
                        callee=params.get("to", ""),
                        parameters=params,
                    )
                )
            ]
        if event == "websocket:notify":
            payload = data.get("payload")
            return [MarkEcho(text(payload, "mark") if isinstance(payload, dict) else "")]
        if event == "websocket:dtmf":
            dtmf = data.get("dtmf")
            return [DtmfDigit(text(dtmf, "digit") if isinstance(dtmf, dict) else text(data, "digit"))]
        if event == "websocket:cleared":
            return [Ignored("websocket:cleared acknowledgement")]
        return [Ignored(f"unknown event {event!r}")]

    def media(self, payload: bytes) -> list[Outbound]:
        return [payload]

    def mark(self, name: str) -> Outbound:
        return dumps({"action": "notify", "payload": {"mark": name}})

    def clear(self) -> Outbound:
        return dumps({"action": "clear"})
