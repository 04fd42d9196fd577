"""Typed models of the operator's YAML: agent files and the gateway file.

Names and defaults of `turn_handling` follow `gateway.turns.options` (LiveKit's
TurnHandlingOptions); the defaults here are read from those dataclasses so the two cannot drift.
Every model forbids unknown keys except `ProviderConfig`, whose extra keys belong to the backend
named by `provider` (each backend validates them itself, see `ProviderConfig.options`).

Validation messages say what is allowed ("must be between 0 and 1, got 1.5"); `gateway.config.loader`
adds the file, line and key path.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.config.routing import route_agent
from gateway.turns.options import (
    BackchannelBoundary,
    EndpointingOptions,
    InterruptionOptions,
    LexicalCheckOptions,
    TurnHandlingOptions,
    VadOptions,
)

_TH = TurnHandlingOptions()
_EP = EndpointingOptions()
_INT = InterruptionOptions()
_VAD = VadOptions()


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode turns true/false into 1/0 for numbers; an operator who wrote `true`
    # for a duration made a mistake.
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, got {got}", {"got": _show(value)})
    return value


def _show(value: Any) -> str:
    """A value the way the operator wrote it in YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]" if len(value) <= 4 else "a list"
    return str(value)


def cross_field_error(key: str | tuple[str | int, ...], message: str) -> PydanticCustomError:
    """An error found by a model validator that belongs to one of the model's keys.

    pydantic locates model-validator errors at the model itself; the loader appends `ctx.field`
    to the location so the message lands on the key's own line.
    """
    path = (key,) if isinstance(key, str) else key
    return PydanticCustomError("cross_field", message, {"field": path})


Number = Annotated[float, BeforeValidator(_not_bool)]
Integer = Annotated[int, BeforeValidator(_not_bool)]
Seconds = Annotated[float, BeforeValidator(_not_bool), Field(ge=0)]
PositiveSeconds = Annotated[float, BeforeValidator(_not_bool), Field(gt=0)]
Probability = Annotated[float, BeforeValidator(_not_bool), Field(ge=0, le=1)]
Port = Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=65535)]
# 0 asks the system for any free port (tests, several gateways on one host)
ListenPort = Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=65535)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are not coerced to str."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------------------------------
# turn_handling


class EndpointingConfig(Section):
    mode: Literal["fixed", "dynamic"] = _EP.mode
    dynamic_alpha: Annotated[float, BeforeValidator(_not_bool), Field(gt=0, le=1)] = _EP.dynamic_alpha


def _boundary(value: Any) -> Any:
    """`[start, end]`, one number for both sides, or null (disabled) -> (start, end) | None."""
    if value is None:
        return None
    if isinstance(value, list | tuple) and len(value) == 2:
        start, end = value
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        start = end = value
    else:
        raise PydanticCustomError(
            "boundary",
            "must be [start, end] in seconds, one number for both sides, or null to disable, got {got}",
            {"got": _show(value)},
        )
    out: list[float] = []
    for side, v in (("start", start), ("end", end)):
        try:
            if isinstance(v, bool):
                raise ValueError
            seconds = float(v)
        except (TypeError, ValueError):
            raise PydanticCustomError(
                "boundary", "{side} must be a number of seconds, got {got}", {"side": side, "got": _show(v)}
            ) from None
        if seconds < 0 or seconds != seconds:
            raise PydanticCustomError(
                "boundary", "{side} must be >= 0 seconds, got {got}", {"side": side, "got": _show(v)}
            )
        out.append(seconds)
    return (out[0], out[1])


_DEFAULT_BOUNDARY = (
    None
    if _INT.backchannel_boundary is None
    else (_INT.backchannel_boundary.start, _INT.backchannel_boundary.end)
)


def _detector_name(value: Any) -> Any:
    if isinstance(value, str) and (value in ("auto", "onnx", "heuristic") or ":" in value):
        return value
    raise PydanticCustomError(
        "detector",
        "must be auto, onnx, heuristic or a 'module:factory' import path, got {got}",
        {"got": _show(value)},
    )


DetectorName = Annotated[str, BeforeValidator(_detector_name)]


