"""Scoring logic of `gateway eval-bargein` on synthetic labels and replay events."""

from __future__ import annotations

import json
import math

import pytest

from gateway.eval_bargein import (
    Decision,
    Label,
    ReplayCost,
    Turn,
    aggregate,
    by_group,
    false_trigger_rejection,
    group_table,
    parse_replay,
    score_file,
    table,
)

TURNS = [Turn(1.0, 8.0), Turn(10.0, 17.0), Turn(19.0, 26.0), Turn(28.0, 35.0), Turn(37.0, 44.0)]
LABELS = [
    Label("interruption", 3.0, 4.0, 0),
    Label("backchannel", 12.0, 12.4, 1),
    Label("noise", 21.0, 21.5, 2),
    Label("silent", 28.0, 35.0, 3),
    Label("interruption", 37.5, 38.5, 4, in_start_cooldown=True),
]


def test_perfect_detector() -> None:
    s = score_file(TURNS, LABELS, [Decision(3.25, 3.05), Decision(37.9, 37.55, "vad")])
    m = aggregate([(LABELS, s)])
    assert m.precision == 1.0 and m.recall == 1.0 and m.recall_in_cooldown == 1.0
    assert m.backchannel_false_rate == 0.0 and m.noise_false_rate == 0.0 and m.echo_triggered == 0
    assert m.latency_median_ms == pytest.approx(250.0)
    assert m.interruptions == 1 and m.backchannels == 1 and m.noises == 1 and m.silent_turns == 1


def test_false_triggers_echo_and_duplicates() -> None:
    decisions = [
        Decision(3.6, 3.1),  # true positive, latency 600 ms
        Decision(4.2, 4.1),  # duplicate on the same interruption: not counted twice
        Decision(10.3, 10.2),  # echo at the start of an agent turn: inside the cooldown, VAD's call
        Decision(12.5, 12.05),  # backchannel false trigger
        Decision(21.6, 21.1),  # noise false trigger
        Decision(30.2, 30.0),  # echo while the caller is silent for the whole turn
        Decision(23.0, 23.0),  # echo/noise only, in a turn where the caller made a noise earlier
    ]
    s = score_file(TURNS, LABELS, decisions)
    assert s.echo_in_cooldown == 1 and s.echo_triggered == 2 and s.echo_silent_turns == 1
    m = aggregate([(LABELS, s)])
    assert m.recall == 1.0
    assert m.precision == pytest.approx(1 / 5)  # the cooldown decision is not the model's
    assert m.backchannel_false_rate == 1.0 and m.noise_false_rate == 1.0
    assert m.echo_triggered == 2 and m.echo_silent_turns == 1 and m.echo_in_cooldown == 1
    assert m.latency_median_ms == pytest.approx(600.0)  # from the labelled onset, not the VAD one
    assert m.recall_in_cooldown == 0.0
    # With a 5 s cooldown every unmatched onset above falls inside its turn's cooldown.
    s5 = score_file(TURNS, LABELS, decisions, cooldown=5.0)
    assert s5.echo_in_cooldown == 3 and s5.echo_triggered == 0


def test_onset_slack_and_missed_interruption() -> None:
    # A VAD onset 0.2 s before the labelled onset still matches; one 0.4 s before does not.
    s = score_file(TURNS, LABELS, [Decision(3.1, 2.8)])
    assert s.fired[0] == 3.1
    s = score_file(TURNS, LABELS, [Decision(3.1, 2.5)])
    assert s.fired[0] is None and s.echo_triggered == 1
    m = aggregate([(LABELS, score_file(TURNS, LABELS, []))])
    assert m.recall == 0.0 and math.isnan(m.precision) and math.isnan(m.latency_median_ms)


def test_latency_percentiles_over_files() -> None:
    files = []
    for k in range(20):
        labels = [Label("interruption", 3.0, 4.0, 0)]
        files.append((labels, score_file(TURNS[:1], labels, [Decision(3.0 + 0.1 + 0.01 * k, 3.0)])))
    m = aggregate(files)
    assert m.latency_median_ms == pytest.approx(195.0)
    assert m.latency_p95_ms == pytest.approx(280.5)


