"""Telephony channel simulation for the barge-in corpus.

What the gateway receives from a phone is not what the caller said: the caller's voice (and the room)
is mixed with an echo of the agent's own voice coming back from the far-end hybrid or handset,
band-limited to 300–3400 Hz, scaled by an unknown gain, μ-law coded and sent as 20 ms packets, some
of which are lost. `simulate` applies all of that, with every random choice drawn from the caller's
`numpy.random.Generator` (so a seed fixes the output) and returned in `ChannelParams`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.audio.g711 import ulaw_decode, ulaw_encode
from models.bargein.synth import background

SR = 8000
F32 = npt.NDArray[np.float32]
I16 = npt.NDArray[np.int16]


# -- G.711 μ-law: the gateway's own bit-exact codec (what a real call goes through) ----------------


def ulaw_levels() -> I16:
    """The 256 values a μ-law decoder can output."""
    return ulaw_decode(np.arange(256, dtype=np.uint8))


__all__ = [
    "ChannelParams",
    "band_limit",
    "draw_params",
    "simulate",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_levels",
]


# -- filters --------------------------------------------------------------------------------------


def band_limit(x: F32, lo: float = 300.0, hi: float = 3400.0, rolloff: float = 60.0) -> F32:
    """Zero-phase telephone band-pass in the frequency domain (raised-cosine edges `rolloff` wide)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    g = np.ones_like(f)
    g[f <= lo - rolloff] = 0
    g[f >= hi + rolloff] = 0
    low = (f > lo - rolloff) & (f < lo)
    g[low] = 0.5 - 0.5 * np.cos(np.pi * (f[low] - (lo - rolloff)) / rolloff)
    high = (f > hi) & (f < hi + rolloff)
    g[high] = 0.5 + 0.5 * np.cos(np.pi * (f[high] - hi) / rolloff)
    return np.fft.irfft(spec * g, n=len(x)).astype(np.float32)


def rms(x: F32) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2) + 1e-20))


def active_rms(x: F32) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest (speech level, ignoring pauses)."""
    n = len(x) // 80
    if n == 0:
        return rms(x)
    e = (x[: n * 80].astype(np.float64).reshape(n, 80) ** 2).mean(axis=1)
    act = e[e > e.max() * 1e-3]
    return float(np.sqrt(act.mean() + 1e-20))


@dataclass(frozen=True)
class ChannelParams:
    caller_dbfs: float  # active level of the caller's sound on the line
    snr_db: float  # caller speech level vs stationary background noise
    background: str
    echo: bool
    echo_delay_s: float
    echo_db: float  # echo level relative to the agent playout level
    echo_decay_s: float
    band_lo: float
    band_hi: float
    loss_rate: float
    plc: bool  # lost packets repeated (True) or zero-filled (False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def draw_params(rng: np.random.Generator, echo_prob: float = 0.85) -> ChannelParams:
    return ChannelParams(
        caller_dbfs=float(rng.uniform(-34, -12)),
        snr_db=float(rng.uniform(5, 40)),
        background=str(rng.choice(["white", "pink", "brown", "hum"], p=[0.2, 0.4, 0.3, 0.1])),
        echo=bool(rng.random() < echo_prob),
        echo_delay_s=float(rng.uniform(0.01, 0.25)),
        echo_db=float(rng.uniform(-40, -8)),
        echo_decay_s=float(rng.uniform(0.005, 0.06)),
        band_lo=float(rng.uniform(250, 350)),
        band_hi=float(rng.uniform(3200, 3500)),
        loss_rate=float(rng.choice([0.0, rng.uniform(0.0, 0.03)])),
        plc=bool(rng.random() < 0.5),
    )


def echo_path(agent: F32, p: ChannelParams, rng: np.random.Generator) -> F32:
    """The agent's voice as it comes back on the caller channel: filtered, smeared, delayed, attenuated."""
    if not p.echo:
        return np.zeros_like(agent)
    n_ir = max(1, int(SR * p.echo_decay_s * 4))
    ir = rng.standard_normal(n_ir) * np.exp(-np.arange(n_ir) / (SR * p.echo_decay_s))
    ir[0] = 3.0 * np.abs(ir).max()
    ir = ir / np.sqrt(np.sum(ir**2))
    e = np.convolve(band_limit(agent, 200, rng.uniform(2500, 3600)), ir)[: len(agent)]
    d = int(SR * p.echo_delay_s)
    e = np.concatenate([np.zeros(d), e])[: len(agent)]
    level = active_rms(agent) if np.any(agent) else 0.0
    return (e * (level * 10 ** (p.echo_db / 20) / (active_rms(e.astype(np.float32)) + 1e-12))).astype(
        np.float32
    )


def packet_loss(x: I16, rate: float, plc: bool, rng: np.random.Generator) -> I16:
    out = x.copy()
    if rate <= 0:
        return out
    frame = SR // 50
    for i in range(len(x) // frame):
        if rng.random() < rate:
            sl = slice(i * frame, (i + 1) * frame)
            out[sl] = out[(i - 1) * frame : i * frame] if plc and i > 0 else 0
    return out


def to_line(x: F32) -> I16:
    """Float in [-1, 1] to int16 through a μ-law codec."""
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    return ulaw_decode(ulaw_encode(pcm))


def simulate(
    caller: F32,
    agent: F32,
    rng: np.random.Generator,
    params: ChannelParams | None = None,
    speech_level_ref: float | None = None,
) -> tuple[I16, I16, ChannelParams]:
    """Caller line (int16, μ-law levels) and agent playout reference for clean `caller` and `agent`.

    `caller` is the caller's own sound (speech or an event; zeros for none) at an arbitrary level; it is
    scaled so its active level is `params.caller_dbfs`. `speech_level_ref` (active RMS of the caller's
    speech, in the same units as `caller`) sets the background level when `caller` is not speech.
    """
    p = params or draw_params(rng)
    n = len(caller)
    target = 10 ** (p.caller_dbfs / 20)
    level = (
        speech_level_ref if speech_level_ref is not None else active_rms(caller) if np.any(caller) else 0.1
    )
    gain = target / max(level, 1e-9)
    voice = caller * gain
    bg = background(rng, n, p.background)
    bg = bg * (target * 10 ** (-p.snr_db / 20))
    mix = voice + bg + echo_path(agent, p, rng)
    line = to_line(band_limit(mix.astype(np.float32), p.band_lo, p.band_hi))
    line = packet_loss(line, p.loss_rate, p.plc, rng)
    ref = to_line(agent)
    return line, ref, p
