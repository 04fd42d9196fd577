"""Held-out REAL-speaker end-of-turn calls: `PYTHONPATH=. .venv/bin/python -m models.eot.make_real_eot`.

The end-of-turn model never trained on recorded speech (its corpus is synthetic; its speech-embedding
front end came pre-trained), so every real speaker here is held out. Sources (Debian packages, already
8 kHz): Allison's English IVR prompts (`asterisk-core-sounds-en-wav`) and the English codec2 test
recordings (`codec2-examples`: Harvard sentences and radio amateurs' calls, a dozen speakers;
`models.voices.real.CODEC2_SOURCES`).

Each recording is transcribed once with Whisper tiny.en (`models.voices.real.Transcriber`, word times;
the weights the gateway bundles, never a hub) and split into utterances where the words are more than
0.45 s apart. An utterance of at least `--min-words` words becomes one call:

* ``complete`` (40 %): the utterance as spoken: a finished turn, its latency is measured;
* ``cut`` (60 %): the utterance broken between two of its words (not after the first nor before the
  last), at the quietest 10 ms between them, with a hesitation pause of 0.5-1.8 s inserted: the first
  part keeps the speaker's mid-sentence prosody (no final fall), the pause must not be cut into.

Only utterances that end a sentence (Whisper puts '.', '?' or '!' on the last word) and last at most
10 s are used; a codec2 sentence gives three calls (other cuts and pauses): those speakers have few
sentences each.

Part ends and starts are where the audio is more than 35 dB under the utterance's loudest frame; the
words of a part (the "+words" transcript) are Whisper's words whose middle falls in it. The call then
goes through the telephony channel of the TTS calls (`models.eot.render.to_line`). Output (git-ignored):
`models/eot/corpus/real-eot.pkl`: a list of (speaker, family, `Rendered`), read by `bench/bench_eot.py
--real`. Call `i` draws from `SeedSequence([seed, i])`.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from models.eot.render import SR, Rendered, Segment, to_line
from models.voices.real import ASTERISK, CODEC2_SOURCES, Source, Transcriber, read

OUT = Path(__file__).parent / "corpus" / "real-eot.pkl"
GAP = 0.45  # s between words that ends an utterance
FLOOR_DB = 35.0
Words = list[tuple[str, float, float]]


MAX_UTTERANCE = 10.0  # s


def utterances(words: Words, min_words: int) -> list[Words]:
    """Runs of words with gaps of at most GAP that end a sentence (Whisper's '.', '?' or '!' on the last
    word: a finished turn), of `min_words` words and at most MAX_UTTERANCE seconds."""
    out: list[Words] = []
    cur: Words = []
    for w in words:
        if cur and w[1] - cur[-1][2] > GAP:
            out.append(cur)
            cur = []
        cur.append(w)
    if cur:
        out.append(cur)
    return [
        u
        for u in out
        if len(u) >= min_words and u[-1][0].rstrip()[-1:] in ".?!" and u[-1][2] - u[0][1] <= MAX_UTTERANCE
    ]


def frame_db(x: np.ndarray) -> np.ndarray:
    n = len(x) // 80
    return np.asarray(10 * np.log10((x[: n * 80].reshape(n, 80) ** 2).mean(axis=1) + 1e-10))


def speech_bounds(db: np.ndarray, peak: float, a: int, b: int) -> tuple[int, int] | None:
    """First and last+1 10 ms frame in [a, b) louder than peak - FLOOR_DB."""
    loud = np.nonzero(db[a:b] > peak - FLOOR_DB)[0]
    if len(loud) == 0:
        return None
    return a + int(loud[0]), a + int(loud[-1]) + 1


def build_call(
    rng: np.random.Generator, x: np.ndarray, utt: Words, speaker: str
) -> tuple[str, Rendered] | None:
    db = frame_db(x)
    n = len(db)
    a = max(0, int((utt[0][1] - 0.15) * 100))
    b = min(n, int((utt[-1][2] + 0.2) * 100))
    peak = float(db[a:b].max()) if b > a else -100.0
    bounds = speech_bounds(db, peak, a, b)
    if bounds is None:
        return None
    s0, s1 = bounds
    family = "cut" if rng.random() < 0.6 and len(utt) >= 3 else "complete"
    pieces: list[tuple[int, int, Words]] = []
    if family == "cut":
        k = int(rng.integers(1, len(utt) - 1))  # cut after word k-1 (index), before word k
        lo = int(utt[k - 1][2] * 100) - 3
        hi = int(utt[k][1] * 100) + 3
        lo, hi = max(s0 + 10, lo), min(s1 - 10, max(hi, lo + 1))
        if hi <= lo:
            return None
        cut = lo + int(np.argmin(db[lo:hi]))
        head, tail = speech_bounds(db, peak, s0, cut), speech_bounds(db, peak, cut, s1)
        if head is None or tail is None:
            return None
        pieces = [(head[0], head[1], utt[:k]), (tail[0], tail[1], utt[k:])]
    else:
        pieces = [(s0, s1, utt)]
    audio: list[np.ndarray] = [np.zeros(int(SR * rng.uniform(0.3, 0.8)), dtype=np.float32)]
    t = len(audio[0]) / SR
    segments: list[Segment] = []
    level = np.float32(10 ** (rng.uniform(-3, 3) / 20))
    for i, (f0, f1, ws) in enumerate(pieces):
        last = i == len(pieces) - 1
        clip = x[f0 * 80 : f1 * 80].astype(np.float32) * level
        pause = 0.0 if last else float(rng.uniform(0.5, 1.8))
        text = " ".join(w for w, _, _ in ws)
        segments.append(Segment(t, t + len(clip) / SR, text, last, False, pause))
        audio.append(clip)
        t += len(clip) / SR
        if pause:
            audio.append(np.zeros(int(SR * pause), dtype=np.float32))
            t += int(SR * pause) / SR
    line, params = to_line(rng, audio, 3.0)
    voice = f"real:{speaker}"
    return family, Rendered(line, segments, voice, 100, 100, {"channel": params.to_dict(), "engine": "real"})


def sources(prompts: int, seed: int) -> list[Source]:
    files = sorted((ASTERISK / "en_US_f_Allison").rglob("*.wav"))
    files = [f for f in files if not set(f.parts) & {"digits", "letters", "phonetic", "silence"}]
    # longer prompts first: sentences, not single words
    files.sort(key=lambda f: -f.stat().st_size)
    picked = [Source("asterisk-allison-en", f) for f in files[:prompts]]
    return [*picked, *CODEC2_SOURCES]


BATCH_S = 24.0  # s of prompts per Whisper pass (its window is 30 s; one pass costs the same)
BATCH_GAP = 1.0


def transcribed(srcs: list[Source], transcribe: Transcriber) -> Iterator[tuple[str, np.ndarray, Words]]:
    """(speaker, audio, words) per recording. Short recordings of one speaker are transcribed together,
    joined by 1 s of silence (a Whisper pass costs the same for 1 s or 30 s), the words then split back
    by time."""
    batch: list[tuple[Source, np.ndarray]] = []

    def flush() -> Iterator[tuple[str, np.ndarray, Words]]:
        gap = np.zeros(int(BATCH_GAP * SR), dtype=np.float32)
        joined = np.concatenate([p for _, x in batch for p in (x, gap)])
        words = transcribe.words(joined)
        t = 0.0
        for src, x in batch:
            end = t + len(x) / SR
            own = [(w, a - t, b - t) for w, a, b in words if t <= (a + b) / 2 < end]
            yield src.speaker, x, own
            t = end + BATCH_GAP
        batch.clear()

    for src in srcs:
        x = read(src.path, src.start, src.end)
        if len(x) / SR > BATCH_S:
            yield src.speaker, x, transcribe.words(x)
            continue
        if batch and (
            batch[0][0].speaker != src.speaker
            or sum(len(b) / SR + BATCH_GAP for _, b in batch) + len(x) / SR > BATCH_S
        ):
            yield from flush()
        batch.append((src, x))
    if batch:
        yield from flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1313)
    ap.add_argument("--prompts", type=int, default=160, help="Allison's longest English prompts")
    ap.add_argument("--min-words", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--codec2-repeats", type=int, default=3, help="calls per codec2 sentence")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    srcs = [s for s in sources(args.prompts, args.seed) if s.path.exists()]
    transcribe = Transcriber(args.threads)
    calls: list[tuple[str, str, Rendered]] = []
    for speaker, x, words in tqdm(
        transcribed(srcs, transcribe), desc="real end-of-turn calls", file=sys.stderr
    ):
        # codec2 speakers have few sentences each: several calls per sentence (other cuts and pauses)
        repeats = 1 if speaker.startswith("asterisk") else args.codec2_repeats
        for utt in utterances(words, args.min_words):
            for _ in range(repeats):
                rng = np.random.default_rng(np.random.SeedSequence([args.seed, len(calls)]))
                made = build_call(rng, x, utt, speaker)
                if made is not None:
                    calls.append((speaker, *made))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as fh:
        pickle.dump(calls, fh)
    by: dict[str, list[int]] = {}
    for speaker, family, _ in calls:
        c = by.setdefault(speaker, [0, 0])
        c[family == "cut"] += 1
    for speaker, (complete, cut) in sorted(by.items()):
        print(f"  {speaker:24s} complete {complete:3d}  cut {cut:3d}", file=sys.stderr)
    print(f"{len(calls)} calls -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