class LexicalCheckConfig(Section):
    """interruption.lexical_check: decoded caller words as evidence for adaptive barge-in."""

    enabled: bool = _INT.lexical_check.enabled
    lean: Probability = _INT.lexical_check.lean
    max_delay: Seconds = _INT.lexical_check.max_delay
    veto_span: Seconds = _INT.lexical_check.veto_span
    veto_below: Probability = _INT.lexical_check.veto_below
    recheck: PositiveSeconds = _INT.lexical_check.recheck
    preroll: Seconds = _INT.lexical_check.preroll
    max_checks: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] = _INT.lexical_check.max_checks
    command_probe: Seconds | None = _INT.lexical_check.command_probe
    commands: tuple[str, ...] = _INT.lexical_check.commands

    @field_validator("commands")
    @classmethod
    def _commands(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w.strip().lower() for w in v if w.strip()))


class InterruptionConfig(Section):
    enabled: bool = _INT.enabled
    mode: Literal["vad", "adaptive"] = _INT.mode
    min_duration: Seconds = _INT.min_duration
    min_words: Annotated[int, BeforeValidator(_not_bool), Field(ge=0)] = _INT.min_words
    threshold: Probability = _INT.threshold
    backchannel_boundary: Annotated[tuple[float, float] | None, BeforeValidator(_boundary)] = (
        _DEFAULT_BOUNDARY
    )
    false_interruption_timeout: Seconds = _INT.false_interruption_timeout
    resume_false_interruption: bool = _INT.resume_false_interruption
    detector_timeout: PositiveSeconds = _INT.detector_timeout
    detector_interval: PositiveSeconds = _INT.detector_interval
    backchannel_lexicon: tuple[str, ...] = _INT.backchannel_lexicon
    overlap_max_pause: Seconds = _INT.overlap_max_pause
    detector: DetectorName = _INT.detector
    lexical_check: LexicalCheckConfig = LexicalCheckConfig()

    @field_validator("detector_interval")
    @classmethod
    def _interval(cls, v: float) -> float:
        if v > 0.1:
            raise PydanticCustomError(
                "range",
                "must be in (0, 0.1] s (the detector is asked at least every 100 ms), got {got}",
                {"got": _show(v)},
            )
        return v

    @field_validator("backchannel_lexicon")
    @classmethod
    def _lexicon(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # The engine compares lower-case words with punctuation stripped.
        return tuple(dict.fromkeys(w.strip().lower() for w in v if w.strip()))


class VadConfig(Section):
    activation_threshold: Probability = _VAD.activation_threshold
    deactivation_threshold: Probability | None = _VAD.deactivation_threshold
    min_speech_duration: Seconds = _VAD.min_speech_duration
    min_silence_duration: Seconds = _VAD.min_silence_duration
    prefix_padding_duration: Seconds = _VAD.prefix_padding_duration
    sample_rate: Integer = _VAD.sample_rate

    @field_validator("sample_rate")
    @classmethod
    def _rate(cls, v: int) -> int:
        if v not in (8000, 16000):
            raise PydanticCustomError("range", "must be 8000 or 16000 (Silero VAD), got {got}", {"got": v})
        return v

    @model_validator(mode="after")
    def _thresholds(self) -> VadConfig:
        d = self.deactivation_threshold
        if d is not None and d > self.activation_threshold:
            raise cross_field_error(
                "deactivation_threshold",
                f"must be <= activation_threshold ({self.activation_threshold}), got {d}",
            )
        return self


class TurnHandlingConfig(Section):
    turn_detection: Literal["vad", "stt", "model"] = _TH.turn_detection
    min_endpointing_delay: Seconds = _TH.min_endpointing_delay
    max_endpointing_delay: Seconds = _TH.max_endpointing_delay
    # Calls without an STT may use their own range (None: min/max_endpointing_delay).
    audio_only_min_endpointing_delay: Seconds | None = _TH.audio_only_min_endpointing_delay
    audio_only_max_endpointing_delay: Seconds | None = _TH.audio_only_max_endpointing_delay
    # Model mode: a probability >= the threshold commits after early_floor_delay (None: no floor).
    early_floor_threshold: Probability | None = _TH.early_floor_threshold
    audio_only_early_floor_threshold: Probability | None = _TH.audio_only_early_floor_threshold
    early_floor_delay: Seconds = _TH.early_floor_delay
    endpointing: EndpointingConfig = EndpointingConfig()
    turn_detector: DetectorName = _TH.turn_detector
    interruption: InterruptionConfig = InterruptionConfig()
    vad: VadConfig = VadConfig()

    @model_validator(mode="after")
    def _delays(self) -> TurnHandlingConfig:
        if self.min_endpointing_delay > self.max_endpointing_delay:
            raise cross_field_error(
                "max_endpointing_delay",
                f"must be >= min_endpointing_delay ({self.min_endpointing_delay}), "
                f"got {self.max_endpointing_delay}",
            )
        lo = self.audio_only_min_endpointing_delay
        hi = self.audio_only_max_endpointing_delay
        lo = self.min_endpointing_delay if lo is None else lo
        hi = self.max_endpointing_delay if hi is None else hi
        if lo > hi:
            raise cross_field_error(
                "audio_only_max_endpointing_delay",
                f"the audio-only range must have min <= max, got {lo} > {hi}",
            )
        floored = self.early_floor_threshold is not None or self.audio_only_early_floor_threshold is not None
        if floored and self.early_floor_delay > min(self.min_endpointing_delay, lo):
            raise cross_field_error(
                "early_floor_delay",
                f"must be <= the minimum endpointing delay ({min(self.min_endpointing_delay, lo)}), "
                f"got {self.early_floor_delay}",
            )
        return self

    def to_options(self) -> TurnHandlingOptions:
        """The frozen dataclasses the TurnEngine takes."""
        i = self.interruption
        boundary = None if i.backchannel_boundary is None else BackchannelBoundary(*i.backchannel_boundary)
        return TurnHandlingOptions(
            turn_detection=self.turn_detection,
            min_endpointing_delay=self.min_endpointing_delay,
            max_endpointing_delay=self.max_endpointing_delay,
            audio_only_min_endpointing_delay=self.audio_only_min_endpointing_delay,
            audio_only_max_endpointing_delay=self.audio_only_max_endpointing_delay,
            early_floor_threshold=self.early_floor_threshold,
            audio_only_early_floor_threshold=self.audio_only_early_floor_threshold,
            early_floor_delay=self.early_floor_delay,
            endpointing=EndpointingOptions(**self.endpointing.model_dump()),
            interruption=InterruptionOptions(
                enabled=i.enabled,
                mode=i.mode,
                min_duration=i.min_duration,
                min_words=i.min_words,
                threshold=i.threshold,
                backchannel_boundary=boundary,
                false_interruption_timeout=i.false_interruption_timeout,
                resume_false_interruption=i.resume_false_interruption,
                detector_timeout=i.detector_timeout,
                detector_interval=i.detector_interval,
                backchannel_lexicon=i.backchannel_lexicon,
                detector=i.detector,
                overlap_max_pause=i.overlap_max_pause,
                lexical_check=LexicalCheckOptions(**i.lexical_check.model_dump()),
            ),
            turn_detector=self.turn_detector,
            vad=VadOptions(**self.vad.model_dump()),
        )


# ---------------------------------------------------------------------------------------------
# agent files


class ProviderConfig(BaseModel):
    """`{provider: NAME, ...}`: the backend's own keys are kept for it to validate."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str = Field(min_length=1)

    @property
    def options(self) -> dict[str, Any]:
        """The provider-specific keys (everything but `provider`)."""
        return dict(self.model_extra or {})


_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ToolConfig(Section):
    """An HTTP webhook the LLM may call; `parameters` is the JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    timeout: PositiveSeconds = 5.0
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TOOL_NAME.match(v):
            raise PydanticCustomError(
                "tool_name",
                "must be 1-64 letters, digits, '_' or '-' (LLM function names), got {got}",
                {"got": _show(v)},
            )
        return v

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise PydanticCustomError(
                "url", "must be an http:// or https:// URL, got {got}", {"got": _show(v)}
            )
        return v

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type", "object") != "object":
            raise PydanticCustomError(
                "json_schema",
                "must be a JSON schema of type 'object' (the tool's named arguments), got type {got}",
                {"got": _show(v.get("type"))},
            )
        return v


class DeadlinesConfig(Section):
    """How long the session waits on a backend before the caller hears the fallback line and the call
    goes on (seconds; time spent waiting on that backend only)."""

    # LLM request -> first text or tool call.
    llm_first_token: PositiveSeconds = 8.0
    # LLM request -> the end of its answer.
    llm_total: PositiveSeconds = 30.0
    # TTS request (one sentence) -> first audio.
    tts_first_audio: PositiveSeconds = 10.0
    # TTS request (one sentence) -> the end of its audio.
    tts_total: PositiveSeconds = 30.0
    # The caller stopped talking -> any result from a streaming STT (Deepgram); one that stays silent
    # longer is restarted. Local batch engines are not held to it.
    stt_result: PositiveSeconds = 8.0


_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


class AgentConfig(Section):
    """One agent file (`config/agents/*.yaml`)."""

    agent: str
    instructions: str = ""
    greeting: str = ""
    language: str = "en"
    stt: ProviderConfig | None = None
    llm: ProviderConfig | None = None
    tts: ProviderConfig | None = None
    turn_handling: TurnHandlingConfig = TurnHandlingConfig()
    tools: list[ToolConfig] = Field(default_factory=list)
    deadlines: DeadlinesConfig = DeadlinesConfig()
    # Extension point: a free-form section for backends that need more than provider keys (for
    # example the dialog policy of the `scripted` LLM). Its schema belongs to that backend, which
    # validates it and reports errors through `LoadedAgent.source.error(("policy", ...), ...)`.
    policy: dict[str, Any] | None = None

    @field_validator("agent")
    @classmethod
    def _agent(cls, v: str) -> str:
        if not _AGENT_NAME.match(v):
            raise PydanticCustomError(
                "agent_name",
                "must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit "
                "(it names the agent in routes and metrics), got {got}",
                {"got": _show(v)},
            )
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if not _LANGUAGE.match(v):
            raise PydanticCustomError(
                "language", "must be a language tag such as 'en' or 'en-US', got {got}", {"got": _show(v)}
            )
        return v

    @model_validator(mode="after")
    def _unique_tools(self) -> AgentConfig:
        seen: set[str] = set()
        for i, tool in enumerate(self.tools):
            if tool.name in seen:
                raise cross_field_error(("tools", i, "name"), f"duplicate tool name {tool.name!r}")
            seen.add(tool.name)
        return self


# ---------------------------------------------------------------------------------------------
# the gateway file


class DatabaseConfig(Section):
    url: Annotated[str, Field(min_length=1)] = "sqlite:///gateway.db"
    # Where metric events are spooled while the database is unreachable.
    spool_dir: str = "spool"
    # Seconds between batched writes of metric events.
    batch_interval: PositiveSeconds = 1.0


def _cidr_list(v: list[str]) -> list[str]:
    for item in v:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise PydanticCustomError(
                "cidr",
                "must list IP addresses or CIDR networks such as 203.0.113.0/24, got {got}",
                {"got": _show(item)},
            ) from None
    return v


class MetricsAccessConfig(Section):
    """Who may read `/metrics`. Both empty: anyone who reaches the HTTP port (loopback only, unless
    `http.allow_unauthenticated`). With both set, a scraper needs an allowed address and the token."""

    # Source addresses (CIDRs) allowed to read /metrics; empty: any address.
    allow: list[str] = Field(default_factory=list)
    # Bearer token the scraper must send (`Authorization: Bearer ...`); null or "": GATEWAY_METRICS_TOKEN.
    token: SecretStr | None = None

    @field_validator("allow")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        return _cidr_list(v)


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: ListenPort = 8080
    metrics: MetricsAccessConfig = MetricsAccessConfig()
    # true: serve on a non-loopback address even with an edge that checks nobody (an open softphone,
    # unauthenticated media streams, /metrics open to all). For a trusted network or a proxy that
    # authenticates; without it `gateway serve` refuses to start.
    allow_unauthenticated: bool = False


class SipAuthConfig(Section):
    username: str = Field(min_length=1)
    # SecretStr: never printed in logs or reprs; read it with `.get_secret_value()`.
    password: SecretStr = Field(min_length=1)
    realm: str | None = None


class SipRateLimitConfig(Section):
    """INVITEs per source address: a token bucket."""

    invites_per_second: PositiveSeconds = 5.0
    burst: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] = 10


