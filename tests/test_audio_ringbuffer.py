"""RingBuffer addressed by absolute sample index, checked against a plain growing array."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audio import RingBuffer


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 64),
    writes=st.lists(st.integers(0, 150), max_size=12),
    queries=st.lists(st.tuples(st.integers(-5, 600), st.integers(0, 200)), max_size=12),
    latest=st.integers(0, 100),
)
def test_matches_a_growing_array(
    capacity: int, writes: list[int], queries: list[tuple[int, int]], latest: int
) -> None:
    ring = RingBuffer(capacity)
    reference = np.zeros(0, np.int16)
    counter = 0
    for size in writes:
        chunk = (np.arange(counter, counter + size) % 30000).astype(np.int16)  # every sample distinct-ish
        counter += size
        ring.write(chunk)
        reference = np.concatenate([reference, chunk])
        assert ring.total_written == len(reference)
        assert ring.available_from == max(0, len(reference) - capacity)
        assert len(ring) == len(reference) - ring.available_from
        for start, length in queries:
            stop = start + length
            if ring.available_from <= start <= stop <= len(reference):
                np.testing.assert_array_equal(ring.read(start, stop), reference[start:stop])
            else:
                with pytest.raises(IndexError):
                    ring.read(start, stop)
        held = min(latest, len(ring))
        np.testing.assert_array_equal(ring.latest(latest), reference[len(reference) - held :])


def test_write_larger_than_capacity_keeps_the_tail() -> None:
    ring = RingBuffer(5)
    ring.write(np.arange(3, dtype=np.int16))
    ring.write(np.arange(100, 112, dtype=np.int16))
    assert ring.total_written == 15
    assert ring.available_from == 10
    np.testing.assert_array_equal(ring.read(10, 15), np.arange(107, 112))


def test_errors_say_what_happened() -> None:
    ring = RingBuffer(8000)
    ring.write(np.ones(10000, np.int16))
    with pytest.raises(IndexError, match="overwritten"):
        ring.read(1999, 2100)
    with pytest.raises(IndexError, match="only 10000 samples written"):
        ring.read(9000, 10001)
    with pytest.raises(IndexError, match="after stop"):
        ring.read(9000, 8999)
    with pytest.raises(ValueError):
        RingBuffer(0)
    with pytest.raises(TypeError):
        ring.write(np.ones(4, np.float32))
    with pytest.raises(ValueError):
        ring.write(np.ones((4, 2), np.int16))


def test_read_returns_a_copy_and_other_dtypes_work() -> None:
    ring = RingBuffer(4, dtype=np.float32)
    ring.write(np.array([0.5, 1.5, 2.5], np.float32))
    out = ring.read(0, 3)
    assert out.dtype == np.float32
    out[:] = 9
    np.testing.assert_array_equal(ring.read(0, 3), [0.5, 1.5, 2.5])


def test_barge_in_window_one_second_before_onset() -> None:
    rate = 8000
    ring = RingBuffer(3 * rate)
    t = np.arange(5 * rate)
    signal = (t % 1000).astype(np.int16)
    onset = int(2.5 * rate)
    for i in range(0, len(signal), 160):  # written frame by frame, as live
        ring.write(signal[i : i + 160])
        if i + 160 == onset + rate:  # 1 s of speech after onset
            window = ring.read(onset - rate, ring.total_written)
            np.testing.assert_array_equal(window, signal[onset - rate : onset + rate])
    with pytest.raises(IndexError, match="overwritten"):
        ring.read(onset - rate, onset)  # by now that audio is gone
