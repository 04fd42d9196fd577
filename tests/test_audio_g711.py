"""G.711 against CPython's audioop (the reference), plus properties that follow from the standard."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from gateway.audio import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # removed in 3.13: the reference only, never used by the package

ALL_CODES = bytes(range(256))
ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)

LAWS = {
    "ulaw": (g711.ulaw_encode, g711.ulaw_decode, audioop.lin2ulaw, audioop.ulaw2lin),
    "alaw": (g711.alaw_encode, g711.alaw_decode, audioop.lin2alaw, audioop.alaw2lin),
}


@pytest.mark.parametrize("law", LAWS)
def test_decode_all_256_codes_bit_exact_with_audioop(law: str) -> None:
    _, dec, _, ref_dec = LAWS[law]
    expected = np.frombuffer(ref_dec(ALL_CODES, 2), dtype=np.int16)
    from_bytes = dec(ALL_CODES)
    from_array = dec(np.frombuffer(ALL_CODES, dtype=np.uint8))
    assert from_bytes.dtype == np.int16
    np.testing.assert_array_equal(from_bytes, expected)
    np.testing.assert_array_equal(from_array, expected)


@pytest.mark.parametrize("law", LAWS)
def test_encode_all_65536_values_bit_exact_with_audioop(law: str) -> None:
    enc, _, ref_enc, _ = LAWS[law]
    expected = np.frombuffer(ref_enc(ALL_INT16.tobytes(), 2), dtype=np.uint8)
    got = enc(ALL_INT16)
    assert got.dtype == np.uint8
    mismatches = np.nonzero(got != expected)[0]
    assert len(mismatches) == 0, f"first mismatching inputs: {ALL_INT16[mismatches[:10]]}"


def test_well_known_code_words() -> None:
    # Values fixed by G.711 itself: silence, full scale and the largest reconstruction levels.
    assert g711.ulaw_encode(np.array([0], np.int16))[0] == 0xFF
    assert g711.alaw_encode(np.array([0], np.int16))[0] == 0xD5
    assert g711.ulaw_encode(np.array([32767, -32768], np.int16)).tolist() == [0x80, 0x00]
    assert g711.alaw_encode(np.array([32767, -32768], np.int16)).tolist() == [0xAA, 0x2A]
    assert g711.ulaw_decode(b"\x80\x00").tolist() == [32124, -32124]
    assert g711.alaw_decode(b"\xaa\x2a").tolist() == [32256, -32256]
    assert g711.ulaw_decode(b"\xff\x7f").tolist() == [0, 0]  # μ-law has a positive and a negative zero


def test_ulaw_codes_survive_decode_encode_except_negative_zero() -> None:
    codes = np.arange(256, dtype=np.uint8)
    back = g711.ulaw_encode(g711.ulaw_decode(codes))
    differ = np.nonzero(back != codes)[0].tolist()
    assert differ == [0x7F]  # negative zero decodes to 0, which encodes as positive zero 0xFF
    assert back[0x7F] == 0xFF


def test_alaw_codes_survive_decode_encode() -> None:
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(g711.alaw_encode(g711.alaw_decode(codes)), codes)


@pytest.mark.parametrize("law", LAWS)
def test_decoder_levels_are_odd_symmetric_and_monotonic(law: str) -> None:
    levels = g711.decode(ALL_CODES, law).astype(np.int32)  # type: ignore[arg-type]
    positive = np.sort(levels[levels > 0])
    negative = np.sort(-levels[levels < 0])
    np.testing.assert_array_equal(positive, negative)
    assert len(np.unique(positive)) == 128 - (1 if law == "ulaw" else 0)  # μ-law: 0 is its own level


@pytest.mark.parametrize("law", LAWS)
def test_quantisation_error_is_bounded_relative_to_level(law: str) -> None:
    x = ALL_INT16.astype(np.int32)
    err = np.abs(g711.decode(g711.encode(ALL_INT16, law), law).astype(np.int32) - x)  # type: ignore[arg-type]
    small = np.abs(x) < 1024
    assert err[small].max() <= 40
    assert np.all(err[~small] <= np.abs(x[~small]) / 16)


@pytest.mark.parametrize("law", LAWS)
def test_encoding_is_monotonic_in_level(law: str) -> None:
    # A larger input never maps to a smaller reconstruction level.
    levels = g711.decode(g711.encode(ALL_INT16, law), law).astype(np.int32)  # type: ignore[arg-type]
    assert np.all(np.diff(levels) >= 0)


@given(arrays(np.int16, st.tuples(st.integers(0, 5), st.integers(0, 7))))
def test_shapes_are_kept_and_helpers_dispatch(pcm: np.ndarray) -> None:
    for law, (enc, dec, ref_enc, _) in LAWS.items():
        codes = g711.encode(pcm, law)  # type: ignore[arg-type]
        assert codes.shape == pcm.shape
        np.testing.assert_array_equal(codes, enc(pcm))
        np.testing.assert_array_equal(codes.ravel(), np.frombuffer(ref_enc(pcm.tobytes(), 2), np.uint8))
        decoded = g711.decode(codes, law)  # type: ignore[arg-type]
        assert decoded.shape == pcm.shape
        np.testing.assert_array_equal(decoded, dec(codes))


def test_encode_accepts_non_contiguous_input() -> None:
    pcm = ALL_INT16[::7]
    np.testing.assert_array_equal(g711.ulaw_encode(pcm), g711.ulaw_encode(pcm.copy()))


def test_wrong_dtypes_and_laws_are_rejected() -> None:
    with pytest.raises(TypeError, match="int16"):
        g711.ulaw_encode(np.zeros(4, dtype=np.int32))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="uint8"):
        g711.alaw_decode(np.zeros(4, dtype=np.int16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="law"):
        g711.encode(np.zeros(4, dtype=np.int16), "mulaw")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="law"):
        g711.decode(b"\x00", "pcmu")  # type: ignore[arg-type]


def test_lookup_tables_cannot_be_corrupted_by_callers() -> None:
    out = g711.ulaw_decode(b"\x80")
    out[0] = 1  # the result is a fresh array, not a view into the table
    assert g711.ulaw_decode(b"\x80")[0] == 32124
