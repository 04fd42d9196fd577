"""Hypothesis strategies for the SIP edge's wire formats: SIP requests (UDP and TCP), SDP offers
and RTP/RTCP packets. Each strategy starts from a valid message and mutates it, so cases reach
past the first parser check, or is made of random bytes outright."""

from __future__ import annotations

import secrets
import struct
from typing import Any

from hypothesis import strategies as st

METHODS = ("INVITE", "OPTIONS", "BYE", "CANCEL", "ACK", "REGISTER", "INFO", "UPDATE", "PRACK", "NOTIFY")
# Values that trip parsers: empty, huge numbers, separators, non-ASCII, NUL, folding.
NASTY = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "4294967296",
        "99999999999999999999",
        ";;;",
        "<>",
        "<sip:>",
        "sip:@:",
        ":",
        "\t",
        "\r\n ",
        "\x00",
        "é" * 10,
        "%00",
        "a" * 2000,
        "SIP/2.0/UDP",
        "z9hG4bK",
        "1 INVITE",
        "INVITE",
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=60), st.binary(max_size=60).map(lambda b: b.decode("latin-1")))


def request(method: str, port: int, local_port: int, user: str, body: str = "") -> list[str]:
    """A well-formed request as lines (request line, headers, blank, body)."""
    call_id = f"{secrets.token_hex(8)}@fuzz"
    lines = [
        f"{method} sip:{user}@127.0.0.1:{port} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{local_port};branch=z9hG4bK{secrets.token_hex(6)};rport",
        "Max-Forwards: 70",
        f"From: <sip:fuzz@127.0.0.1:{local_port}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{user}@127.0.0.1:{port}>",
        f"Call-ID: {call_id}",
        f"CSeq: 1 {method}",
        f"Contact: <sip:fuzz@127.0.0.1:{local_port}>",
    ]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return [*lines, "", body]


@st.composite
def mutated_request(draw: st.DrawFn, port: int, local_port: int, max_bytes: int = 65000) -> bytes:
    """A request with 0-4 mutations: headers dropped, doubled or given nasty values, the request
    line mangled, Content-Length lying, bytes inserted or cut, line ends changed, or oversized."""
    method = draw(st.sampled_from(METHODS))
    user = draw(st.sampled_from(["fuzz", "nobody", "", "a" * 300, "%0d%0a"]))
    body = draw(st.sampled_from(["", SDP_TEMPLATE.format(port=40000)]))
    lines = request(method, port, local_port, user, body)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["drop", "double", "value", "line", "length", "junk_header", "big_header"]))
        heads = range(1, len(lines) - 2)  # between the request line and the blank line
        if not heads and op in ("drop", "double", "value"):
            continue
        if op == "drop" and len(heads) > 1:
            del lines[draw(st.sampled_from(heads))]
        elif op == "double":
            i = draw(st.sampled_from(heads))
            lines.insert(i, lines[i])
        elif op == "value":
            i = draw(st.sampled_from(heads))
            name = lines[i].split(":", 1)[0]
            lines[i] = f"{name}: {draw(TEXT)}"
        elif op == "line":
            lines[0] = draw(
                st.sampled_from(
                    [
                        f"{draw(TEXT)} sip:fuzz@127.0.0.1 SIP/2.0",
                        f"{method} {draw(TEXT)} SIP/2.0",
                        f"{method} sip:fuzz@127.0.0.1 SIP/{draw(TEXT)}",
                        draw(TEXT),
                        "SIP/2.0 200 OK",
                    ]
                )
            )
        elif op == "length":
            value = f"Content-Length: {draw(st.sampled_from(['-5', '100000', '4294967296', 'x', '']))}"
            found = [j for j in heads if lines[j].startswith("Content-Length")]
            if found:
                lines[found[0]] = value
            else:
                lines.insert(1, value)
        elif op == "junk_header":
            lines.insert(1, f"{draw(TEXT).replace(':', '')}: {draw(TEXT)}")
        elif op == "big_header":
            lines.insert(1, "X-Fuzz: " + "A" * draw(st.integers(1000, max_bytes - 2000)))
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    tail = draw(st.sampled_from(["none", "lf", "cut", "insert"]))
    if tail == "lf":
        data = data.replace(b"\r\n", b"\n")
    elif tail == "cut" and len(data) > 1:
        data = data[: draw(st.integers(1, len(data) - 1))]
    elif tail == "insert":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=40)) + data[at:]
    return data[:max_bytes]


