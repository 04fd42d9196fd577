"""WAV I/O: int16 round trips, G.711 files with the exact wire bytes, conversions and clear errors."""

from __future__ import annotations

import struct
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from audio_fixtures import espeak  # tests/ is on sys.path under pytest

from gateway.audio import AudioFormatError, read_wav, ulaw_decode, write_wav
from gateway.audio.g711 import alaw_decode, alaw_encode, ulaw_encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # reference only


def noise(n: int, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (n,) if channels is None else (n, channels)
    return np.random.default_rng(seed).integers(-32768, 32768, shape, dtype=np.int16)


def data_chunk(path: Path) -> bytes:
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    pos = 12
    while pos < len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        if cid == b"data":
            return raw[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def test_pcm16_mono_round_trip_and_shape(tmp_path: Path) -> None:
    pcm = noise(1234)
    write_wav(tmp_path / "m.wav", pcm, 8000)
    got = read_wav(tmp_path / "m.wav")
    assert (got.rate, got.subtype, got.pcm.dtype, got.pcm.shape) == (8000, "PCM_16", np.int16, (1234, 1))
    np.testing.assert_array_equal(got.pcm[:, 0], pcm)
    assert got.channels == 1 and got.frames == 1234 and got.duration == pytest.approx(1234 / 8000)
    with wave.open(str(tmp_path / "m.wav")) as w:  # an independent reader agrees
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        np.testing.assert_array_equal(np.frombuffer(w.readframes(w.getnframes()), np.int16), pcm)


def test_pcm16_stereo_keeps_channel_order(tmp_path: Path) -> None:
    caller, agent = noise(800, seed=1), np.zeros(800, np.int16)
    write_wav(tmp_path / "s.wav", np.stack([caller, agent], axis=1), 16000)
    got = read_wav(str(tmp_path / "s.wav"))
    assert got.pcm.shape == (800, 2) and got.rate == 16000
    np.testing.assert_array_equal(got.pcm[:, 0], caller)
    assert not got.pcm[:, 1].any()


@pytest.mark.parametrize(
    ("subtype", "enc", "ref_enc", "ref_dec"),
    [
        ("ULAW", ulaw_encode, audioop.lin2ulaw, audioop.ulaw2lin),
        ("ALAW", alaw_encode, audioop.lin2alaw, audioop.alaw2lin),
    ],
)
def test_g711_wav_carries_the_exact_code_words(tmp_path: Path, subtype, enc, ref_enc, ref_dec) -> None:
    pcm = np.concatenate([np.arange(-32768, 32768, dtype=np.int16), noise(999, seed=3)])  # odd length
    path = tmp_path / f"{subtype}.wav"
    write_wav(path, pcm, 8000, subtype=subtype)
    assert data_chunk(path) == ref_enc(pcm.tobytes(), 2)  # the bytes RTP would carry
    # libsndfile (an independent decoder) reads it back as the G.711 reconstruction.
    info = sf.info(str(path))
    assert (info.format, info.subtype, info.frames, info.samplerate) == ("WAV", subtype, len(pcm), 8000)
    got = read_wav(path)
    assert got.subtype == subtype and got.pcm.shape == (len(pcm), 1)
    np.testing.assert_array_equal(
        got.pcm[:, 0], np.frombuffer(ref_dec(ref_enc(pcm.tobytes(), 2), 2), np.int16)
    )


def test_g711_stereo_wav_is_interleaved(tmp_path: Path) -> None:
    pcm = noise(500, channels=2, seed=4)
    write_wav(tmp_path / "a.wav", pcm, 8000, subtype="alaw")
    assert data_chunk(tmp_path / "a.wav") == alaw_encode(pcm).tobytes()
    got = read_wav(tmp_path / "a.wav")
    np.testing.assert_array_equal(got.pcm, alaw_decode(alaw_encode(pcm)))


def test_reads_ulaw_written_by_libsndfile(tmp_path: Path) -> None:
    pcm = noise(300, seed=5)
    sf.write(str(tmp_path / "x.wav"), pcm, 8000, subtype="ULAW")
    got = read_wav(tmp_path / "x.wav")
    assert got.subtype == "ULAW"
    codes = np.frombuffer(data_chunk(tmp_path / "x.wav"), np.uint8)
    np.testing.assert_array_equal(got.pcm[:, 0], ulaw_decode(codes))  # same decoder as our wire path


@pytest.mark.parametrize(("subtype", "tolerance"), [("PCM_U8", 256), ("PCM_24", 1), ("PCM_32", 1)])
def test_other_integer_subtypes_are_converted_to_int16(tmp_path: Path, subtype: str, tolerance: int) -> None:
    pcm = noise(1000, seed=6)
    sf.write(str(tmp_path / "i.wav"), pcm, 16000, subtype=subtype)
    got = read_wav(tmp_path / "i.wav")
    assert got.subtype == subtype and got.pcm.dtype == np.int16
    assert np.abs(got.pcm[:, 0].astype(int) - pcm).max() <= tolerance


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_wavs_are_scaled_rounded_and_clipped(tmp_path: Path, subtype: str) -> None:
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0, 1 / 32768, 0.49 / 32768])
    sf.write(str(tmp_path / "f.wav"), x, 8000, subtype=subtype)
    got = read_wav(tmp_path / "f.wav")
    assert got.subtype == subtype
    assert got.pcm[:, 0].tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 1, 0]


def test_not_a_wav(tmp_path: Path) -> None:
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 20)
    with pytest.raises(AudioFormatError, match=r"notes\.wav"):
        read_wav(text)
    flac = tmp_path / "speech.flac"
    sf.write(str(flac), noise(100), 8000, format="FLAC")
    with pytest.raises(AudioFormatError, match=r"speech\.flac: not a WAV.*FLAC"):
        read_wav(flac)
    with pytest.raises(FileNotFoundError, match=r"missing\.wav"):
        read_wav(tmp_path / "missing.wav")


def test_truncated_header_is_a_format_error(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    write_wav(good, noise(100), 8000)
    bad = tmp_path / "cut.wav"
    bad.write_bytes(good.read_bytes()[:20])
    with pytest.raises(AudioFormatError, match=r"cut\.wav") as err:
        read_wav(bad)
    assert isinstance(err.value, ValueError)


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="int16"):
        write_wav(tmp_path / "a.wav", np.zeros(10, np.float32), 8000)  # type: ignore[arg-type]
    with pytest.raises(AudioFormatError, match="VORBIS"):
        write_wav(tmp_path / "b.wav", np.zeros(10, np.int16), 8000, subtype="VORBIS")
    with pytest.raises(AudioFormatError, match="rate"):
        write_wav(tmp_path / "c.wav", np.zeros(10, np.int16), 0)
    with pytest.raises(AudioFormatError, match="shape"):
        write_wav(tmp_path / "d.wav", np.zeros((2, 3, 4), np.int16), 8000)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_speech_survives_a_ulaw_wav_round_trip(tmp_path: Path) -> None:

    speech = espeak("please hold while I check the appointment book")
    write_wav(tmp_path / "speech.wav", speech, 8000, subtype="ULAW")
    got = read_wav(tmp_path / "speech.wav").pcm[:, 0].astype(np.float64)
    ref = speech.astype(np.float64)
    snr = 10 * np.log10(np.sum(ref**2) / np.sum((got - ref) ** 2))
    assert snr > 30  # G.711 gives about 38 dB on speech