SessionHosts = Annotated[Literal["auto"] | Annotated[int, Field(ge=0, le=64)], BeforeValidator(_not_bool)]


class SipAdmissionConfig(Section):
    """When a session host refuses new calls (503 + Retry-After at the front) from its measured load,
    so the calls it already has keep their frames on time. A limit of null is not checked."""

    # Event-loop lag of the host, averaged over the last second (seconds).
    max_loop_lag: PositiveSeconds | None = 0.05
    # CPU of the host process over the last second, in cores (1.0: one core fully busy).
    max_host_cpu: Annotated[float, BeforeValidator(_not_bool), Field(gt=0)] | None = 0.9
    # CPU of the whole machine over the last second, 0-1 (all cores busy: 1.0); off by default.
    max_machine_cpu: Annotated[float, BeforeValidator(_not_bool), Field(gt=0, le=1)] | None = None
    # Utterances waiting for a local STT decoder in this host.
    max_stt_queue: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = 8
    # Calls in progress on one host; null: no fixed cap.
    max_calls_per_host: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    # Calls are admitted again once every measure has stayed under this fraction of its limit
    # for `hold` seconds (hysteresis, so a host does not flap).
    resume_below: Annotated[float, BeforeValidator(_not_bool), Field(gt=0, le=1)] = 0.8
    hold: Seconds = 2.0


