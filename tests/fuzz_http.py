"""Hypothesis strategies for the HTTP edges' wire formats: each carrier dialect's media-stream
messages, Twilio webhook form bodies and WebRTC offer bodies.

Media-stream cases start from the carrier's own documented messages (carrier_simulator.py) and
mutate them: a key removed, a value swapped for any JSON value, garbage appended; the
opening too, so both the "before start" (close) and "after start" (skip) rules are reached."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
from carrier_simulator import CarrierSimulator
from hypothesis import strategies as st

DIALECTS = ("twilio", "telnyx", "plivo", "exotel", "vonage")

JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["", "start", "media", "stop", "mark", "dtmf", "8000", "16000", "audio/x-mulaw", "PCMU"]),
)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
GARBAGE = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=700),
    st.sampled_from(["{", "[]", "null", "1e999", '"x"', '{"event": null}', "{}", "\ud800"]).filter(
        lambda s: s != "\ud800"
    ),
    JSON_VALUE.map(json.dumps),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, message: str) -> str:
    """`message` (a JSON object) with 1-3 of: a key removed, a value replaced by any JSON value."""
    data = json.loads(message)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUE)
    return json.dumps(data)


def valid_messages(dialect: str) -> tuple[list[str | bytes], list[str | bytes], list[str | bytes]]:
    """The dialect's opening, two media messages and a mark echo, and its closing."""
    sim = CarrierSimulator("ws://fuzz", dialect, np.zeros(160, np.int16))
    payload = b"\xff" * 160 if sim.wire.encoding != "l16" else b"\x00" * (sim.wire.rate // 25)
    middle: list[str | bytes] = [sim.media(payload, 1, 0), sim.media(payload, 2, 20), sim.mark_echo("m1")]
    return list(sim.opening()), middle, list(sim.closing())


@st.composite
def stream_messages(draw: st.DrawFn, dialect: str) -> list[str | bytes]:
    """One stream's messages: the opening (maybe mutated), then mutated or garbage messages
    among valid ones, then (maybe) the closing."""
    opening, middle, closing = valid_messages(dialect)
    messages: list[str | bytes] = []
    for message in opening:
        if isinstance(message, str) and draw(st.integers(0, 4)) == 0:
            messages.append(draw(mutated_json(message)))
        else:
            messages.append(message)
    if draw(st.integers(0, 5)) == 0:  # garbage first
        messages.insert(0, draw(GARBAGE))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["valid", "mutated", "garbage"]))
        message = draw(st.sampled_from(middle))
        if kind == "mutated" and isinstance(message, str):
            message = draw(mutated_json(message))
        elif kind == "garbage" or (kind == "mutated" and isinstance(message, bytes)):
            message = draw(GARBAGE)
        messages.append(message)
    if draw(st.booleans()):
        messages += closing
    return messages


def any_message(dialect: str) -> st.SearchStrategy[str | bytes]:
    """One message for a dialect's parser: a mutated valid one, or garbage."""
    opening, middle, closing = valid_messages(dialect)
    texts = [m for m in opening + middle + closing if isinstance(m, str)]
    return st.one_of(st.sampled_from(texts).flatmap(mutated_json), GARBAGE)


# -- Twilio webhook form bodies ----------------------------------------------------------------

DISPOSITION = "Content-Disposition: form-data"
TWILIO_KEYS = ["CallSid", "From", "To", "AccountSid", "Caller", "Called", "CallStatus", "Direction"]


@st.composite
def webhook_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, Content-Type) of a POST to /twilio/voice: a urlencoded form of Twilio's keys with
    nasty values, raw bytes, broken multipart, a lying or missing content type."""
    kind = draw(st.sampled_from(["form", "form", "bytes", "multipart", "json"]))
    if kind == "form":
        from urllib.parse import urlencode

        keys = st.sampled_from(TWILIO_KEYS) | st.text(max_size=20)
        form = draw(st.lists(st.tuples(keys, st.text(max_size=200)), max_size=8))
        body = urlencode(form).encode()
        if draw(st.booleans()):
            body = body.replace(b"%", draw(st.sampled_from([b"%", b"%Z", b"%%", b"%0"])))
        return body, "application/x-www-form-urlencoded"
    if kind == "multipart":
        boundary = draw(st.sampled_from(["b", "", "x" * 80, "--"]))
        body = draw(
            st.sampled_from(
                [
                    f'--{boundary}\r\n{DISPOSITION}; name="CallSid"\r\n\r\nCA1\r\n--{boundary}--\r\n',
                    f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n",
                    f"--{boundary}\r\n\r\n",
                    "garbage",
                    f'--{boundary}\r\n{DISPOSITION}; name="f"; filename="a"\r\n\r\nzz\r\n--{boundary}--\r\n',
                ]
            )
        ).encode()
        ctype = draw(st.sampled_from([f"multipart/form-data; boundary={boundary}", "multipart/form-data"]))
        return body, ctype
    if kind == "json":
        return json.dumps(draw(JSON_VALUE)).encode(), "application/json"
    ctype = draw(
        st.sampled_from(["application/x-www-form-urlencoded", "text/plain", "", "application/octet-stream"])
    )
    return draw(st.binary(max_size=3000)), ctype


# -- WebRTC offer bodies ------------------------------------------------------------------------


@st.composite
def offer_bodies(draw: st.DrawFn, valid_sdp: str) -> bytes:
    """A POST /webrtc/offer body: JSON of the wrong shape, the valid offer with SDP lines dropped,
    repeated or garbled, or not JSON at all."""
    kind = draw(st.sampled_from(["shape", "sdp", "sdp", "sdp", "raw"]))
    if kind == "raw":
        return draw(st.binary(max_size=2000))
    if kind == "shape":
        body = draw(
            st.sampled_from(
                [
                    {"type": "offer"},
                    {"sdp": valid_sdp},
                    {"sdp": valid_sdp, "type": "answer"},
                    {"sdp": None, "type": "offer"},
                    [valid_sdp],
                    {"sdp": valid_sdp, "type": "offer", "agent": "../../etc/passwd"},
                    {"sdp": valid_sdp, "type": "offer", "agent": {"x": 1}},
                ]
            )
        )
        body = copy.deepcopy(body)
        if isinstance(body, dict) and draw(st.booleans()):
            body[draw(st.sampled_from(["sdp", "type", "agent"]))] = draw(JSON_VALUE)
        return json.dumps(body).encode()
    lines = valid_sdp.split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "repeat", "garble", "insert"]))
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "garble":
            lines[i] = lines[i][:2] + draw(st.text(max_size=40))
        else:
            lines.insert(
                i,
                draw(
                    st.sampled_from(
                        [
                            "m=audio 9 UDP/TLS/RTP/SAVPF 0",
                            "a=fingerprint:sha-256 00",
                            "a=setup:holdconn",
                            "a=ice-ufrag:",
                            "a=candidate:x",
                            "a=rtpmap:111 opus/0/2",
                            "m=video 9 UDP/TLS/RTP/SAVPF 96",
                            "a=mid:",
                            "a=group:BUNDLE 7",
                            "a=ssrc:abc cname:x",
                            "c=IN IP6 ::1",
                        ]
                    )
                ),
            )
    return json.dumps({"sdp": "\r\n".join(lines), "type": "offer"}).encode()
