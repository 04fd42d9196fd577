"""The local link between a pjsua2 worker and the session host: length-prefixed binary messages.

One Unix stream socket per worker. Each message is

    u32 length (of what follows) | u8 kind | u32 call slot | payload

Audio travels as raw int16 little-endian PCM at the call's rate; `FRAME` payloads start with a u32
frame sequence number (20 ms each, counted from the answer) so the host knows each frame's time even
when frames were dropped on the way. Control payloads are small JSON objects.
"""

from __future__ import annotations

import json
import struct
from enum import IntEnum
from typing import Any

HEADER = struct.Struct("!IBI")  # length, kind, slot
SEQ = struct.Struct("!I")
MAX_MESSAGE = 8 * 1024 * 1024


class Kind(IntEnum):
    # worker -> host
    HELLO = 1  # {"worker": index, "pid": ..., "sip_port": ..., "fast_read": bool}
    CALL_START = 2  # {"call_id", "agent", "caller", "callee", "codec", "sample_rate"}
    FRAME = 3  # u32 seq + pcm
    DTMF = 4  # {"digit", "method", "seq"}
    CALL_END = 5  # {"reason", "frames_dropped", "frames_total"}
    STATS = 6  # periodic heartbeat: {"calls", "frames_dropped", ...}
    # host -> worker
    PLAY = 20  # pcm
    CLEAR = 21
    PAUSE = 22
    RESUME = 23
    HANGUP = 24  # {"reason"}
    DRAIN = 25  # {"timeout"}
    ADMIT = 26  # {"open": bool, "max_calls": int | None}: whether (and how many) new calls it takes


def pack(kind: Kind, slot: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(HEADER.size - 4 + len(payload), kind, slot) + payload


def pack_json(kind: Kind, slot: int, obj: dict[str, Any]) -> bytes:
    return pack(kind, slot, json.dumps(obj, separators=(",", ":")).encode())


def pack_frame(slot: int, seq: int, pcm: bytes) -> bytes:
    return pack(Kind.FRAME, slot, SEQ.pack(seq) + pcm)


def unpack_header(header: bytes) -> tuple[int, Kind, int]:
    """(payload length, kind, slot) from the 9 header bytes."""
    length, kind, slot = HEADER.unpack(header)
    payload_len = length - (HEADER.size - 4)
    if payload_len < 0 or payload_len > MAX_MESSAGE:
        raise ValueError(f"bad message length {length}")
    return payload_len, Kind(kind), slot


def unpack_frame(payload: bytes) -> tuple[int, bytes]:
    (seq,) = SEQ.unpack_from(payload)
    return seq, payload[SEQ.size :]


def load_json(payload: bytes) -> dict[str, Any]:
    obj = json.loads(payload or b"{}")
    if not isinstance(obj, dict):
        raise ValueError("control payload is not a JSON object")
    return obj