def test_vad_false_trigger_rejection() -> None:
    vad = score_file(
        TURNS, LABELS, [Decision(3.6, 3.1), Decision(12.5, 12.05), Decision(21.6, 21.1), Decision(30.2, 30.0)]
    )
    adaptive = score_file(TURNS, LABELS, [Decision(3.4, 3.1), Decision(21.6, 21.1)])
    frac, n = false_trigger_rejection([(LABELS, adaptive)], [(LABELS, vad)])
    assert n == 3 and frac == pytest.approx(2 / 3)


def test_parse_replay_and_table() -> None:
    lines = [
        json.dumps({"file": "a.wav", "t": 1.0, "type": "agent_speech_start"}),
        json.dumps(
            {
                "file": "a.wav",
                "t": 3.3,
                "type": "interruption",
                "onset": 3.05,
                "latency_ms": 250,
                "mode": "adaptive",
                "probability": 0.9,
            }
        ),
        json.dumps(
            {
                "file": "b.wav",
                "t": 5.0,
                "type": "backchannel",
                "onset": 4.6,
                "duration": 0.3,
                "probability": 0.1,
            }
        ),
        "",
    ]
    parsed = parse_replay(lines)
    assert parsed["a.wav"] == [Decision(3.3, 3.05, "adaptive", 0.9)]
    assert parsed["b.wav"] == []
    m = aggregate([(LABELS, score_file(TURNS, LABELS, parsed["a.wav"]))])
    text = table({"adaptive": m, "vad": m}, {"adaptive": (1.0, 2)})
    assert "precision" in text and "100.0 % of 2" in text


def test_per_engine_and_voice_rows() -> None:
    turns = [Turn(1.0, 8.0), Turn(10.0, 17.0), Turn(19.0, 26.0)]
    labels = [
        Label("interruption", 3.0, 4.0, 0, voice="flite:awb"),
        Label("backchannel", 12.0, 12.4, 1, voice="festival:ked_diphone"),
        Label("interruption", 21.0, 22.0, 2, voice="flite:slt"),
        Label("noise", 5.0, 5.5, 0),
    ]
    # flite:awb interrupted (300 ms), festival's backchannel interrupted, flite:slt missed, noise ignored,
    # and one echo-only decision that belongs to no voice.
    s = score_file(turns, labels, [Decision(3.3, 3.1), Decision(12.3, 12.1), Decision(15.0, 15.0)])
    engines = by_group([(labels, s)])
    assert set(engines) == {"flite", "festival"}
    assert engines["flite"].interruptions == 2 and engines["flite"].recall == 0.5
    assert engines["flite"].precision == 1.0 and engines["flite"].latency_median_ms == pytest.approx(300.0)
    assert engines["festival"].backchannel_false_rate == 1.0 and engines["festival"].precision == 0.0
    voices = by_group([(labels, s)], key="voice")
    assert voices["flite:slt"].recall == 0.0 and voices["flite:awb"].recall == 1.0
    text = group_table(engines, engines, "caller engine")
    assert "festival" in text.splitlines()[2] and "flite" in text.splitlines()[3]


def test_three_mode_table_and_lexical_cost() -> None:
    m = aggregate([(LABELS, score_file(TURNS, LABELS, [Decision(3.3, 3.05)]))])
    cost = ReplayCost(decode_seconds=[0.02, 0.04, 0.2], call_seconds=100.0)
    text = table({"adaptive": m, "adaptive_lexical": m, "vad": m}, {"adaptive": (1.0, 2)}, cost=cost)
    head = text.splitlines()[1]
    assert head.index("adaptive ") < head.index("adaptive_lexical") < head.index("vad")
    assert "40 / 184 ms" in text and "2.60 ms (3 decodes)" in text
    rows = group_table({"x": m}, {"x": m}, "caller engine", lexical={"x": m})
    assert "a / l / v" in rows
