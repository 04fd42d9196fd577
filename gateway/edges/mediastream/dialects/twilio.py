"""Twilio Media Streams (bidirectional, `<Connect><Stream>`).

Inbound: `connected`, `start` (streamSid, callSid, mediaFormat audio/x-mulaw 8000, customParameters),
`media` (base64 μ-law, 20 ms), `dtmf`, `mark` (echo of ours once played, or flushed by `clear`),
`stop`. Outbound: `media` {streamSid, media.payload}, `mark` {streamSid, mark.name}, `clear`.
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

ENCODINGS = {"audio/x-mulaw": "mulaw", "audio/x-alaw": "alaw"}


def wire_format(fmt: dict[str, object], encodings: dict[str, str] = ENCODINGS) -> WireFormat:
    encoding = str(fmt.get("encoding", "audio/x-mulaw"))
    law = encodings.get(encoding)
    if law is None:
        raise ProtocolError(f"unsupported media encoding {encoding!r}")
    try:
        rate = int(str(fmt.get("sampleRate", fmt.get("sample_rate", 8000))))
    except ValueError:
        raise ProtocolError(f"sample rate {fmt.get('sampleRate')!r} is not a number") from None
    if rate not in (8000, 16000):
        raise ProtocolError(f"unsupported sample rate {rate}")
    return WireFormat(law, rate)  # type: ignore[arg-type]


class Twilio(Dialect):
    name = "twilio"

    def parse(self, message: Outbound) -> list[Inbound]:
        data = load_json(message)
        event = data.get("event")
        if event == "connected":
            return [Connected()]
        if event == "start":
            start = obj(data, "start")
            stream_id = text(data, "streamSid") or text(start, "streamSid")
            if not stream_id:
                raise ProtocolError("start: no streamSid")
            params = str_dict(start.get("customParameters"))
            return [
                self.started(
                    Started(
                        call_id=text(start, "callSid") or stream_id,
                        stream_id=stream_id,
                        wire=wire_format(obj(start, "mediaFormat")),
                        caller=params.get("from", params.get("From", "")),
                        callee=params.get("to", params.get("To", "")),
                        parameters=params,
                    )
                )
            ]
        if event == "media":
            media = obj(data, "media")
            track = media.get("track", "inbound")
            if track not in ("inbound", "inbound_track"):
                return [Ignored(f"media of track {track!r}")]
            return [Media(b64(media.get("payload")))]
        if event == "mark":
            return [MarkEcho(text(obj(data, "mark"), "name"))]
        if event == "dtmf":
            return [DtmfDigit(text(obj(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stopped("caller_hangup")]
        return [Ignored(f"unknown event {event!r}")]

    def media(self, payload: bytes) -> list[Outbound]:
        return [dumps({"event": "media", "streamSid": self.stream_id, "media": {"payload": b64s(payload)}})]

    def mark(self, name: str) -> Outbound:
        return dumps({"event": "mark", "streamSid": self.stream_id, "mark": {"name": name}})

    def clear(self) -> Outbound:
        return dumps({"event": "clear", "streamSid": self.stream_id})