def sip_datagrams(port: int, local_port: int) -> st.SearchStrategy[bytes]:
    """What may arrive on the SIP UDP port: random bytes, or a mutated request."""
    return st.one_of(
        st.binary(min_size=0, max_size=1500),
        mutated_request(port, local_port),
        mutated_request(port, local_port),
        mutated_request(port, local_port),
    )


SDP_TEMPLATE = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
)
SDP_LINES = [
    "v=0",
    "v=1",
    "o=- 1 1 IN IP4 127.0.0.1",
    "o=",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "c=IN IP6 ::1",
    "c=IN IP4 999.1.1.1",
    "c=IN IP4 0.0.0.0",
    "c=XX",
    "t=0 0",
    "m=audio 40000 RTP/AVP 0",
    "m=audio 0 RTP/AVP 0",
    "m=audio 70000 RTP/AVP 0",
    "m=audio 40000 RTP/SAVP 0",
    "m=audio 40000 UDP/TLS/RTP/SAVPF 111",
    "m=audio 40000 RTP/AVP",
    "m=audio 40000 RTP/AVP 0 8 9 101 127 128 255 -1",
    "m=video 40002 RTP/AVP 96",
    "m=application 9 DTLS/SCTP 5000",
    "m=audio 40000/2 RTP/AVP 0",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:9 G722/8000",
    "a=rtpmap:111 opus/48000/2",
    "a=rtpmap:0 PCMU/0",
    "a=rtpmap:0",
    "a=rtpmap:999999999999 X/1",
    "a=fmtp:101 0-15",
    "a=fmtp:101 99999-",
    "a=ptime:20",
    "a=ptime:0",
    "a=ptime:-20",
    "a=maxptime:100000",
    "a=sendrecv",
    "a=sendonly",
    "a=inactive",
    "a=recvonly",
    "a=rtcp:40001",
    "a=rtcp:0 IN IP6 ::1",
    "a=rtcp-mux",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAAA",
    "a=fingerprint:sha-256 00",
    "a=setup:actpass",
    "a=ice-ufrag:x",
    "a=candidate:1 1 UDP 1 127.0.0.1 40000 typ host",
    "b=AS:0",
    "k=clear:x",
]


@st.composite
def sdp_offers(draw: st.DrawFn) -> str:
    """An SDP offer: the valid one with lines dropped, repeated, replaced or added, or shuffled
    lines of the vocabulary above, or random text."""
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "vocabulary", "random"]))
    if kind == "random":
        return draw(st.text(max_size=400))
    if kind == "vocabulary":
        lines = draw(st.lists(st.sampled_from(SDP_LINES), min_size=1, max_size=25))
    else:
        lines = SDP_TEMPLATE.format(port=draw(st.sampled_from([40000, 0, 1, 65535]))).split("\r\n")[:-1]
        for _ in range(draw(st.integers(1, 5))):
            op = draw(st.sampled_from(["drop", "repeat", "replace", "add", "value", "many_media"]))
            i = draw(st.integers(0, len(lines) - 1)) if lines else 0
            if op == "drop" and lines:
                del lines[i]
            elif op == "repeat" and lines:
                lines.insert(i, lines[i])
            elif op == "replace" and lines:
                lines[i] = draw(st.sampled_from(SDP_LINES))
            elif op == "add":
                lines.insert(i, draw(st.sampled_from(SDP_LINES)))
            elif op == "value" and lines:
                lines[i] = lines[i][:2] + draw(TEXT)
            elif op == "many_media":
                lines += ["m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"] * draw(st.integers(2, 40))
    end = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    return end.join(lines) + end


