"""ITU-T G.711 companding (μ-law and A-law), vectorised with lookup tables.

Theory of operation
-------------------
G.711 maps a uniform PCM sample onto 8 bits: a sign bit, a 3-bit *segment* (chord) number and a 4-bit
*quantisation step* (mantissa) inside that segment.  Each segment doubles the step size of the one before,
so the quantisation error stays roughly proportional to the signal level.

* **μ-law** works on 14-bit uniform PCM.  The magnitude is clipped to 8159 and offset by the bias 33, which
  makes every segment boundary a power of two: segment ``s`` (0..7) covers biased magnitudes
  ``[32·2^s, 64·2^s)`` with steps of ``2^(s+1)``.  The decoder returns the middle of the step:
  ``(2·m + 33)·2^s − 33``.  The sign bit is 1 for positive values; the segment and step bits are
  transmitted inverted (so +0 is 0xFF and silence on the wire is a run of 0xFF bytes).
* **A-law** works on 13-bit uniform PCM.  Segments 0 and 1 share a step of 2 (the linear part of the
  curve, magnitudes 0..63), segment ``s ≥ 2`` covers ``[16·2^s, 32·2^s)`` with steps of ``2^s``.  The
  decoder returns the middle of the step: ``2·m + 1`` for segment 0 and ``(2·m + 33)·2^(s−1)`` above.
  The even bits of the code word are inverted (XOR 0x55); the sign bit is 1 for positive values.

Our samples are 16-bit, so the encoder first drops the 2 (μ-law) or 3 (A-law) least significant bits
(a two's complement arithmetic shift, i.e. rounding towards minus infinity), and the decoder scales the
14/13-bit reconstruction back up by 4 or 8.  For A-law the magnitude of a negative value is taken in ones'
complement (``−x − 1``) so that the negative intervals mirror the positive ones exactly; for μ-law it is
taken in two's complement (``−x``).  These are the conventions of the reference encoders that telephony
equipment (and the CPython ``audioop`` module our tests compare against) follow, so the tables here are
bit-exact with them.

Everything is computed once at import time into two tables per law: a 256-entry decode table and a
65536-entry encode table indexed by the int16 sample viewed as uint16.  Encoding or decoding a buffer is
then a single ``ndarray.take`` (faster than fancy indexing for small frames).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Law",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "ulaw_decode",
    "ulaw_encode",
]

Law = Literal["ulaw", "alaw"]

_ULAW_BIAS = 33  # in 14-bit units
_ULAW_CLIP = 8159  # largest μ-law magnitude in 14-bit units (8159 + 33 = 2^13)


def _ulaw_decode_table() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32)
    positive = (code & 0x80) != 0
    seg = ((code ^ 0x7F) >> 4) & 0x7  # segment and step are sent inverted
    mant = (code ^ 0x7F) & 0xF
    magnitude14 = ((2 * mant + _ULAW_BIAS) << seg) - _ULAW_BIAS
    value = magnitude14 * 4  # 14-bit -> 16-bit
    return np.where(positive, value, -value).astype(np.int16)


def _ulaw_encode_table() -> NDArray[np.uint8]:
    pcm16 = np.arange(65536, dtype=np.int32)
    pcm16 = np.where(pcm16 >= 32768, pcm16 - 65536, pcm16)  # the uint16 index viewed as int16
    x = pcm16 >> 2  # 16-bit -> 14-bit
    negative = x < 0
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS  # 33 .. 8192
    # Segment s holds biased magnitudes [32 * 2**s, 64 * 2**s); 8192 is past segment 7 and saturates.
    seg = np.floor(np.log2(magnitude >> 5)).astype(np.int32)
    mant = (magnitude >> (seg + 1)) & 0xF
    code = np.where(seg >= 8, 0x7F, (np.minimum(seg, 7) << 4) | mant)
    sign = np.where(negative, 0x00, 0x80)
    return (sign | (code ^ 0x7F)).astype(np.uint8)  # segment and step are sent inverted


def _alaw_decode_table() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55  # undo the inversion of the even bits
    positive = (code & 0x80) != 0
    seg = (code >> 4) & 0x7
    mant = code & 0xF
    magnitude13 = np.where(seg == 0, 2 * mant + 1, (2 * mant + 33) << np.maximum(seg - 1, 0))
    value = magnitude13 * 8  # 13-bit -> 16-bit
    return np.where(positive, value, -value).astype(np.int16)


def _alaw_encode_table() -> NDArray[np.uint8]:
    pcm16 = np.arange(65536, dtype=np.int32)
    pcm16 = np.where(pcm16 >= 32768, pcm16 - 65536, pcm16)
    x = pcm16 >> 3  # 16-bit -> 13-bit
    negative = x < 0
    magnitude = np.where(negative, -x - 1, x)  # 0 .. 4095
    # Segments 0 and 1 are linear with step 2 (magnitudes 0..31 and 32..63); segment s >= 2 holds
    # [16 * 2**s, 32 * 2**s) with step 2**s.
    seg = np.where(magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude >> 4, 1)))).astype(np.int32)
    mant = np.where(seg < 2, magnitude >> 1, magnitude >> np.maximum(seg, 1)) & 0xF
    sign = np.where(negative, 0x00, 0x80)
    return ((sign | (seg << 4) | mant) ^ 0x55).astype(np.uint8)


_ULAW_DECODE = _ulaw_decode_table()
_ULAW_ENCODE = _ulaw_encode_table()
_ALAW_DECODE = _alaw_decode_table()
_ALAW_ENCODE = _alaw_encode_table()
for _table in (_ULAW_DECODE, _ULAW_ENCODE, _ALAW_DECODE, _ALAW_ENCODE):
    _table.setflags(write=False)


def _as_int16(pcm: NDArray[np.int16]) -> NDArray[np.int16]:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        raise TypeError(f"G.711 encoding needs int16 samples, got dtype {arr.dtype}")
    return arr


def _as_codes(codes: bytes | bytearray | memoryview | NDArray[np.uint8]) -> NDArray[np.uint8]:
    if isinstance(codes, (bytes, bytearray, memoryview)):  # tuple: faster than a union
        return np.frombuffer(codes, dtype=np.uint8)
    arr = np.asarray(codes)
    if arr.dtype != np.uint8:
        raise TypeError(f"G.711 decoding needs uint8 code words or bytes, got dtype {arr.dtype}")
    return arr


def ulaw_encode(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """μ-law code words for int16 samples (same shape). ``.tobytes()`` gives the RTP payload."""
    return _ULAW_ENCODE.take(_as_int16(pcm).view(np.uint16))


def ulaw_decode(codes: bytes | bytearray | memoryview | NDArray[np.uint8]) -> NDArray[np.int16]:
    """int16 samples for μ-law code words (bytes or a uint8 array of any shape)."""
    return _ULAW_DECODE.take(_as_codes(codes))


def alaw_encode(pcm: NDArray[np.int16]) -> NDArray[np.uint8]:
    """A-law code words for int16 samples (same shape). ``.tobytes()`` gives the RTP payload."""
    return _ALAW_ENCODE.take(_as_int16(pcm).view(np.uint16))


def alaw_decode(codes: bytes | bytearray | memoryview | NDArray[np.uint8]) -> NDArray[np.int16]:
    """int16 samples for A-law code words (bytes or a uint8 array of any shape)."""
    return _ALAW_DECODE.take(_as_codes(codes))


def encode(pcm: NDArray[np.int16], law: Law) -> NDArray[np.uint8]:
    """Encode int16 samples with ``law`` (``"ulaw"`` = PCMU, ``"alaw"`` = PCMA)."""
    if law == "ulaw":
        return ulaw_encode(pcm)
    if law == "alaw":
        return alaw_encode(pcm)
    raise ValueError(f"unknown G.711 law {law!r}; expected 'ulaw' or 'alaw'")


def decode(codes: bytes | bytearray | memoryview | NDArray[np.uint8], law: Law) -> NDArray[np.int16]:
    """Decode G.711 code words with ``law`` (``"ulaw"`` = PCMU, ``"alaw"`` = PCMA)."""
    if law == "ulaw":
        return ulaw_decode(codes)
    if law == "alaw":
        return alaw_decode(codes)
    raise ValueError(f"unknown G.711 law {law!r}; expected 'ulaw' or 'alaw'")
