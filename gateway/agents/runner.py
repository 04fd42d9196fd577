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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.agents.session import Backends, CallSession, Detectors
from gateway.calls import CallObserver, CallTransport
from gateway.config.loader import LoadedAgent, load_agent_config
from gateway.config.schema import GatewayConfig
from gateway.turns.detectors import BargeInDetector, EndOfTurnDetector
from gateway.turns.registry import bargein_detector, end_of_turn_detector
from gateway.turns.silero import SileroModel

log = logging.getLogger(__name__)


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
        emit: Any = None,
        metrics: Any = None,
        instance: str = "",
        agent_overrides: tuple[str, ...] = (),
    ) -> None:
        """`emit`: a MetricsWriter's `emit` (None: no database rows); `metrics`: GatewayMetrics."""
        self.gateway = gateway
        self.emit = emit
        self.metrics = metrics
        self.instance = instance
        self.agent_overrides = agent_overrides
        self.stats = RunnerStats()
        self._vad: SileroModel | None = None
        self._agents: dict[str, LoadedAgent] = {}
        self._bargein: dict[str, BargeInDetector] = {}
        self._eot: dict[str, EndOfTurnDetector] = {}

    # -- shared parts ---------------------------------------------------------------------------

    def agent(self, name_or_path: str) -> LoadedAgent:
        """An agent by YAML path (as routes give it) or by name (config/agents/NAME.yaml)."""
        if name_or_path not in self._agents:
            path = Path(name_or_path)
            if path.suffix not in (".yaml", ".yml"):
                path = Path("config/agents") / f"{name_or_path}.yaml"
            if not path.exists() and self.gateway is not None and self.gateway.default_agent:
                log.warning("no agent %r: using the default agent", name_or_path)
                path = Path(self.gateway.default_agent)
            self._agents[name_or_path] = load_agent_config(path, self.agent_overrides)
        return self._agents[name_or_path]

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
        recorder = None
        if self.emit is not None:
            from gateway.metrics.recorder import CallRecorder

            recorder = CallRecorder(info, self.emit, instance=self.instance, metrics=self.metrics)
            recorder.started()
            recorder.answered()
        elif self.metrics is not None:
            self.metrics.call_started()
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
            elif self.metrics is not None:
                self.metrics.call_ended(reason)
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
