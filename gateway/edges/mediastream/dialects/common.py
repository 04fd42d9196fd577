"""What the JSON-event carriers (Twilio, Telnyx, Plivo, Exotel) share.

Every message of theirs is a JSON object with an `event` name, and the events mean the same:
`connected`, `start` (a stream id, a call id, a media format, custom parameters), `media`
(base64 audio, maybe of another track), `mark` echoes, `dtmf` and `stop`. `JsonEventDialect`
parses that once; a carrier module names its fields and keeps only what is its own (extra
events, how it passes parameters, Plivo's outbound messages).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

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
    text,
)


def sample_rate(value: object) -> int:
    """`value` (a number or its text) as a supported sample rate: 8 or 16 kHz."""
    try:
        rate = int(str(value))
    except ValueError:
        raise ProtocolError(f"sample rate {value!r} is not a number") from None
    if rate not in (8000, 16000):
        raise ProtocolError(f"unsupported sample rate {rate}")
    return rate


def wire_format(fmt: dict[str, Any], encodings: Mapping[str, str]) -> WireFormat:
    """A `mediaFormat`/`media_format` object: `encoding` (a carrier name, looked up in
    `encodings`) and `sampleRate` or `sample_rate`."""
    encoding = str(fmt.get("encoding", "audio/x-mulaw"))
    law = encodings.get(encoding)
    if law is None:
        raise ProtocolError(f"unsupported media encoding {encoding!r}")
    rate = sample_rate(fmt.get("sampleRate", fmt.get("sample_rate", 8000)))
    return WireFormat(law, rate)  # type: ignore[arg-type]


class JsonEventDialect(Dialect):
    """A carrier whose messages are JSON objects with an `event` name.

    A subclass names its fields (`stream_id_key`, where that stream id is looked for, `call_id_key`,
    `media_format_key` and `encodings`) and says how it passes custom parameters (`_parameters`);
    it may read callers differently (`_parties`), the wire format differently (`_wire`) and add
    events of its own (`_other_event`). Outbound messages are `media`/`mark`/`clear`, carrying the
    stream id as `stream_id_key` unless `sends_stream_id` is off.
    """

    stream_id_key = ""
    # Where the stream id is looked for, in order: the message itself and/or its `start` object.
    stream_id_in: tuple[str, ...] = ("message", "start")
    call_id_key = ""
    media_format_key = ""
    encodings: ClassVar[Mapping[str, str]] = {}
    # The tracks whose media is the caller's; None: the carrier sends only the caller's.
    inbound_tracks: tuple[str, ...] | None = ("inbound",)
    # The event that echoes a mark ({"mark": {"name": ...}}); None: the carrier has its own.
    mark_event: str | None = "mark"
    sends_stream_id = True

    def parse(self, message: Outbound) -> list[Inbound]:
        data = load_json(message)
        event = data.get("event")
        if event == "connected":
            return [Connected()]
        if event == "start":
            return [self.started(self._start(data, obj(data, "start")))]
        if event == "media":
            return [self._media(obj(data, "media"))]
        if self.mark_event and event == self.mark_event:
            return [MarkEcho(text(obj(data, "mark"), "name"))]
        if event == "dtmf":
            return [DtmfDigit(text(obj(data, "dtmf"), "digit"))]
        if event == "stop":
            return [Stopped("caller_hangup")]
        return self._other_event(event, data) or [Ignored(f"unknown event {event!r}")]

    def _start(self, data: dict[str, Any], start: dict[str, Any]) -> Started:
        places = {"message": data, "start": start}
        stream_id = ""
        for place in self.stream_id_in:
            stream_id = stream_id or text(places[place], self.stream_id_key)
        if not stream_id:
            raise ProtocolError(f"start: no {self.stream_id_key}")
        params = self._parameters(data, start)
        caller, callee = self._parties(start, params)
        return Started(
            call_id=text(start, self.call_id_key) or stream_id,
            stream_id=stream_id,
            wire=self._wire(start),
            caller=caller,
            callee=callee,
            parameters=params,
        )

    @abstractmethod
    def _parameters(self, data: dict[str, Any], start: dict[str, Any]) -> dict[str, str]:
        """The custom parameters the call was set up with (agent, token, ...)."""

    def _parties(self, start: dict[str, Any], params: dict[str, str]) -> tuple[str, str]:
        """Caller and callee."""
        return text(start, "from"), text(start, "to")

    def _wire(self, start: dict[str, Any]) -> WireFormat:
        return wire_format(obj(start, self.media_format_key), self.encodings)

    def _media(self, media: dict[str, Any]) -> Inbound:
        if self.inbound_tracks is not None:
            track = media.get("track", "inbound")
            if track not in self.inbound_tracks:
                return Ignored(f"media of track {track!r}")
        return Media(b64(media.get("payload")))

    def _other_event(self, event: object, data: dict[str, Any]) -> list[Inbound] | None:
        """Events of this carrier only; None: an unknown event."""
        return None

    def _with_stream_id(self, message: dict[str, Any]) -> str:
        if self.sends_stream_id:
            message = {"event": message["event"], self.stream_id_key: self.stream_id, **message}
        return dumps(message)

    def media(self, payload: bytes) -> list[Outbound]:
        return [self._with_stream_id({"event": "media", "media": {"payload": b64s(payload)}})]

    def mark(self, name: str) -> Outbound:
        return self._with_stream_id({"event": "mark", "mark": {"name": name}})

    def clear(self) -> Outbound:
        return self._with_stream_id({"event": "clear"})
