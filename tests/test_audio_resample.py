"""Resampling with libsoxr: quality of tones, streaming equals one-shot, anti-aliasing, lengths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audio import StreamResampler, resample


def tone(freq: float, rate: int, seconds: float = 1.0, amplitude: float = 10000.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.round(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    noise = test.astype(np.float64) - reference.astype(np.float64)
    return 20 * np.log10(rms(reference) / max(rms(noise), 1e-9))


def stream(resampler: StreamResampler, signal: np.ndarray, chunk: int) -> np.ndarray:
    parts = [resampler.process(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    parts.append(resampler.flush())
    return np.concatenate(parts)


EDGE = 200  # samples at each end where the filters see the signal switch on/off


def test_1khz_tone_survives_8k_16k_8k() -> None:
    x = tone(1000, 8000)
    up = resample(x, 8000, 16000)
    back = resample(up, 16000, 8000)
    assert len(up) == 2 * len(x) and len(back) == len(x)
    assert snr_db(x[EDGE:-EDGE], back[EDGE:-EDGE]) > 45
    assert np.max(np.abs(back[EDGE:-EDGE].astype(int) - x[EDGE:-EDGE])) < 30  # of amplitude 10000


def test_upsampled_tone_matches_the_tone_generated_at_16k() -> None:
    up = resample(tone(1000, 8000), 8000, 16000)
    assert snr_db(tone(1000, 16000)[EDGE:-EDGE], up[EDGE:-EDGE]) > 45


def test_6khz_tone_is_removed_when_going_down_to_8k() -> None:
    # 6 kHz is above the 4 kHz Nyquist limit of 8 kHz audio: without filtering it would alias to 2 kHz.
    x = tone(6000, 16000, amplitude=20000)
    y = resample(x, 16000, 8000)
    attenuation = 20 * np.log10(max(rms(y[EDGE:-EDGE]), 1e-9) / rms(x))
    assert attenuation < -60


def test_passband_speech_frequencies_keep_their_level_going_down() -> None:
    for freq in (300, 1000, 3000, 3400):
        x = tone(freq, 16000)
        y = resample(x, 16000, 8000)
        assert abs(20 * np.log10(rms(y[EDGE:-EDGE]) / rms(x))) < 0.5, freq


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (48000, 8000), (8000, 48000)])
def test_streaming_over_20ms_chunks_equals_one_shot(src: int, dst: int) -> None:
    rng = np.random.default_rng(1)
    x = (tone(440, src, 2.0) + rng.normal(0, 500, 2 * src)).astype(np.int16)
    one_shot = resample(x, src, dst)
    streamed = stream(StreamResampler(src, dst), x, src // 50)
    assert len(streamed) == len(one_shot)
    assert np.max(np.abs(streamed.astype(int) - one_shot)) <= 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 700), min_size=1, max_size=30))
def test_streaming_with_irregular_chunks_equals_one_shot(sizes: list[int]) -> None:
    x = tone(700, 8000, sum(sizes) / 8000 + 0.01)[: sum(sizes)]
    r = StreamResampler(8000, 16000)
    parts, pos = [], 0
    for n in sizes:
        parts.append(r.process(x[pos : pos + n]))
        pos += n
    parts.append(r.flush())
    streamed = np.concatenate(parts)
    one_shot = resample(x, 8000, 16000)
    assert len(streamed) == len(one_shot) == 2 * len(x)
    if len(x):
        assert np.max(np.abs(streamed.astype(int) - one_shot)) <= 1


@pytest.mark.parametrize("n", [0, 1, 7, 159, 160, 161, 8000, 8001])
def test_lengths(n: int) -> None:
    x = np.ones(n, dtype=np.int16)
    assert len(resample(x, 8000, 16000)) == 2 * n
    assert len(resample(x, 16000, 8000)) == -(-n // 2)
    assert len(resample(x, 8000, 8000)) == n


def test_digital_silence_stays_exactly_zero() -> None:
    # Replay detects agent speech as "channel 1 not silent": resampling must not add dither noise.
    z = np.zeros(16000, dtype=np.int16)
    assert not resample(z, 16000, 8000).any()
    assert not resample(z, 8000, 16000).any()
    assert not stream(StreamResampler(8000, 16000), z, 160).any()


def test_full_scale_overshoot_is_clipped_not_wrapped() -> None:
    # A full-scale 100 Hz square wave rings past int16 range at each edge (Gibbs overshoot).
    period = 80
    x = np.where((np.arange(8000) % period) < period // 2, 32767, -32768).astype(np.int16)
    y = resample(x, 8000, 16000)
    assert y.dtype == np.int16
    assert y.max() == 32767 and y.min() == -32768
    ref = np.repeat(x, 2).astype(np.int32)
    phase = np.arange(len(y)) % period  # half a period of the square wave at 16 kHz is `period` samples
    plateau = (phase > 3) & (phase < period - 3)
    plateau[:EDGE] = plateau[-EDGE:] = False
    # A wrapped overshoot would flip the sign of a plateau sample.
    assert np.all(np.sign(y[plateau]) == np.sign(ref[plateau]))
    assert np.abs(y[plateau].astype(np.int32)).min() > 25000


def test_same_rate_is_a_copy() -> None:
    x = tone(1000, 8000, 0.1)
    y = resample(x, 8000, 8000)
    np.testing.assert_array_equal(x, y)
    assert not np.shares_memory(x, y)
    r = StreamResampler(16000, 16000)
    chunk = x[:160]
    out = r.process(chunk)
    np.testing.assert_array_equal(out, chunk)
    assert not np.shares_memory(out, chunk)
    assert len(r.flush()) == 0


def test_pending_reports_held_output_and_flush_releases_it() -> None:
    r = StreamResampler(8000, 16000)
    produced = sum(len(r.process(tone(500, 8000, 0.02))) for _ in range(10))
    assert produced + r.pending == 2 * 160 * 10
    tail = r.flush()
    assert produced + len(tail) == 2 * 160 * 10


def test_stream_lifecycle_and_errors() -> None:
    r = StreamResampler(8000, 16000)
    r.process(tone(500, 8000, 0.02))
    r.flush()
    with pytest.raises(RuntimeError, match="flush"):
        r.process(tone(500, 8000, 0.02))
    assert len(r.flush()) == 0  # a second flush has nothing more
    r.reset()
    x = tone(500, 8000, 0.5)
    np.testing.assert_array_equal(stream(r, x, 160), resample(x, 8000, 16000))  # no state leaks across
    with pytest.raises(TypeError, match="int16"):
        resample(np.zeros(10, np.float32), 8000, 16000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mono"):
        resample(np.zeros((10, 2), np.int16), 8000, 16000)
    with pytest.raises(ValueError, match="to_rate"):
        StreamResampler(8000, 0)
