"""Unit tests of the SIP edge's pure parts: buffers, wire format, routing, captures, planning."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from gateway.config.routing import route_agent
from gateway.edges.sip import wire
from gateway.edges.sip.buffers import DropOldestQueue, PlayoutBuffer
from gateway.edges.sip.bytevec import fast_read_works, read_fast, read_slow
from gateway.edges.sip.endpoint import codec_priorities
from gateway.edges.sip.kamailio import FrontOptions, dispatcher_list, render_config
from gateway.edges.sip.pcap import wav_to_pcap
from gateway.edges.sip.routing import request_uri, uri_user
from gateway.edges.sip.service import worker_caps


def test_drop_oldest_queue_counts_drops() -> None:
    q = DropOldestQueue(3)
    for i in range(5):
        q.put(bytes([i]))
    assert q.dropped == 2 and q.total == 5
    assert q.drain() == [b"\x02", b"\x03", b"\x04"]
    assert q.drain() == []


def test_playout_frames_pause_resume_clear() -> None:
    buf = PlayoutBuffer(frame_bytes=4, max_bytes=100)
    buf.write(b"abcdef")
    buf.write(b"gh")
    assert buf.next_frame() == (b"abcd", True)
    buf.pause()
    assert buf.next_frame() == (b"\0\0\0\0", False)
    buf.resume()
    assert buf.next_frame() == (b"efgh", True)
    buf.write(b"ijklmnop")
    assert buf.clear() == 8
    # Nothing stale after a clear: silence, then only what is written afterwards.
    assert buf.next_frame() == (b"\0\0\0\0", False)
    buf.write(b"xy")
    assert buf.next_frame() == (b"xy\0\0", True)
    assert buf.played_bytes == 10


def test_playout_bounded() -> None:
    buf = PlayoutBuffer(frame_bytes=2, max_bytes=4)
    buf.write(b"123456")
    assert buf.queued_bytes == 4 and buf.dropped_bytes == 2


def test_wire_roundtrip() -> None:
    msg = wire.pack_json(wire.Kind.CALL_START, 7, {"agent": "dental"})
    n, kind, slot = wire.unpack_header(msg[: wire.HEADER.size])
    assert (kind, slot) == (wire.Kind.CALL_START, 7)
    assert wire.load_json(msg[wire.HEADER.size :]) == {"agent": "dental"}
    assert n == len(msg) - wire.HEADER.size
    frame = wire.pack_frame(3, 42, b"\x01\x02")
    _, kind, slot = wire.unpack_header(frame[: wire.HEADER.size])
    assert kind == wire.Kind.FRAME and wire.unpack_frame(frame[wire.HEADER.size :]) == (42, b"\x01\x02")
    with pytest.raises(ValueError):
        wire.unpack_header(struct.pack("!IBI", 1, 1, 0))


def test_fast_bytevector_read_matches_slow_path() -> None:
    import pjsua2 as pj

    assert fast_read_works()
    vec = pj.ByteVector(bytes(range(200)))
    assert read_fast(vec) == read_slow(vec) == bytes(range(200))


def test_routing() -> None:
    assert (
        request_uri("INVITE sip:dental@127.0.0.1:5060 SIP/2.0\r\nVia: x\r\n") == "sip:dental@127.0.0.1:5060"
    )
    assert uri_user("sip:dental@127.0.0.1:5060;transport=tcp") == "dental"
    assert uri_user("tel:+15551234;phone-context=x") == "+15551234"
    assert uri_user("sip:127.0.0.1") == ""
    routes = [("dental", "config/agents/dental.yaml"), ("+1555*", "sales.yaml")]
    assert route_agent(routes, None, callee="Dental") == "config/agents/dental.yaml"
    assert route_agent(routes, None, callee="+15550000") == "sales.yaml"
    assert route_agent(routes, None, callee="other") is None
    assert route_agent(routes, "default.yaml", callee="other") == "default.yaml"
    assert route_agent([], None, callee="anyone") == "anyone"  # demo mode
    # a user part never names a file, in demo mode either
    for user in ("../secrets", "x.yaml", "/etc/agent.yaml", "a/b"):
        assert route_agent([], None, callee=user) is None
    # HTTP callers may ask for an agent by plain name only
    assert route_agent(routes, None, requested="sales", callee="dental") == "sales"
    assert route_agent(routes, None, requested="../x.yaml", callee="dental") == "config/agents/dental.yaml"


def test_codec_priorities_disable_everything_else() -> None:
    available = ["speex/16000/1", "PCMU/8000/1", "PCMA/8000/1", "G722/16000/1", "GSM/8000/1"]
    prio = codec_priorities(available, ["G722", "PCMU"])
    assert prio == {
        "speex/16000/1": 0,
        "PCMU/8000/1": 254,
        "PCMA/8000/1": 0,
        "G722/16000/1": 255,
        "GSM/8000/1": 0,
    }
    with pytest.raises(ValueError):
        codec_priorities(available, ["opus"])


def test_worker_caps() -> None:
    assert worker_caps(2, 4, None) == [4, 4]
    assert worker_caps(1, 4, 2) == [2]
    assert worker_caps(1, 4, 10) == [4, 3, 3]  # more workers than asked when max_calls needs them
    assert worker_caps(3, 4, 6) == [2, 2, 2]
    assert sum(worker_caps(4, 4, 13)) == 13


def test_kamailio_config_renders(tmp_path: Path) -> None:
    text = render_config(
        FrontOptions(port=5099, allow=["10.0.0.0/8"], invites_per_second=5, burst=10),
        tmp_path / "ds.list",
        "/mods",
    )
    assert "{{" not in text
    assert "listen=udp:127.0.0.1:5099" in text and "#!define WITH_ALLOW" in text
    assert "#!define WITH_PIKE" in text and 'mpath="/mods"' in text
    assert dispatcher_list([("127.0.0.1", 6001), ("127.0.0.1", 6002)]).splitlines() == [
        "1 sip:127.0.0.1:6001;transport=udp",
        "1 sip:127.0.0.1:6002;transport=udp",
    ]


def test_wav_to_pcap(tmp_path: Path) -> None:
    from gateway.audio.wav import write_wav

    write_wav(tmp_path / "a.wav", (np.arange(16000) % 100 * 50).astype(np.int16), 16000)
    n = wav_to_pcap(tmp_path / "a.wav", tmp_path / "a.pcap", "PCMA")
    data = (tmp_path / "a.pcap").read_bytes()
    assert n == 50
    assert data[:4] == struct.pack("<I", 0xA1B2C3D4)
    # 24-byte file header, then per packet a 16-byte record header + 14 + 20 + 8 + 12 + 160 bytes.
    assert len(data) == 24 + n * (16 + 14 + 20 + 8 + 12 + 160)
    first_rtp = data[24 + 16 + 42 : 24 + 16 + 42 + 12]
    assert first_rtp[0] == 0x80 and first_rtp[1] == 0x80 | 8


def test_sip_service_status_before_start(tmp_path: Path) -> None:
    from sip_fixtures import two_workers_of_two_calls

    from gateway.edges.sip.service import SipService
    from gateway.edges.sip.sessions import silent

    service = SipService(two_workers_of_two_calls(tmp_path), silent)
    assert service.plan.max_calls == 4
    with pytest.raises(RuntimeError, match="sip front down"):
        service.status()