class SipTlsConfig(Section):
    """TLS at the front: PEM certificate (chain) and its private key; paths relative to the working dir."""

    certificate: str = Field(min_length=1)
    private_key: str = Field(min_length=1)
    port: Port = 5061


class SipSessionTimersConfig(Section):
    """RFC 4028 session timers of the workers' pjsua2 account (PJSIP's defaults: optional, 1800 s, 90 s)."""

    mode: Literal["off", "optional", "required"] = "optional"
    # Session-Expires we ask for, seconds.
    expires: Annotated[int, BeforeValidator(_not_bool), Field(ge=90)] = 1800
    # Min-SE: the shortest interval we accept from the caller, seconds (RFC 4028: at least 90).
    min_se: Annotated[int, BeforeValidator(_not_bool), Field(ge=90)] = 90

    @model_validator(mode="after")
    def _order(self) -> SipSessionTimersConfig:
        if self.expires < self.min_se:
            raise cross_field_error("expires", f"must be >= min_se ({self.min_se}), got {self.expires}")
        return self


def _port_range(value: Any) -> Any:
    """`[low, high]` UDP ports for RTP (each call takes an even RTP port and the next one for RTCP)."""
    if value is None:
        return None
    if not (isinstance(value, list | tuple) and len(value) == 2) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise PydanticCustomError(
            "port_range", "must be [low, high] port numbers, got {got}", {"got": _show(value)}
        )
    low, high = value
    if not 1024 <= low < high <= 65535:
        raise PydanticCustomError(
            "port_range",
            "must be [low, high] with 1024 <= low < high <= 65535, got {got}",
            {"got": _show(value)},
        )
    return (low, high)


