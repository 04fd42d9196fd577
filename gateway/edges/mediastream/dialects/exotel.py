"""Exotel Voicebot applet (bidirectional AgentStream).

Inbound: `connected`, `start` (stream_sid, start.call_sid, from, to, custom_parameters,
media_format {encoding, sample_rate, bit_rate}), `media` (base64 16-bit little-endian PCM,
~100 ms chunks), `dtmf`, `mark`, `stop`. Outbound: `media` {stream_sid, media.payload}, in
chunks of whole 320-byte units of at least 100 ms; `mark` {stream_sid, mark.name}; `clear`.
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
    WireFormat,
    b64,
    b64s,
    dumps,
    load_json,
    obj,
    str_dict,
    text,
)


class Exotel(Dialect):
    name = "exotel"
    frames_per_message = 5  # 100 ms: Exotel's minimum outbound chunk

    def parse(self, message: Outbound) -> list[Inbound]:
        data = load_json(message)
        event = data.get("event")
        if event == "connected":
            return [Connected()]
        if event == "start":
            start = obj(data, "start")
            stream_id = text(data, "stream_sid") or text(start, "stream_sid")
            if not stream_id:
                raise ProtocolError("start: no stream_sid")
            fmt = start.get("media_format")
            rate_text = text(fmt, "sample_rate", default="8000") if isinstance(fmt, dict) else "8000"
            try:
                rate = int(rate_text)
            except ValueError:
                raise ProtocolError(f"sample rate {rate_text!r} is not a number") from None
            if rate not in (8000, 16000):
                raise ProtocolError(f"unsupported sample rate {rate}")
            return [
                self.started(
                    Started(
                        call_id=text(start, "call_sid") or stream_id,
                        stream_id=stream_id,
                        wire=WireFormat("l16", rate),
                        caller=text(start, "from"),
                        callee=text(start, "to"),
                        parameters=str_dict(start.get("custom_parameters")),
                    )
                )
            ]
        if event == "media":
            return [Media(b64(obj(data, "media").get("payload")))]
        if event == "mark":
            return [MarkEcho(text(obj(data, "mark"), "name"))]
        if event == "dtmf":
            return [DtmfDigit(text(obj(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stopped("caller_hangup")]
        return [Ignored(f"unknown event {event!r}")]

    def media(self, payload: bytes) -> list[Outbound]:
        return [dumps({"event": "media", "stream_sid": self.stream_id, "media": {"payload": b64s(payload)}})]

    def mark(self, name: str) -> Outbound:
        return dumps({"event": "mark", "stream_sid": self.stream_id, "mark": {"name": name}})

    def clear(self) -> Outbound:
        return dumps({"event": "clear", "stream_sid": self.stream_id})
