"""AgentRunner: the session factory every edge hands its calls to.

One runner per `gateway serve` process. It owns what calls share — the Silero model, the barge-in
and end-of-turn detectors (stateless; each call opens its own streams), parsed agent files, the
metrics writer and Prometheus metrics — and for each call builds the agent's backends, a
CallRecorder and a CallSession. Every edge (SIP, WebRTC, media streams, the WAV caller) calls
`await runner(transport, observer)`, so a call behaves and is recorded the same whichever way it
arrived. The runner keeps nothing of a call once it has ended: the session goes with the call.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.agents.session import Backends, CallSession, Detectors, Recorder
from gateway.calls import AgentChoice, CallInfo, CallObserver, CallTransport, RefusedAttempt
from gateway.config.examples import example_agent
from gateway.config.loader import LoadedAgent, load_agent_config
from gateway.config.routing import is_agent_name, route_agent
from gateway.config.schema import GatewayConfig
from gateway.turns.detectors import BargeInDetector, EndOfTurnDetector
from gateway.turns.registry import bargein_detector, end_of_turn_detector
from gateway.turns.silero import SileroModel

log = logging.getLogger(__name__)


class CallRecord(Recorder, Protocol):
    """What the runner tells the metrics of one call (a CallRecorder, started and answered)."""

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
    ) -> None: ...

    def ended(self, reason: str) -> None: ...


# Opens the record of a call that is starting; the runtime supplies it (None: calls go unrecorded).
RecordCall = Callable[[CallInfo], CallRecord]
# Records a call attempt an edge refused (the runtime supplies it: a counter and a database row).
RecordRefusal = Callable[[RefusedAttempt], None]


@dataclass
class RunnerStats:
    calls: int = 0
    active: int = 0
    end_reasons: dict[str, int] = field(default_factory=dict)


class AgentRunner:
    def __init__(
        self,
        gateway: GatewayConfig | None = None,
        *,
        record_call: RecordCall | None = None,
        record_refusal: RecordRefusal | None = None,
        agent_overrides: tuple[str, ...] = (),
    ) -> None:
        self.gateway = gateway
        self.record_call = record_call
        self.record_refusal = record_refusal
        self.agent_overrides = agent_overrides
        self.stats = RunnerStats()
        self._vad: SileroModel | None = None
        self._agents: dict[str, LoadedAgent] = {}
        self._bargein: dict[str, BargeInDetector] = {}
        self._eot: dict[str, EndOfTurnDetector] = {}

    def refused(self, attempt: RefusedAttempt) -> None:
        """An edge refused a call attempt (`gateway.calls.report_refusal` has logged it)."""
        if self.record_refusal is not None:
            self.record_refusal(attempt)

    # -- which agent ----------------------------------------------------------------------------

    def route(self, requested: str = "", callee: str = "", default: str | None = None) -> str:
        """`CallSessions.route`: the gateway's routes, `default` (an edge's) before its default agent."""
        gateway = self.gateway
        routes = gateway.route_table if gateway is not None else []
        fallback = default or (gateway.default_agent if gateway is not None else None)
        return route_agent(routes, fallback, callee=callee, requested=requested) or "default"

    def choose(self, requested: str = "", callee: str = "", default: str | None = None) -> AgentChoice:
        agent = self.route(requested, callee, default)
        try:
            loaded = self.agent(agent)
        except Exception as exc:
            raise ValueError(f"agent {agent!r} unusable: {exc}") from exc
        return AgentChoice(agent, loaded.config.turn_handling.vad.sample_rate)

    def agent(self, ref: str) -> LoadedAgent:
        """An agent by YAML path (as the operator's routes give it) or by plain name: NAME.yaml in
        config/agents/ of the working directory, else among the packaged examples; a name without
        a file is the gateway's default agent."""
        path = self._agent_path(ref)
        key = str(path)
        if key not in self._agents:
            self._agents[key] = load_agent_config(path, self.agent_overrides)
        return self._agents[key]

    def _agent_path(self, ref: str) -> Path:
        path = Path(ref)
        if path.suffix in (".yaml", ".yml"):
            return path
        if not is_agent_name(ref):
            raise ValueError(f"{ref!r} is neither an agent file nor an agent name")
        path = Path("config/agents") / f"{ref}.yaml"
        if not path.exists():
            path = example_agent(ref)
        if not path.exists() and self.gateway is not None and self.gateway.default_agent:
            log.warning("no agent %r: using the default agent", ref)
            path = Path(self.gateway.default_agent)
        return path

    # -- shared parts ---------------------------------------------------------------------------

    def detectors(self, loaded: LoadedAgent) -> Detectors:
        options = loaded.config.turn_handling.to_options()
        if self._vad is None:
            self._vad = SileroModel()
        name = options.interruption.detector
        if name not in self._bargein:
            self._bargein[name] = bargein_detector(name)
        eot_name = options.turn_detector
        if options.turn_detection == "model" and eot_name not in self._eot:
            self._eot[eot_name] = end_of_turn_detector(eot_name)
        return Detectors(self._vad, self._bargein[name], self._eot.get(eot_name))

    def backends(self, loaded: LoadedAgent) -> Backends:
        from gateway.backends.registry import build_llm, build_stt, build_tts

        cfg = loaded.config
        tools = None
        if cfg.tools:
            from gateway.agents.tools import ToolRunner

            tools = ToolRunner(list(cfg.tools))
        return Backends(
            stt=build_stt(cfg.stt, loaded) if cfg.stt else None,
            llm=build_llm(cfg.llm, loaded) if cfg.llm else None,
            tts=build_tts(cfg.tts, loaded) if cfg.tts else None,
            tools=tools,
        )

    def warm_up(self, agents: list[str]) -> None:
        """Load agents, their models and backends before the first call rings (the first
        pocketsphinx or Whisper load takes seconds, while caller audio would queue up)."""
        for name in agents:
            loaded = self.agent(name)
            self.detectors(loaded)
            self.backends(loaded)
            log.info("agent %s ready", loaded.config.agent)

    # -- one call -------------------------------------------------------------------------------

    async def __call__(self, transport: CallTransport, observer: CallObserver | None = None) -> None:
        """Run one call to its end. The session lives only as long as this coroutine: whoever
        wants to follow the call passes an `observer`, which keeps no part of the session."""
        loaded = self.agent(transport.info.agent)
        # rows and logs name the agent as its YAML does, whatever the edge routed by
        info = dataclasses.replace(transport.info, agent=loaded.config.agent)
        recorder = self.record_call(info) if self.record_call is not None else None
        backends = self.backends(loaded)
        session = CallSession(
            transport, loaded.config, self.detectors(loaded), backends, recorder=recorder, observer=observer
        )
        self.stats.calls += 1
        self.stats.active += 1
        reason = "error"
        try:
            reason = await session.run() or "caller_hangup"
        finally:
            self.stats.active -= 1
            self.stats.end_reasons[reason] = self.stats.end_reasons.get(reason, 0) + 1
            if recorder is not None:
                for service, backend in (("stt", backends.stt), ("llm", backends.llm), ("tts", backends.tts)):
                    if backend is not None:
                        u = backend.usage()
                        recorder.usage(
                            service,
                            u.provider,
                            u.model,
                            requests=u.requests,
                            audio_s=u.audio_seconds,
                            characters=u.characters,
                            input_tokens=u.input_tokens,
                            output_tokens=u.output_tokens,
                        )
                recorder.ended(reason)
            await _close_backends(backends)


async def _close_backends(backends: Backends) -> None:
    """HTTP backends and tool runners hold connection pools: close them with the call."""
    for part in (backends.stt, backends.llm, backends.tts, backends.tools):
        close = getattr(part, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:  # closing must not hide how the call ended
                log.exception("closing %s failed", type(part).__name__)