@st.composite
def rtp_packets(draw: st.DrawFn) -> bytes:
    """RTP and RTCP packets with lying headers: versions, CSRC counts, extension and padding
    lengths that do not fit, RTCP length fields, odd payload sizes; or random bytes."""
    kind = draw(st.sampled_from(["rtp", "rtp", "rtcp", "random"]))
    if kind == "random":
        return draw(st.binary(min_size=0, max_size=1500))
    version = draw(st.sampled_from([2, 2, 2, 0, 1, 3]))
    padding = draw(st.booleans())
    if kind == "rtcp":
        count = draw(st.integers(0, 31))
        pt = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206, 207, 192, 255]))
        body = draw(st.binary(max_size=300))
        length = draw(st.one_of(st.just(len(body) // 4), st.integers(0, 0xFFFF)))
        first = (version << 6) | (padding << 5) | count
        packet = struct.pack("!BBH", first, pt, length) + body
        if draw(st.booleans()):  # a compound packet
            packet += struct.pack("!BBHI", 0x81, 203, 1, draw(st.integers(0, 0xFFFFFFFF)))
        return packet
    csrc = draw(st.integers(0, 15))
    extension = draw(st.booleans())
    marker = draw(st.booleans())
    pt = draw(st.sampled_from([0, 8, 9, 101, 13, 18, 96, 127, 72, 73, 76]))
    first = (version << 6) | (padding << 5) | (extension << 4) | csrc
    header = struct.pack(
        "!BBHII",
        first,
        (marker << 7) | pt,
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
        draw(st.integers(0, 0xFFFFFFFF)),
    )
    header += draw(st.binary(max_size=4 * csrc))  # maybe fewer CSRCs than the count says
    if extension:
        header += struct.pack("!HH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))
    payload = draw(st.sampled_from([b"", b"\xff" * 160, b"\x00" * 161]) | st.binary(max_size=1400))
    if padding:
        payload += bytes([draw(st.integers(0, 255))])
    return header + payload


def _field(message: str, name: str) -> str:
    for line in message.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def exchange(raw: Any, data: bytes, port: int, timeout: float) -> str | None:
    """Send a request and return its own final reply: the first final one with the request's
    Call-ID and CSeq (late replies and retransmissions of earlier cases are skipped); None if
    none came within `timeout`. A request without a readable Call-ID takes any final reply."""
    import time

    text = data.decode("utf-8", "replace")
    call_id, cseq = _field(text, "call-id"), _field(text, "cseq")
    raw.sock.sendto(data, ("127.0.0.1", port))
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        raw.sock.settimeout(left)
        try:
            reply = raw.sock.recv(65535).decode(errors="replace")
        except OSError:
            return None
        code = reply.split(" ", 2)[1] if reply.startswith("SIP/2.0 ") else ""
        if not (code.isdigit() and int(code) >= 200):
            continue
        if call_id and (_field(reply, "call-id") != call_id or _field(reply, "cseq") != cseq):
            continue
        if not code.startswith(("2", "3")):
            raw.ack(reply, port)
        return reply
    return None


def end_call(raw: Any, reply: str, port: int, timeout: float = 3.0) -> str | None:
    """ACK a 2xx that came through the front and BYE the call, along the record-routed path
    (`raw` is a sip_fixtures.RawSip); the BYE's final reply."""
    heads: list[tuple[str, str]] = []
    for line in reply.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
        name, _, value = line.partition(":")
        heads.append((name.strip().lower(), value.strip()))
    first = {name: value for name, value in reversed(heads)}
    contact = first.get("contact", first.get("m", ""))
    uri = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else contact
    routes = [r.strip() for name, v in heads if name in ("record-route",) for r in v.split(",")]
    route = "".join(f"Route: {r}\r\n" for r in reversed(routes))
    common = "".join(f"{n}: {first[n.lower()]}\r\n" for n in ("From", "To", "Call-ID") if n.lower() in first)
    for method, cseq in (("ACK", 1), ("BYE", 2)):
        via = f"SIP/2.0/UDP 127.0.0.1:{raw.port};branch=z9hG4bK{secrets.token_hex(6)};rport"
        msg = (
            f"{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n{route}{common}"
            f"CSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
        )
        if method == "ACK":
            raw.sock.sendto(msg.encode(), ("127.0.0.1", port))
        else:
            return exchange(raw, msg.encode(), port, timeout)
    return None
