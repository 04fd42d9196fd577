"""Reading a pjsua2 `ByteVector` (a SWIG-wrapped `std::vector<unsigned char>`) without per-byte copies.

`bytes(frame.buf)` makes SWIG convert element by element (hundreds of µs per 20 ms frame). A libstdc++
vector's first word is its data pointer, so `ctypes.string_at(pointer, len)` returns the same bytes in
about a microsecond. That leans on the C++ ABI, so `choose_reader()` checks it against the slow path
at start-up and falls back to the slow path when the two disagree.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

ByteVectorReader = Callable[[Any], bytes]


def read_slow(buf: Any) -> bytes:
    return bytes(buf)


def read_fast(buf: Any) -> bytes:
    n = len(buf)
    if n == 0:
        return b""
    data = ctypes.c_void_p.from_address(int(buf.this)).value
    if not data:
        return b""
    return ctypes.string_at(data, n)


def fast_read_works() -> bool:
    """Compare the fast and slow reads on vectors of several sizes and contents."""
    try:
        import pjsua2 as pj
    except ImportError:  # pragma: no cover - pjsua2 is a hard dependency of the SIP edge
        return False
    try:
        for size in (1, 7, 320, 640, 4096):
            vec = pj.ByteVector()
            pattern = bytes((i * 37 + size) & 0xFF for i in range(size))
            for b in pattern:
                vec.append(b)
            if read_fast(vec) != pattern or read_slow(vec) != pattern:
                return False
        return read_fast(pj.ByteVector()) == b""
    except Exception:  # any ABI surprise means: use the slow path
        log.exception("fast ByteVector read failed its self-check")
        return False


def choose_reader() -> tuple[ByteVectorReader, bool]:
    """The reader to use in media callbacks, and whether it is the fast one."""
    if fast_read_works():
        return read_fast, True
    log.warning("fast ByteVector read disagrees with the slow path; using the slow path (~100x slower)")
    return read_slow, False
