"""`gateway calls show ID`: one call as a text timeline (who spoke when, each overlap and its verdict,
each turn and its latencies), on the engine's timeline (seconds since the call's audio began)."""

from __future__ import annotations

from gateway.metrics.queries import CallDetail
from gateway.metrics.tables import InterruptionEvent, Turn


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes):02d}:{rest:06.3f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _event_line(e: InterruptionEvent) -> str:
    if e.kind in ("interruption", "backchannel"):
        prob = "" if e.probability is None else f", p={e.probability:.2f}"
        onset = "" if e.onset_s is None else f"overlap from {_clock(e.onset_s)}"
        line = f"{onset} -> {e.kind.upper()} ({e.mode}{prob}, decided in {_ms(e.detection_delay_ms)}"
        if e.overlap_s is not None:
            line += f", overlap {e.overlap_s:.2f} s"
        if e.requests:
            line += f", {e.requests} detector requests"
        line += ")"
        if e.agent_action:
            line += f"; agent {e.agent_action}"
        if e.agent_text_heard:
            line += f'; caller heard: "{e.agent_text_heard}"'
        return line
    if e.kind == "resumed":
        return "false interruption: caller went quiet, agent RESUMED"
    return f"false interruption (agent {e.agent_action or 'stopped'})"


def _turn_line(t: Turn) -> str:
    parts = [f"eou {_ms(t.eou_delay_ms)}"]
    for label, value in (
        ("stt final", t.stt_final_latency_ms),
        ("llm ttft", t.llm_ttft_ms),
        ("tts first audio", t.tts_first_audio_ms),
        ("response", t.response_latency_ms),
    ):
        if value is not None:
            parts.append(f"{label} {_ms(value)}")
    text = f' "{t.transcript}"' if t.transcript else ""
    barge = " (barged in)" if t.interrupted_agent else ""
    return f"END OF TURN #{t.turn_index}{barge}{text}: " + ", ".join(parts)


def render_timeline(detail: CallDetail) -> str:
    call = detail.call
    lines = [
        f"call {call.id}  {call.call_id}  edge={call.edge}  agent={call.agent}",
        f"  caller {call.caller or '-'} -> callee {call.callee or '-'}  codec {call.codec or '-'}",
        f"  started  {call.started_at.isoformat()}",
        f"  answered {call.answered_at.isoformat() if call.answered_at else '-'}",
        f"  ended    {call.ended_at.isoformat() if call.ended_at else '- (open)'}",
        f"  reason   {call.end_reason or '-'}",
    ]
    if call.ended_at:
        lines.append(f"  duration {(call.ended_at - call.started_at).total_seconds():.1f} s")
    lines.append("")
    rows: list[tuple[float, int, str]] = []
    for s in detail.segments:
        who = "AGENT " if s.speaker == "agent" else "CALLER"
        rows.append((s.start_s, 0, f"{who} speaks until {_clock(s.end_s)} ({s.end_s - s.start_s:.2f} s)"))
    for e in detail.events:
        rows.append((e.offset_s, 1, _event_line(e)))
    for t in detail.turns:
        rows.append((t.offset_s, 2, _turn_line(t)))
    for c in detail.call_events:
        how = f" ({c.detail})" if c.detail else ""
        rows.append(
            (c.offset_s, 3, f"CALLER pressed {c.value}{how}" if c.kind == "dtmf" else f"{c.kind} {c.value}")
        )
    if not rows:
        lines.append("  (no speech, overlaps or turns recorded)")
    for offset, _, text in sorted(rows, key=lambda r: (r[0], r[1])):
        lines.append(f"  {_clock(offset)}  {text}")
    if detail.usage:
        lines.append("")
        lines.append("usage:")
        for u in detail.usage:
            lines.append(
                f"  {u.service:<8} {u.provider}{'/' + u.model if u.model else ''}: {u.requests} requests, "
                f"{u.audio_s:.1f} s audio, {u.characters} chars, {u.input_tokens}+{u.output_tokens} tokens"
            )
    return "\n".join(lines) + "\n"


__all__ = ["render_timeline"]
