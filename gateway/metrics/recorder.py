"""CallRecorder: one call's life and its TurnEngine events, as metric records.

A live session and `gateway replay --db` use it the same way::

    recorder = CallRecorder(info, writer.emit)
    recorder.started()                 # INVITE / offer received
    recorder.answered()                # audio flows: the engine's t = 0
    for events in ...:                 # whatever the engine returned for one input
        recorder.on_events(events, agent_text_heard=playout.heard_text())
    recorder.turn_latencies(llm_ttft_ms=..., tts_first_audio_ms=...)   # latest turn, when known
    recorder.usage("llm", "openai-compatible", "model", requests=1, input_tokens=...)
    recorder.ended("caller_hangup")

Rows: one `interruption_events` row per Interruption, Backchannel and FalseInterruption; one `turns` row
per EndOfTurn; one `speech_segments` row per caller or agent utterance; `usage` rows at the end. The
agent's reaction to an interruption (pause or stop, then maybe resume) updates that interruption's
`agent_action`, so it ends up saying what finally happened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.calls import CallInfo
from gateway.metrics.prometheus import GatewayMetrics
from gateway.metrics.records import InsertRow, Record, UpdateRow, new_uid
from gateway.metrics.tables import utc_now
from gateway.turns.events import (
    AgentSpeechEnd,
    AgentSpeechStart,
    Backchannel,
    EndOfTurn,
    Event,
    FalseInterruption,
    Interruption,
    PausePlayout,
    ResumePlayout,
    StopPlayout,
    UserSpeechEnd,
    UserSpeechStart,
)

Emit = Callable[[Record], None]

# How an interruption's `agent_action` may move on: a pause ends in a stop or a resume.
_NEXT_ACTIONS: dict[str | None, tuple[str, ...]] = {
    None: ("paused", "stopped"),
    "paused": ("stopped", "resumed"),
}


@dataclass
class _Usage:
    requests: int = 0
    audio_s: float = 0.0
    characters: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class _OpenInterruption:
    uid: str
    mode: str
    action: str | None


class CallRecorder:
    def __init__(
        self,
        info: CallInfo,
        emit: Emit,
        *,
        instance: str = "",
        bargein_provider: str = "local",
        metrics: GatewayMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.info = info
        self.uid = new_uid()  # the call's idempotency key
        self._emit = emit
        self._instance = instance
        self._bargein_provider = bargein_provider
        self._metrics = metrics
        self._clock = clock
        self._started_at: datetime | None = None
        self._origin: datetime | None = None
        self._ended = False
        self._turn_index = 0
        self._last_turn_uid: str | None = None
        self._interruption: _OpenInterruption | None = None
        self._user_start: float | None = None
        self._turn_user_start: float | None = None  # first caller utterance since the last turn
        self._turn_user_end: float | None = None
        self._agent_start: float | None = None
        self._usage: dict[tuple[str, str, str], _Usage] = {}

    # -- call life -----------------------------------------------------------------------------

    def started(self, at: datetime | None = None) -> None:
        self._started_at = at or self._clock()
        self._origin = self._started_at
        self._emit(
            InsertRow(
                "calls",
                {
                    "call_id": self.info.call_id,
                    "edge": self.info.edge,
                    "agent": self.info.agent,
                    "caller": self.info.caller,
                    "callee": self.info.callee,
                    "codec": self.info.codec,
                    "sample_rate": self.info.sample_rate,
                    "started_at": self._started_at,
                    "instance": self._instance,
                },
                uid=self.uid,
            )
        )
        if self._metrics:
            self._metrics.call_started()

    def answered(self, at: datetime | None = None) -> None:
        """Audio flows from here: event times `t` count from this moment."""
        self._require_started()
        self._origin = at or self._clock()
        self._emit(UpdateRow("calls", self.uid, {"answered_at": self._origin}))

    def ended(self, reason: str, at: datetime | None = None) -> None:
        """Close the call: write usage totals and the end. Calling it twice does nothing."""
        self._require_started()
        if self._ended:
            return
        self._ended = True
        for (service, provider, model), u in sorted(self._usage.items()):
            values: dict[str, Any] = {"service": service, "provider": provider, "model": model}
            values.update(u.__dict__)
            self._emit(InsertRow("usage", values, call_uid=self.uid))
        self._emit(UpdateRow("calls", self.uid, {"ended_at": at or self._clock(), "end_reason": reason}))
        if self._metrics:
            self._metrics.call_ended(reason)

    # -- engine events -------------------------------------------------------------------------

    def on_events(self, events: Iterable[Event], *, agent_text_heard: str | None = None) -> None:
        """Record what the engine returned for one input, in order. `agent_text_heard` is what the
        caller heard of the agent before it yielded (from playout), stored on an Interruption."""
        pending = list(events)
        for i, event in enumerate(pending):
            if isinstance(event, Interruption):
                action = next(
                    (
                        "paused" if isinstance(e, PausePlayout) else "stopped"
                        for e in pending[i + 1 :]
                        if isinstance(e, PausePlayout | StopPlayout)
                    ),
                    None,
                )
                self._interruption_row(event, action, agent_text_heard)
            else:
                self.on_event(event)

    def on_event(self, event: Event) -> None:
        self._require_started()
        if isinstance(event, Interruption):
            self._interruption_row(event, None, None)
            return
        if self._metrics:
            self._metrics.observe(event)
        if isinstance(event, Backchannel):
            self._event_row(
                event,
                kind="backchannel",
                mode=event.mode,
                onset_s=event.onset,
                probability=event.probability,
                detection_delay_ms=(event.t - event.onset) * 1000.0,
                requests=event.requests,
                overlap_s=event.duration,
                agent_action="continued",
            )
            self._count_bargein_requests(event.requests)
        elif isinstance(event, FalseInterruption):
            self._false_interruption(event)
        elif isinstance(event, PausePlayout | StopPlayout | ResumePlayout):
            self._agent_reaction(event)
            # the agent is audible until it yields, and again from a resume
            if isinstance(event, ResumePlayout):
                self._agent_start = event.t
            elif self._agent_start is not None:
                self._segment("agent", self._agent_start, event.t)
                self._agent_start = None
        elif isinstance(event, EndOfTurn):
            self._turn_row(event)
        elif isinstance(event, UserSpeechStart):
            self._user_start = event.t
        elif isinstance(event, UserSpeechEnd):
            start = self._user_start if self._user_start is not None else event.t - event.duration
            self._segment("caller", start, event.t)
            if self._turn_user_start is None:
                self._turn_user_start = start
            self._turn_user_end, self._user_start = event.t, None
        elif isinstance(event, AgentSpeechStart):
            self._agent_start = event.t
        elif isinstance(event, AgentSpeechEnd) and self._agent_start is not None:
            self._segment("agent", self._agent_start, event.t)
            self._agent_start = None

    def on_dtmf(self, t: float, digit: str, method: str = "") -> None:
        """A key the caller pressed at call time `t`: a `call_events` row (kind dtmf)."""
        self._require_started()
        values = {"occurred_at": self._at(t), "offset_s": t, "kind": "dtmf", "value": digit, "detail": method}
        self._emit(InsertRow("call_events", values, call_uid=self.uid))

    def turn_latencies(
        self,
        *,
        stt_final_latency_ms: float | None = None,
        llm_ttft_ms: float | None = None,
        tts_first_audio_ms: float | None = None,
        response_latency_ms: float | None = None,
    ) -> None:
        """Add the response's per-stage latencies to the latest turn (unknown ones stay as they are)."""
        if self._last_turn_uid is None:
            raise RuntimeError("turn_latencies() before any EndOfTurn")
        values = {
            k: v
            for k, v in {
                "stt_final_latency_ms": stt_final_latency_ms,
                "llm_ttft_ms": llm_ttft_ms,
                "tts_first_audio_ms": tts_first_audio_ms,
                "response_latency_ms": response_latency_ms,
            }.items()
            if v is not None
        }
        if values:
            self._emit(UpdateRow("turns", self._last_turn_uid, values))
        if self._metrics and response_latency_ms is not None:
            self._metrics.response_latency.observe(response_latency_ms / 1000.0)

    def usage(
        self,
        service: str,
        provider: str,
        model: str = "",
        *,
        requests: int = 0,
        audio_s: float = 0.0,
        characters: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
    ) -> None:
        """Add to this call's usage of one provider; written as one row per (service, provider, model)."""
        u = self._usage.setdefault((service, provider, model), _Usage())
        u.requests += requests
        u.audio_s += audio_s
        u.characters += characters
        u.input_tokens += input_tokens
        u.output_tokens += output_tokens

    # -- rows ----------------------------------------------------------------------------------

    def _require_started(self) -> None:
        if self._started_at is None:
            raise RuntimeError("CallRecorder.started() must come first")

    def _at(self, t: float) -> datetime:
        assert self._origin is not None
        return self._origin + timedelta(seconds=t)

    def _event_row(self, event: Event, **values: Any) -> str:
        row = InsertRow(
            "interruption_events",
            {"occurred_at": self._at(event.t), "offset_s": event.t, **values},
            call_uid=self.uid,
        )
        self._emit(row)
        return row.uid

    def _interruption_row(self, event: Interruption, action: str | None, heard: str | None) -> None:
        self._require_started()
        if self._metrics:
            self._metrics.observe(event)
        mode = "fallback" if event.fallback else event.mode
        uid = self._event_row(
            event,
            kind="interruption",
            mode=mode,
            onset_s=event.onset,
            probability=event.probability,
            detection_delay_ms=event.latency_ms,
            prediction_duration_ms=getattr(event, "prediction_ms", None),
            total_duration_ms=getattr(event, "total_ms", None),
            requests=event.requests,
            overlap_s=max(0.0, event.t - event.onset),
            agent_action=action,
            agent_text_heard=heard,
        )
        self._interruption = _OpenInterruption(uid, mode, action)
        self._count_bargein_requests(event.requests)

    def _agent_reaction(self, event: Event) -> None:
        """Pause/stop/resume after an interruption: the interruption row says what finally happened."""
        current = self._interruption
        if current is None:
            return
        action = {PausePlayout: "paused", StopPlayout: "stopped", ResumePlayout: "resumed"}[type(event)]
        if action not in _NEXT_ACTIONS.get(current.action, ()):
            return
        current.action = action
        self._emit(UpdateRow("interruption_events", current.uid, {"agent_action": action}))

    def _false_interruption(self, event: FalseInterruption) -> None:
        current = self._interruption
        self._event_row(
            event,
            kind="resumed" if event.resumed else "false_interruption",
            mode=current.mode if current else "vad",
            agent_action="resumed" if event.resumed else "stopped",
        )
        if current is not None and event.resumed and "resumed" in _NEXT_ACTIONS.get(current.action, ()):
            current.action = "resumed"
            self._emit(UpdateRow("interruption_events", current.uid, {"agent_action": "resumed"}))

    def _turn_row(self, event: EndOfTurn) -> None:
        self._turn_index += 1
        user_end = event.t - event.delay_ms / 1000.0
        row = InsertRow(
            "turns",
            {
                "turn_index": self._turn_index,
                "occurred_at": self._at(event.t),
                "offset_s": event.t,
                "user_start_s": self._turn_user_start,
                "user_end_s": self._turn_user_end if self._turn_user_end is not None else user_end,
                "transcript": event.transcript,
                "interrupted_agent": event.interrupted_agent,
                "eou_probability": event.probability,
                "eou_delay_ms": event.delay_ms,
            },
            call_uid=self.uid,
        )
        self._emit(row)
        self._last_turn_uid = row.uid
        self._turn_user_start = self._turn_user_end = None
        self._interruption = None

    def _segment(self, speaker: str, start: float, end: float) -> None:
        self._emit(
            InsertRow("speech_segments", {"speaker": speaker, "start_s": start, "end_s": end}, self.uid)
        )

    def _count_bargein_requests(self, requests: int) -> None:
        if requests:
            self.usage("bargein", self._bargein_provider, requests=requests)


__all__ = ["CallRecorder", "Emit"]