Transport = Literal["udp", "tcp", "tls"]
Codec = Literal["PCMU", "PCMA", "G722"]
DEFAULT_TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp")
DEFAULT_CODECS: tuple[Codec, ...] = ("PCMU", "PCMA", "G722")


class SipConfig(Section):
    host: str = "127.0.0.1"
    port: Port = 5060
    transports: list[Transport] = Field(default_factory=lambda: list(DEFAULT_TRANSPORTS), min_length=1)
    # Preference order offered and accepted in SDP.
    codecs: list[Codec] = Field(default_factory=lambda: list(DEFAULT_CODECS), min_length=1)
    # pjsua2 worker processes behind the front; null: one per CPU core.
    workers: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    # The pjsua2-python wheel answers at most 4 calls per process.
    calls_per_worker: Annotated[int, BeforeValidator(_not_bool), Field(ge=1, le=4)] = 4
    # Calls in progress beyond which INVITEs get 503 with Retry-After; null: workers * calls_per_worker.
    max_calls: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] | None = None
    # Source addresses (CIDRs) allowed to send INVITEs; empty: any.
    allow: list[str] = Field(default_factory=list)
    auth: SipAuthConfig | None = None
    rate_limit: SipRateLimitConfig | None = SipRateLimitConfig()
    tls: SipTlsConfig | None = None
    # Address written into SDP (c=) for RTP: the public/NATed address callers send audio to.
    # null: the address RTP is bound to (sip.host; with 0.0.0.0, the host's default address).
    media_address: str | None = None
    # RTP/RTCP UDP ports [low, high], split evenly over the workers; null: 20000 and up, per worker.
    rtp_ports: Annotated[tuple[int, int] | None, BeforeValidator(_port_range)] = None
    # Seconds of ringing (180) before the 200 OK.
    ring_delay: Seconds = 0.0
    # Retry-After (seconds) on 486/503 when the gateway is full, draining or rate limiting.
    retry_after: Annotated[int, BeforeValidator(_not_bool), Field(ge=0)] = 5
    session_timers: SipSessionTimersConfig = SipSessionTimersConfig()
    # SRTP of the calls' media, keys by SDES in the SDP (so use it with tls; the pjsua2 wheel has no
    # DTLS-SRTP): off = plain RTP only, optional = SRTP when the caller offers keys, required = only
    # RTP/SAVP offers (others get 488 "SRTP Required").
    srtp: Literal["off", "optional", "required"] = "off"
    # Seconds calls in progress may take to finish when the gateway stops (new calls get 503).
    drain_timeout: Seconds = 30.0
    # true: listen on a non-loopback address with neither `allow` nor `auth` (anyone who reaches the
    # port places calls); without it `gateway serve` refuses to start.
    allow_unauthenticated: bool = False
    # Processes the SIP calls' sessions run in (workers are spread over them): auto, one per CPU
    # core; 0, in the main process itself (one core for every call).
    session_hosts: Annotated[
        Literal["auto"] | Annotated[int, Field(ge=0, le=64)], BeforeValidator(_not_bool)
    ] = "auto"
    admission: SipAdmissionConfig | None = SipAdmissionConfig()

    @field_validator("codecs", "transports")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = [x for i, x in enumerate(v) if x in v[:i]]
        if dup:
            raise PydanticCustomError("duplicate", "lists {got} more than once", {"got": _show(dup[0])})
        return v

    @field_validator("allow")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        return _cidr_list(v)

    @field_validator("media_address")
    @classmethod
    def _media_address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            address = ipaddress.ip_address(v)
        except ValueError:
            raise PydanticCustomError(
                "ip_address", "must be an IP address such as 203.0.113.10, got {got}", {"got": _show(v)}
            ) from None
        if address.is_unspecified:
            raise PydanticCustomError(
                "ip_address", "must be an address callers can reach, not {got}", {"got": _show(v)}
            )
        return v

    @model_validator(mode="after")
    def _tls(self) -> SipConfig:
        if "tls" in self.transports and self.tls is None:
            raise cross_field_error("transports", "'tls' needs a tls section (certificate and private_key)")
        if self.tls is not None and "tls" not in self.transports:
            raise cross_field_error(
                "tls", "a tls section needs 'tls' in sip.transports (or remove the section)"
            )
        if self.tls is not None and self.tls.port == self.port:
            raise cross_field_error(("tls", "port"), f"must differ from sip.port ({self.port})")
        return self


