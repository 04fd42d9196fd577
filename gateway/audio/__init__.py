"""Audio primitives: G.711 codecs, resampling, 20 ms frames, a sample ring buffer and WAV I/O."""

from gateway.audio.frames import FRAME_MS, FRAME_SECONDS, Framer, Pcm, iter_frames, samples_per_frame
from gateway.audio.g711 import (
    Law,
    alaw_decode,
    alaw_encode,
    decode,
    encode,
    ulaw_decode,
    ulaw_encode,
)
from gateway.audio.resample import Quality, StreamResampler, resample
from gateway.audio.ringbuffer import RingBuffer
from gateway.audio.wav import AudioFormatError, WavAudio, read_wav, write_wav

__all__ = [
    "FRAME_MS",
    "FRAME_SECONDS",
    "AudioFormatError",
    "Framer",
    "Law",
    "Pcm",
    "Quality",
    "RingBuffer",
    "StreamResampler",
    "WavAudio",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "iter_frames",
    "read_wav",
    "resample",
    "samples_per_frame",
    "ulaw_decode",
    "ulaw_encode",
    "write_wav",
]
