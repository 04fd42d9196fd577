"""Features of the end-of-turn model, in numpy (shared by the runtime and the training recipe).

Theory of operation
-------------------
The model answers one question when the caller has fallen silent: *is this turn finished?* It sees

* **audio**: the last ``CONTEXT_S`` seconds of the caller's line up to the end of the last voiced audio
  (``speech_end``) and ``TAIL_S`` seconds after it (so a speech end that VAD placed a little early or
  late still shows the real end of the voice). Per 10 ms frame: ``N_MELS`` log-mel energies, the
  frame's energy, a pitch estimate relative to the speaker's median pitch in the window, and the
  voicing strength (peak of the normalised autocorrelation). Levels are taken relative to the loudest
  frame of the window, so the line's gain does not matter. This is where prosody lives: a falling
  or rising final contour, final lengthening, fading energy.
* **words** (optional): the closed word class (preposition, determiner, conjunction, auxiliary,
  filler, pronoun, digit, other) of each of the last ``LAST_WORDS`` words of the partial transcript,
  the last ``HASH_WORDS`` words hashed into ``HASH_BUCKETS`` buckets per position, a flag saying
  whether any words are known, the number of words and the run of digit words at the end (a phone
  number read in groups is finished when it has seven or ten digits). With no STT the flag is 0 and
  the vector is all zeros.
* **silence so far** (seconds since ``speech_end``), so the answer may grow as the pause grows.

Frame ``i`` is the 25 ms Hann-windowed segment that *ends* at sample ``(i + 1) * HOP``; the pitch of
frame ``i`` is taken over the ``PITCH_WIN`` samples ending there. Audio is 8 kHz mono.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from gateway.audio.melbank import mel_filterbank

SAMPLE_RATE = 8000
HOP = 80  # 10 ms
WIN = 200  # 25 ms
NFFT = 256
N_MELS = 24
FMIN = 250.0
FMAX = 3500.0
PITCH_WIN = 320  # 40 ms: two periods of a 50 Hz voice
PITCH_MIN_LAG = 20  # 400 Hz
PITCH_MAX_LAG = 160  # 50 Hz
# Linear (not circular) autocorrelation up to lag PITCH_NFFT - PITCH_WIN >= PITCH_MAX_LAG + 1.
PITCH_NFFT = 512
VOICED = 0.45  # normalised autocorrelation peak above which a frame counts as voiced
ENERGY_FLOOR = 1e-9

CONTEXT_S = 1.6
TAIL_S = 0.2
CONTEXT_FRAMES = round(CONTEXT_S * SAMPLE_RATE / HOP)  # before speech_end
TAIL_FRAMES = round(TAIL_S * SAMPLE_RATE / HOP)  # after speech_end
N_FRAMES = CONTEXT_FRAMES + TAIL_FRAMES
N_AUDIO = N_MELS + 3
# Samples of left context a window needs before its first frame (pitch window is the longest).
LEFT_PAD = PITCH_WIN - HOP

LAST_WORDS = 3
HASH_WORDS = 2  # the identity of the last two words is hashed; classes cover the last three
HASH_BUCKETS = 32

# Closed word classes: an utterance that stops on one of these is usually unfinished, whatever the
# sentence was (the classes generalise to phrases never seen in training; the hashed identity adds
# what they miss). The last class, "other", is every other word (content words, names, times).
_CLASSES = {
    "preposition": "for to of at on in with from about after before under into by than since until around "
    "between near off over through toward towards without within per via",
    "determiner": "a an the my your our his her their its this these those some any another every each no",
    "conjunction": "and or but so because if when then which who whom whose where while though although "
    "unless whether that as",
    "auxiliary": "is are was were be been being am i'm it's that's there's would could can will should "
    "might must may do does did have has had need needs want wants gonna wanna like",
    "filler": "um uh er erm hmm mm uhm ah well see mean know",
    "pronoun": "i we you he she they it me",
}
WORD_CLASSES: dict[str, int] = {w: i for i, words in enumerate(_CLASSES.values()) for w in words.split()}
N_CLASSES = len(_CLASSES) + 2  # + digit words + other
HAS_WORDS = LAST_WORDS * N_CLASSES + HASH_WORDS * HASH_BUCKETS  # index of the has-words flag
N_WORDS = HAS_WORDS + 3

FloatArray = npt.NDArray[np.float32]

# Speech-embedding steps (`gateway.turns.speech_embedding`: one 96-d vector per 80 ms step, each over
# the 0.775 s before the step's end) of the second model: the `EMB_STEPS` steps whose last one ends at
# most `EMB_TAIL` samples after the speech end (so it has heard the voice stop).
EMB_STEP = 640
EMB_STEPS = 16
EMB_TAIL = 1280  # 160 ms
EMB_DIM = 96


def embedding_steps(speech_end: int) -> tuple[int, int]:
    """Steps [k0, k1) of the embedding window of a speech end (absolute 8 kHz sample); k0 may be < 0
    (before the call's first step: those rows repeat step 0, see `embedding_window`)."""
    k1 = (speech_end + EMB_TAIL) // EMB_STEP
    return k1 - EMB_STEPS, k1


def embedding_window(steps: FloatArray, k0: int) -> FloatArray:
    """``[EMB_STEPS, EMB_DIM]`` from the embeddings ``steps`` of steps ``max(k0, 0)`` on (at least one);
    steps before the call's first one repeat the first."""
    pad = max(0, -k0)
    rows = np.asarray(steps, dtype=np.float32)[: EMB_STEPS - pad]
    if pad:
        rows = np.concatenate([np.repeat(rows[:1], pad, axis=0), rows])
    if len(rows) < EMB_STEPS:  # not complete yet: the newest known step stands for the missing ones
        rows = np.concatenate([rows, np.repeat(rows[-1:], EMB_STEPS - len(rows), axis=0)])
    return rows


_DIGITS = """
zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen
sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred
double triple
"""
DIGIT_WORDS: frozenset[str] = frozenset(_DIGITS.split())


def mel_matrix() -> FloatArray:
    """[NFFT // 2 + 1, N_MELS] triangular filterbank over the telephone band."""
    return mel_filterbank(SAMPLE_RATE, NFFT, N_MELS, FMIN, FMAX)


@functools.cache
def _hann() -> FloatArray:
    return np.hanning(WIN).astype(np.float32)


def audio_features(samples: npt.NDArray[np.generic]) -> FloatArray:
    """``[n, N_AUDIO]`` features of the frames of ``samples``.

    ``samples`` (int16, or float in [-1, 1]) starts ``LEFT_PAD`` samples before the first frame's
    hop; ``n = (len(samples) - LEFT_PAD) // HOP``.
    """
    x = np.asarray(samples)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    n = (len(x) - LEFT_PAD) // HOP
    if n <= 0:
        return np.zeros((0, N_AUDIO), dtype=np.float32)
    ends = LEFT_PAD + HOP * (np.arange(n) + 1)
    spec_idx = ends[:, None] - WIN + np.arange(WIN)[None, :]
    frames = x[spec_idx] * _hann()[None, :]
    spec = np.fft.rfft(frames, n=NFFT, axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    logmel = np.log(power @ mel_matrix() + ENERGY_FLOOR)
    energy = np.log(np.mean(frames * frames, axis=1) + ENERGY_FLOOR)

    pitch_idx = ends[:, None] - PITCH_WIN + np.arange(PITCH_WIN)[None, :]
    seg = x[pitch_idx]
    seg = seg - seg.mean(axis=1, keepdims=True)
    f = np.fft.rfft(seg, n=PITCH_NFFT, axis=1)
    ac = np.fft.irfft(f.real**2 + f.imag**2, axis=1)[:, : PITCH_MAX_LAG + 2]
    # Normalise by the energy of the overlapping parts (unbiased, so long lags are not penalised).
    norm = ac[:, :1] * (PITCH_WIN - np.arange(ac.shape[1]))[None, :] / PITCH_WIN + 1e-12
    r = ac / norm
    lags = r[:, PITCH_MIN_LAG : PITCH_MAX_LAG + 1]
    best = np.argmax(lags, axis=1)
    strength = lags[np.arange(n), best]
    lag = (best + PITCH_MIN_LAG).astype(np.float32)
    # Parabolic refinement of the peak.
    li = np.clip(best + PITCH_MIN_LAG, 1, ac.shape[1] - 2)
    a, b, c = r[np.arange(n), li - 1], r[np.arange(n), li], r[np.arange(n), li + 1]
    den = a - 2 * b + c
    shift = np.where(np.abs(den) > 1e-9, 0.5 * (a - c) / np.where(np.abs(den) > 1e-9, den, 1.0), 0.0)
    lag = lag + np.clip(shift, -0.5, 0.5).astype(np.float32)
    log_f0 = np.log2(SAMPLE_RATE / np.maximum(lag, 1.0))

    # Relative to the window: the loudest frame is 0, the speaker's median pitch is 0.
    top = float(energy.max())
    energy_rel = np.maximum(energy - top, -12.0) / 4.0
    logmel_rel = np.maximum(logmel - float(logmel.max()), -16.0) / 4.0
    loud = energy > top - 5.0  # within ~22 dB of the loudest frame
    voiced = (strength > VOICED) & loud
    centre = float(np.median(log_f0[voiced])) if np.count_nonzero(voiced) >= 3 else 0.0
    pitch_rel = np.where(voiced, np.clip(log_f0 - centre, -1.5, 1.5), 0.0)
    out = np.concatenate(
        [
            logmel_rel,
            energy_rel[:, None],
            (pitch_rel * 2.0)[:, None],
            (np.clip(strength, 0.0, 1.0) * loud)[:, None],
        ],
        axis=1,
    )
    return out.astype(np.float32)


def window_features(samples: npt.NDArray[np.generic], first_sample: int, speech_end: int) -> FloatArray:
    """``[N_FRAMES, N_AUDIO]``: the model's audio window around ``speech_end`` (an absolute sample).

    ``samples`` holds the stream from absolute sample ``first_sample`` on (whatever is available);
    audio before it or after its end is taken as digital silence.
    """
    end = (speech_end // HOP) * HOP
    lo = end - CONTEXT_FRAMES * HOP - LEFT_PAD
    hi = end + TAIL_FRAMES * HOP
    x = np.asarray(samples)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
    buf = np.zeros(hi - lo, dtype=np.float32)
    src_lo, src_hi = max(lo, first_sample), min(hi, first_sample + len(x))
    if src_hi > src_lo:
        buf[src_lo - lo : src_hi - lo] = x[src_lo - first_sample : src_hi - first_sample]
    # A whisper of noise so that digital silence has a defined (low) pitch strength and energy.
    buf += np.float32(1e-5) * np.sin(np.arange(len(buf), dtype=np.float32) * np.float32(2.3))
    return audio_features(buf)


def word_hash(word: str, position: int) -> int:
    """Stable bucket of ``word`` (normalised) at ``position`` from the end (0 = last word)."""
    key = f"{position}:{normalise(word)}".encode()
    return zlib.crc32(key) % HASH_BUCKETS


def normalise(word: str) -> str:
    return word.lower().strip(" .,!?;:\"'…").replace("’", "'")


def word_class(word: str) -> int:
    """Index of the closed class of a normalised word; digits next to last, "other" last."""
    if word in DIGIT_WORDS:
        return N_CLASSES - 2
    return WORD_CLASSES.get(word, N_CLASSES - 1)


def word_features(words: Sequence[str] | None) -> FloatArray:
    """``[N_WORDS]``: classes of the last words, hashed identities, a has-words flag, word and digit
    counts (all zeros without words)."""
    out = np.zeros(N_WORDS, dtype=np.float32)
    clean = [w for w in (normalise(w) for w in words or ()) if w]
    if not clean:
        return out
    tail = list(reversed(clean[-LAST_WORDS:]))
    for pos, word in enumerate(tail):
        out[pos * N_CLASSES + word_class(word)] = 1.0
    base = LAST_WORDS * N_CLASSES
    for pos, word in enumerate(tail[:HASH_WORDS]):
        out[base + pos * HASH_BUCKETS + word_hash(word, pos)] = 1.0
    base += HASH_WORDS * HASH_BUCKETS
    out[base] = 1.0
    out[base + 1] = min(len(clean), 30) / 10.0
    # Digits since the last non-digit word: a number read in groups.
    run = 0
    for word in reversed(clean):
        if word not in DIGIT_WORDS:
            break
        run += 1
    out[base + 2] = min(run, 12) / 10.0
    return out