class RouteConfig(Section):
    """`match` is the request URI's user part or called number; shell wildcards allowed (`+1555*`)."""

    match: str = Field(min_length=1)
    agent: str = Field(min_length=1)


class LimitsConfig(Section):
    max_call_duration: PositiveSeconds = 3600.0
    # Seconds without inbound RTP before a call is hung up.
    rtp_timeout: PositiveSeconds = 30.0


# The HTTP edges. Every key may be null (or absent), and a string key empty: then the edge takes
# the environment variable it always read, else its own default (the settings classes in
# gateway/edges/*/settings.py define the defaults; nothing here duplicates them).

_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


def _one_or_list(value: Any) -> Any:
    # `urls: stun:host` or `urls: [stun:a, turn:b]`, like RTCIceServer.urls
    return [value] if isinstance(value, str) else value


class IceServerConfig(Section):
    """A STUN/TURN server, as in the browser's RTCIceServer."""

    urls: Annotated[list[str], BeforeValidator(_one_or_list), Field(min_length=1)]
    username: str | None = None
    # SecretStr: never printed in logs or reprs; read it with `.get_secret_value()`.
    credential: SecretStr | None = None

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith(_ICE_SCHEMES) or len(url) <= url.index(":") + 1:
                raise PydanticCustomError(
                    "ice_url",
                    "must be stun:, stuns:, turn: or turns: URLs such as stun:stun.example.org:3478, "
                    "got {got}",
                    {"got": _show(url)},
                )
        return v


