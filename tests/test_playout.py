"""Playout: frames out, pause/resume at the exact sample, and the words the caller heard."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gateway.agents.playout import Playout
from gateway.agents.sentences import SentenceSplitter
from gateway.backends.base import WordTiming

RATE = 8000


def ramp(n: int, start: int = 0) -> np.ndarray:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def test_frames_come_out_in_order_and_pause_resume_continues_at_the_same_sample() -> None:
    playout = Playout(RATE)
    speech = playout.new_speech()
    playout.append(speech, ramp(1600), text="hello")
    out = [playout.next_frame() for _ in range(3)]
    playout.pause()
    assert playout.next_frame() is None and not playout.playing
    playout.resume()
    out += [playout.next_frame() for _ in range(7)]
    played = np.concatenate([f for f in out if f is not None])
    assert np.array_equal(played, ramp(1600))
    assert playout.next_frame() is None


def test_heard_words_are_those_fully_played() -> None:
    playout = Playout(RATE)
    speech = playout.new_speech()
    words = [WordTiming("we", 0.0, 0.2), WordTiming("have", 0.25, 0.5), WordTiming("tuesday", 0.55, 1.0)]
    playout.append(speech, ramp(8000), words, text="we have tuesday")
    for _ in range(26):  # 0.52 s played
        playout.next_frame()
    assert playout.heard_words() == ["we", "have"]
    playout.edge_delay = 0.1  # 100 ms still in the edge's buffers: "have" not yet heard
    assert playout.heard_words() == ["we"]
    cleared = playout.clear()
    assert cleared is speech and playout.heard_text(cleared) == "we"
    assert playout.next_frame() is None


def test_segments_append_with_offsets_and_late_audio_after_clear_is_dropped() -> None:
    playout = Playout(RATE)
    speech = playout.new_speech()
    playout.append(speech, ramp(1600), [WordTiming("one", 0.0, 0.1)], text="One.")
    playout.append(speech, ramp(1600), [WordTiming("two", 0.0, 0.1)], text="Two.")
    for _ in range(14):  # 0.28 s: "two" (0.2-0.3 s of the speech) not finished yet
        playout.next_frame()
    assert playout.heard_words() == ["one"]
    for _ in range(2):
        playout.next_frame()
    assert playout.heard_words() == ["one", "two"]
    playout.clear()
    playout.append(speech, ramp(800), text="Three.")  # TTS finishing after the interruption
    assert playout.next_frame() is None


def test_speeches_play_one_after_another_and_finish() -> None:
    playout = Playout(RATE)
    first, second = playout.new_speech(), playout.new_speech()
    playout.append(second, ramp(320, 5000), text="second")
    playout.append(first, ramp(320), text="first")
    playout.finish(first)
    playout.finish(second)
    frames = [playout.next_frame() for _ in range(5)]
    assert np.array_equal(
        np.concatenate([f for f in frames if f is not None]), np.concatenate([ramp(320), ramp(320, 5000)])
    )
    assert first.finished and second.finished and playout.current is None


def test_text_without_timings_is_estimated_from_the_audio_share() -> None:
    playout = Playout(RATE)
    speech = playout.new_speech()
    playout.append(speech, ramp(8000), text="one two three four")
    for _ in range(25):
        playout.next_frame()
    assert playout.heard_text() == "one two"


@given(
    st.lists(
        st.sampled_from(["Hello there. ", "Dr. Smith is in", " at 3.30", "! ", "Okay? ", "fine", ", and "]),
        max_size=20,
    )
)
def test_sentence_splitter_loses_no_text(pieces: list[str]) -> None:
    splitter = SentenceSplitter()
    out: list[str] = []
    for piece in pieces:
        out += splitter.push(piece)
    out += splitter.flush()
    assert " ".join(out).split() == "".join(pieces).split()


def test_sentence_splitter_cuts_at_sentence_ends_only() -> None:
    splitter = SentenceSplitter()
    assert splitter.push("Dr. Smith can see you at 3.30 on Tuesday. Does ") == [
        "Dr. Smith can see you at 3.30 on Tuesday."
    ]
    assert splitter.push("that work? ") == ["Does that work?"]
    assert splitter.flush() == []
