"""The telephony channel simulation of the barge-in recipe (models/bargein/channel.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `models` is a folder of the repository

from models.bargein.channel import (
    ChannelParams,
    band_limit,
    simulate,
    ulaw_decode,
    ulaw_encode,
    ulaw_levels,
)

SR = 8000


def _params(**kw: object) -> ChannelParams:
    base = dict(
        caller_dbfs=-20.0,
        snr_db=30.0,
        background="white",
        echo=True,
        echo_delay_s=0.1,
        echo_db=-12.0,
        echo_decay_s=0.02,
        band_lo=300.0,
        band_hi=3400.0,
        loss_rate=0.0,
        plc=False,
    )
    base.update(kw)
    return ChannelParams(**base)  # type: ignore[arg-type]


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_ulaw_matches_reference_on_all_int16() -> None:
    import audioop  # stdlib up to 3.12; the audioop-lts dependency from 3.13

    x = np.arange(-32768, 32768, dtype=np.int16)
    ref = np.frombuffer(audioop.lin2ulaw(x.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(ulaw_encode(x), ref)
    codes = np.arange(256, dtype=np.uint8)
    ref_dec = np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(ulaw_decode(codes), ref_dec)


def test_band_limit_removes_out_of_band_energy() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SR * 2).astype(np.float32)
    y = band_limit(x)
    inband = _band_energy(y, 400, 3300) / 2900
    assert _band_energy(y, 0, 230) / 230 < 1e-6 * inband
    assert _band_energy(y, 3470, 4000) / 530 < 1e-6 * inband
    assert _band_energy(y, 400, 3300) > 0.95 * _band_energy(x, 400, 3300)


def test_simulated_line_is_band_limited_and_mu_law() -> None:
    rng = np.random.default_rng(2)
    caller = rng.standard_normal(SR * 2).astype(np.float32) * 0.1
    agent = rng.standard_normal(SR * 2).astype(np.float32) * 0.1
    line, ref, _ = simulate(caller, agent, np.random.default_rng(3), params=_params())
    assert line.dtype == np.int16 and ref.dtype == np.int16
    levels = set(ulaw_levels().tolist())
    assert set(np.unique(line).tolist()) <= levels
    assert set(np.unique(ref).tolist()) <= levels
    # μ-law quantisation noise is broadband but ~38 dB below the signal; the band edges are clear.
    inband = _band_energy(line, 400, 3300) / 2900
    assert _band_energy(line, 0, 150) / 150 < 1e-2 * inband
    assert _band_energy(line, 3600, 4000) / 400 < 1e-2 * inband


def test_echo_of_agent_reaches_the_caller_line_delayed() -> None:
    rng = np.random.default_rng(4)
    agent = np.zeros(SR * 2, dtype=np.float32)
    agent[SR // 2 : SR // 2 + 800] = rng.standard_normal(800).astype(np.float32) * 0.3
    silent_caller = np.zeros_like(agent)
    line, _, p = simulate(
        silent_caller, agent, np.random.default_rng(5), params=_params(snr_db=60.0), speech_level_ref=0.1
    )
    env = np.abs(line.astype(np.float64))
    start = int(np.argmax(env > 0.2 * env.max()))
    assert abs(start - (SR // 2 + int(p.echo_delay_s * SR))) < 80
    no_echo, _, _ = simulate(
        silent_caller,
        agent,
        np.random.default_rng(5),
        params=_params(snr_db=60.0, echo=False),
        speech_level_ref=0.1,
    )
    assert np.abs(no_echo.astype(np.float64)).max() < 0.05 * env.max()


def test_packet_loss_zero_fills_frames() -> None:
    caller = np.full(SR, 0.2, dtype=np.float32) * np.sin(np.arange(SR) * 2 * np.pi * 1000 / SR).astype(
        np.float32
    )
    line, _, _ = simulate(
        caller,
        np.zeros(SR, np.float32),
        np.random.default_rng(6),
        params=_params(loss_rate=0.3, snr_db=80.0, echo=False),
    )
    frames = line.reshape(-1, 160)
    silent = np.sum(np.abs(frames).max(axis=1) <= 8)
    assert 5 <= silent <= 30


def test_simulation_is_deterministic_with_a_seed() -> None:
    rng = np.random.default_rng(7)
    caller = rng.standard_normal(SR).astype(np.float32) * 0.1
    agent = rng.standard_normal(SR).astype(np.float32) * 0.1
    a = simulate(caller, agent, np.random.default_rng(42))
    b = simulate(caller, agent, np.random.default_rng(42))
    c = simulate(caller, agent, np.random.default_rng(43))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    assert not np.array_equal(a[0], c[0])