class WebRtcConfig(Section):
    """Browser callers (softphone page, /webrtc/*). null: GATEWAY_ICE_SERVERS,
    GATEWAY_WEBRTC_ADDRESSES, GATEWAY_WEBRTC_AGENT, else the edge's defaults."""

    # false: no softphone page and no /webrtc/* (the edge's aiortc is then not needed either).
    enabled: bool = True
    ice_servers: list[IceServerConfig] | None = None
    # Local IP addresses ICE gathers host candidates on; [] = every interface (not loopback).
    addresses: list[str] | None = None
    # Agent for calls that name none; null or "": the gateway's default_agent.
    agent: str | None = None
    # Every offer needs a signed, short-lived token for its agent. HMAC key of those tokens (an
    # operator's web app mints them with it); null or "": GATEWAY_WEBRTC_SECRET, else a random key
    # per process (then only the page's /webrtc/token hands tokens out).
    secret: SecretStr | None = None
    # The softphone page gets a token when it sends this password; null or "":
    # GATEWAY_WEBRTC_PAGE_PASSWORD, else none.
    page_password: SecretStr | None = None
    # Open demo: the page gets tokens without a password. null: on when no page password is set,
    # and then only for browsers on this host (loopback). true on a non-loopback http.host needs
    # http.allow_unauthenticated.
    open_demo: bool | None = None
    # Seconds a token stays valid (each token starts one call).
    token_ttl: PositiveSeconds | None = None

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: list[str] | None) -> list[str] | None:
        for item in v or ():
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise PydanticCustomError(
                    "ip_address",
                    "must list IP addresses of this host such as 192.0.2.10, got {got}",
                    {"got": _show(item)},
                ) from None
        return v


class MediaStreamConfig(Section):
    """Carrier media streams (/media*, /twilio/voice). null or "": GATEWAY_MEDIA_SECRET,
    TWILIO_AUTH_TOKEN, GATEWAY_PUBLIC_URL, GATEWAY_MEDIA_AGENT, else the edge's defaults."""

    # false: no /media* and no /twilio/voice.
    enabled: bool = True
    # Shared secret of the streams (and the HMAC key of the tokens the TwiML webhook mints).
    secret: SecretStr | None = None
    # Twilio account auth token: checks X-Twilio-Signature on the webhook and the stream.
    twilio_auth_token: SecretStr | None = None
    # The URL carriers reach us at (https://host[:port]) when a proxy sits in front.
    public_url: str | None = None
    # Agent for streams that name none and match no route; null or "": the gateway's default_agent.
    agent: str | None = None

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v and not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise PydanticCustomError(
                "url",
                "must be an http:// or https:// URL such as https://gw.example.com, got {got}",
                {"got": _show(v)},
            )
        return v


class CapacityConfig(Section):
    """How one machine shares its cores among calls (see also sip.session_hosts, sip.admission)."""

    # Processes decoding local STT (pocketsphinx) per session host; 0: a thread of the host, whose
    # event loop then stops while a decoder holds the GIL.
    stt_processes: Annotated[int, BeforeValidator(_not_bool), Field(ge=0, le=64)] = 1
    # Utterances a session host lets wait for its decoders; beyond, one is not transcribed (its
    # call gets an STT error) rather than every call's transcripts falling behind.
    stt_max_queue: Annotated[int, BeforeValidator(_not_bool), Field(ge=1)] = 16


class GatewayConfig(Section):
    """The gateway file (`config/gateway.yaml`): edges, database, routes and limits."""

    database: DatabaseConfig = DatabaseConfig()
    http: HttpConfig = HttpConfig()
    sip: SipConfig = SipConfig()
    routes: list[RouteConfig] = Field(default_factory=list)
    # Agent file for calls that match no route; null: such calls are rejected (404).
    default_agent: str | None = None
    limits: LimitsConfig = LimitsConfig()
    webrtc: WebRtcConfig = WebRtcConfig()
    mediastream: MediaStreamConfig = MediaStreamConfig()
    capacity: CapacityConfig = CapacityConfig()

    @property
    def route_table(self) -> list[tuple[str, str]]:
        """(match, agent) of each route, in order."""
        return [(r.match, r.agent) for r in self.routes]

    def agent_for(self, user: str) -> str | None:
        """The agent for a called user part / number (`gateway.config.routing.route_agent`)."""
        return route_agent(self.route_table, self.default_agent, callee=user)


ROOT_MODELS: dict[str, type[BaseModel]] = {"agent": AgentConfig, "gateway": GatewayConfig}
