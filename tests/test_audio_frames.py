"""20 ms framing: sizes, reassembly from arbitrary chunks, padding, and frames that own their memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audio import FRAME_MS, Framer, iter_frames, samples_per_frame


def test_samples_per_frame() -> None:
    assert FRAME_MS == 20
    assert samples_per_frame(8000) == 160
    assert samples_per_frame(16000) == 320
    assert samples_per_frame(48000) == 960
    for bad in (0, -8000, 8025):  # 8025 Hz * 20 ms = 160.5 samples
        with pytest.raises(ValueError):
            samples_per_frame(bad)


@settings(max_examples=60, deadline=None)
@given(
    rate=st.sampled_from([8000, 16000]),
    sizes=st.lists(st.integers(0, 1000), max_size=25),
    seed=st.integers(0, 2**32 - 1),
)
def test_framer_reassembles_any_chunking(rate: int, sizes: list[int], seed: int) -> None:
    signal = np.random.default_rng(seed).integers(-32768, 32768, sum(sizes), dtype=np.int16)
    n = samples_per_frame(rate)
    framer = Framer(rate)
    frames: list[np.ndarray] = []
    pos = 0
    for size in sizes:
        out = framer.push(signal[pos : pos + size])
        pos += size
        frames.extend(out)
        assert len(frames) == pos // n  # every complete frame is delivered as soon as it is complete
        assert framer.buffered == pos % n
    assert all(f.shape == (n,) and f.dtype == np.int16 for f in frames)
    tail = framer.flush(pad=False)
    rebuilt = np.concatenate([*frames, tail if tail is not None else np.zeros(0, np.int16)])
    np.testing.assert_array_equal(rebuilt, signal)
    assert framer.buffered == 0 and framer.flush() is None


def test_flush_pads_with_zeros_and_empties_the_framer() -> None:
    framer = Framer(8000)
    assert framer.push(np.arange(1, 101, dtype=np.int16)) == []
    last = framer.flush(pad=True)
    assert last is not None and last.shape == (160,)
    np.testing.assert_array_equal(last[:100], np.arange(1, 101))
    assert not last[100:].any()
    assert framer.flush() is None
    # After a flush the framer starts a fresh frame.
    out = framer.push(np.full(160, 7, np.int16))
    assert len(out) == 1 and (out[0] == 7).all()


def test_frames_do_not_share_memory_with_caller_buffers() -> None:
    framer = Framer(8000)
    buf = np.arange(400, dtype=np.int16)
    frames = framer.push(buf)  # 2 frames + 80 held
    snapshot = [f.copy() for f in frames]
    buf[:] = -1  # the caller reuses its buffer
    frames += framer.push(np.zeros(80, np.int16))
    for f in frames:
        assert not np.shares_memory(f, buf)
    np.testing.assert_array_equal(frames[0], snapshot[0])
    np.testing.assert_array_equal(frames[2][:80], np.arange(320, 400))  # held samples were copied too
    # And frames handed out earlier are not overwritten by later pushes reusing the internal buffer.
    held_frame = framer.push(np.full(100, 5, np.int16)) + framer.push(np.full(60, 6, np.int16))
    np.testing.assert_array_equal(frames[2][:80], np.arange(320, 400))
    assert (held_frame[0][:100] == 5).all() and (held_frame[0][100:] == 6).all()


def test_iter_frames_pads_the_last_frame() -> None:
    signal = np.arange(1, 16000 * 0.05 + 1, dtype=np.int16)  # 50 ms at 16 kHz: 2.5 frames
    frames = list(iter_frames(signal, 16000))
    assert [len(f) for f in frames] == [320, 320, 320]
    np.testing.assert_array_equal(np.concatenate(frames)[:800], signal)
    assert not frames[-1][160:].any()
    assert not any(np.shares_memory(f, signal) for f in frames)
    assert list(iter_frames(np.zeros(0, np.int16), 8000)) == []
    assert len(list(iter_frames(np.zeros(320, np.int16), 8000))) == 2  # exact multiple: no padded extra


def test_non_int16_or_multichannel_input_is_rejected() -> None:
    with pytest.raises(TypeError, match="int16"):
        Framer(8000).push(np.zeros(160, np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mono"):
        Framer(8000).push(np.zeros((160, 2), np.int16))
    with pytest.raises(TypeError, match="int16"):
        next(iter_frames(np.zeros(160, np.int32), 8000))  # type: ignore[arg-type]
