"""VadSegmenter as a pure state machine: synthetic probability sequences, no model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.turns.options import VadOptions
from gateway.turns.vad import SpeechEnded, SpeechStarted, VadChunk, VadSegmenter

STEP = 0.032


def chunks(probs: list[float], start: float = 0.0) -> list[VadChunk]:
    return [VadChunk(start + i * STEP, start + (i + 1) * STEP, p) for i, p in enumerate(probs)]


def feed(seg: VadSegmenter, probs: list[float]) -> list[tuple[int, SpeechStarted | SpeechEnded]]:
    """Events with the index of the chunk that decided them."""
    return [(i, e) for i, c in enumerate(chunks(probs)) for e in seg.update(c)]


def test_one_voiced_chunk_is_not_speech_two_are() -> None:
    seg = VadSegmenter(VadOptions())  # min speech 0.05 s: two 32 ms chunks
    assert feed(seg, [0.0, 0.9, 0.0, 0.0]) == []
    seg.reset()
    events = feed(seg, [0.0, 0.9, 0.8])
    assert events == [(2, SpeechStarted(t=pytest.approx(3 * STEP), onset=pytest.approx(STEP)))]
    assert seg.speaking
    assert seg.onset == pytest.approx(STEP)
    assert seg.voiced_duration == pytest.approx(2 * STEP)
    assert seg.last_voiced_end == pytest.approx(3 * STEP)


def test_an_unvoiced_chunk_cancels_the_candidate() -> None:
    seg = VadSegmenter(VadOptions(min_speech_duration=0.09))  # three chunks
    events = feed(seg, [0.9, 0.9, 0.1, 0.9, 0.9, 0.9])
    assert [type(e) for _, e in events] == [SpeechStarted]
    index, started = events[0]
    assert index == 5 and started.onset == pytest.approx(3 * STEP)


def test_candidate_is_visible_while_silent() -> None:
    seg = VadSegmenter(VadOptions(min_speech_duration=0.09))
    feed(seg, [0.0, 0.9])
    assert not seg.speaking and seg.onset is None and seg.voiced_duration == 0.0
    assert seg.candidate_onset == pytest.approx(STEP)
    assert seg.last_voiced_end is None  # a candidate is not an utterance yet


def test_zero_min_speech_starts_on_the_first_voiced_chunk() -> None:
    seg = VadSegmenter(VadOptions(min_speech_duration=0.0))
    assert [i for i, _ in feed(seg, [0.1, 0.6])] == [1]


def test_activation_threshold_is_inclusive() -> None:
    seg = VadSegmenter(VadOptions(min_speech_duration=0.0, activation_threshold=0.5))
    assert seg.update(VadChunk(0.0, STEP, 0.49)) == []
    assert seg.update(VadChunk(STEP, 2 * STEP, 0.5)) == [SpeechStarted(t=2 * STEP, onset=STEP)]


def test_hysteresis_keeps_speech_going_between_the_thresholds() -> None:
    opts = VadOptions()  # activation 0.5, end threshold 0.35
    assert opts.end_threshold == pytest.approx(0.35)
    # 0.4 cannot start speech...
    seg = VadSegmenter(opts)
    assert feed(seg, [0.4] * 30) == []
    # ...but keeps it going once started, and counts as voiced
    seg = VadSegmenter(opts)
    events = feed(seg, [0.9, 0.9] + [0.4] * 30 + [0.2] * 12)
    assert [(i, type(e)) for i, e in events] == [(1, SpeechStarted), (41, SpeechEnded)]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.end == pytest.approx(32 * STEP)
    assert ended.voiced == pytest.approx(32 * STEP)


def test_explicit_deactivation_threshold() -> None:
    seg = VadSegmenter(VadOptions(deactivation_threshold=0.45))
    events = feed(seg, [0.9, 0.9] + [0.4] * 12)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded) and ended.end == pytest.approx(2 * STEP)


@pytest.mark.parametrize(("min_silence", "chunks_needed"), [(0.3, 10), (0.32, 10), (0.25, 8), (0.55, 18)])
def test_min_silence_counts_from_the_last_voiced_chunk(min_silence: float, chunks_needed: int) -> None:
    seg = VadSegmenter(VadOptions(min_silence_duration=min_silence))
    events = feed(seg, [0.9] * 5 + [0.0] * 30)
    assert [(i, type(e)) for i, e in events] == [(1, SpeechStarted), (4 + chunks_needed, SpeechEnded)]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.onset == 0.0
    assert ended.end == pytest.approx(5 * STEP)
    assert ended.t == pytest.approx((5 + chunks_needed) * STEP)
    assert ended.t - ended.end >= min_silence - 1e-9
    assert ended.voiced == pytest.approx(5 * STEP)
    assert not seg.speaking and seg.voiced_duration == 0.0 and seg.onset is None
    assert seg.last_voiced_end == pytest.approx(5 * STEP)


def test_a_short_pause_does_not_end_the_utterance_and_is_not_voiced() -> None:
    seg = VadSegmenter(VadOptions(min_silence_duration=0.3))
    events = feed(seg, [0.9] * 4 + [0.0] * 9 + [0.9] * 3 + [0.0] * 10)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    ended = events[1][1]
    assert isinstance(ended, SpeechEnded)
    assert ended.end == pytest.approx(16 * STEP)
    assert ended.voiced == pytest.approx(7 * STEP)
    assert ended.voiced < ended.end - ended.onset


def test_properties_while_speaking_and_padded_onset() -> None:
    seg = VadSegmenter(VadOptions(prefix_padding_duration=0.5))
    feed(seg, [0.0] * 20 + [0.9] * 3 + [0.1] * 2)
    assert seg.speaking
    assert seg.onset == pytest.approx(20 * STEP)
    assert seg.padded_onset == pytest.approx(20 * STEP - 0.5)
    assert seg.voiced_duration == pytest.approx(3 * STEP)
    assert seg.last_voiced_end == pytest.approx(23 * STEP)
    early = VadSegmenter(VadOptions(prefix_padding_duration=0.5))
    feed(early, [0.9, 0.9])
    assert early.padded_onset == 0.0
    assert VadSegmenter(VadOptions()).padded_onset is None


def test_chunks_out_of_order_are_an_error() -> None:
    seg = VadSegmenter(VadOptions())
    seg.update(VadChunk(1.0, 1.032, 0.9))
    with pytest.raises(ValueError):
        seg.update(VadChunk(0.5, 0.532, 0.9))
    with pytest.raises(ValueError):
        seg.update(VadChunk(2.0, 1.9, 0.9))


def test_reset_forgets_everything() -> None:
    seg = VadSegmenter(VadOptions())
    feed(seg, [0.9] * 5)
    seg.reset()
    assert not seg.speaking and seg.last_voiced_end is None
    assert feed(seg, [0.9, 0.9])[0][1] == SpeechStarted(t=pytest.approx(2 * STEP), onset=0.0)


@settings(max_examples=300, deadline=None)
@given(
    probs=st.lists(st.floats(0.0, 1.0), max_size=300),
    activation=st.floats(0.05, 0.95),
    deactivation=st.one_of(st.none(), st.floats(0.01, 0.95)),
    min_speech=st.floats(0.0, 0.3),
    min_silence=st.floats(0.0, 1.0),
)
def test_segmentation_invariants(
    probs: list[float],
    activation: float,
    deactivation: float | None,
    min_speech: float,
    min_silence: float,
) -> None:
    opts = VadOptions(
        activation_threshold=activation,
        deactivation_threshold=deactivation,
        min_speech_duration=min_speech,
        min_silence_duration=min_silence,
    )
    seg = VadSegmenter(opts)
    events: list[SpeechStarted | SpeechEnded] = []
    last_t = 0.0
    for chunk in chunks(probs):
        new = seg.update(chunk)
        assert len(new) <= 1
        for event in new:
            assert event.t == chunk.end  # decided by this chunk
            assert event.t >= last_t
            last_t = event.t
        events += new
        # properties agree with the state
        if seg.speaking:
            assert seg.onset is not None and seg.last_voiced_end is not None
            assert seg.onset < seg.last_voiced_end <= chunk.end + 1e-9
            assert seg.voiced_duration <= seg.last_voiced_end - seg.onset + 1e-9
        else:
            assert seg.onset is None and seg.voiced_duration == 0.0

    # starts and ends strictly alternate, beginning with a start
    for k, event in enumerate(events):
        assert isinstance(event, SpeechStarted if k % 2 == 0 else SpeechEnded)
    for started, ended in zip(events[::2], events[1::2], strict=False):
        assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
        assert started.onset <= started.t
        assert started.t - started.onset >= max(min_speech, STEP) - 1e-9
        assert ended.onset == started.onset
        assert started.onset < ended.end <= ended.t  # an end never precedes its onset
        assert ended.t - ended.end >= min_silence - 1e-9
        assert ended.t - ended.end < max(min_silence, 0.0) + STEP + 1e-9  # and it is not late
        assert max(min_speech, STEP) - 1e-9 <= ended.voiced <= ended.end - ended.onset + 1e-9
    # utterances do not overlap
    for ended, started in zip(events[1::2], events[2::2], strict=False):
        assert isinstance(ended, SpeechEnded) and isinstance(started, SpeechStarted)
        assert started.onset >= ended.t - 1e-9
