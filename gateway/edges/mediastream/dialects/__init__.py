"""Carrier dialects by name, and detection of the dialect from a stream's first messages."""

from __future__ import annotations

import json

from gateway.edges.mediastream.dialects.base import Dialect, Outbound, ProtocolError
from gateway.edges.mediastream.dialects.exotel import Exotel
from gateway.edges.mediastream.dialects.plivo import Plivo
from gateway.edges.mediastream.dialects.telnyx import Telnyx
from gateway.edges.mediastream.dialects.twilio import Twilio
from gateway.edges.mediastream.dialects.vonage import Vonage

DIALECTS: dict[str, type[Dialect]] = {
    "twilio": Twilio,
    "telnyx": Telnyx,
    "plivo": Plivo,
    "exotel": Exotel,
    "vonage": Vonage,
}


def detect(message: Outbound) -> type[Dialect] | None:
    """The dialect a first message belongs to; None: not decidable yet (e.g. a bare `connected`).

    Decided by the `start` message's id fields (Twilio `streamSid`, Telnyx `stream_id`, Exotel
    `stream_sid`, Plivo `start.streamId`), Vonage by its `websocket:connected` event, and Twilio
    also by its `connected` event's `protocol` field. Raises ProtocolError for what no carrier sends.
    """
    if isinstance(message, bytes):
        raise ProtocolError("binary audio before any start message")
    try:
        data = json.loads(message)
    except ValueError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("first message is not a JSON object")
    event = data.get("event")
    if event == "websocket:connected":
        return Vonage
    if event == "connected":
        return Twilio if "protocol" in data else None
    if event != "start":
        raise ProtocolError(f"{event!r} before start")
    start = data.get("start") if isinstance(data.get("start"), dict) else {}
    assert isinstance(start, dict)
    if "streamSid" in data or "streamSid" in start or "callSid" in start:
        return Twilio
    if "stream_id" in data or "call_control_id" in start:
        return Telnyx
    if "stream_sid" in data or "stream_sid" in start or "call_sid" in start:
        return Exotel
    if "streamId" in start or "streamId" in data or "callId" in start:
        return Plivo
    raise ProtocolError("start message of no known carrier")


__all__ = ["DIALECTS", "Dialect", "ProtocolError", "detect"]
