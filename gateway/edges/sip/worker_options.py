"""What a pjsua2 worker process is told, as one object: `WorkerOptions`, JSON on its command line.

`gateway serve` builds one per worker from its SipPlan (`service.worker_options`), so a setting
of the gateway file takes one path to a worker: config -> SipPlan -> WorkerOptions -> JSON. Both
classes import no pjsua2: the main process builds them, the worker and the test caller use them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EndpointOptions:
    host: str = "127.0.0.1"
    sip_port: int = 0  # 0: let the OS choose
    rtp_port: int = 0  # first RTP port tried (pjsua steps by 2 on collisions)
    rtp_port_range: int = 1000  # RTP/RTCP ports tried: [rtp_port, rtp_port + rtp_port_range)
    rtp_host: str = ""  # address RTP binds to; empty: `host`
    public_address: str = ""  # address written into SDP/Contact when listening on 0.0.0.0
    media_address: str = ""  # address written into SDP only (RTP behind NAT); SIP stays on `host`
    codecs: Sequence[str] = ("PCMU", "PCMA", "G722")
    session_timer: str = "optional"  # RFC 4028: off | optional | required (PJSIP's default: optional)
    session_expires: int = 1800  # Session-Expires we ask for, seconds
    min_se: int = 90  # the shortest session interval we accept, seconds
    srtp: str = "off"  # off | optional | required: SRTP of the media (SDES keys)
    tcp: bool = True
    tls: bool = False  # a TLS client transport (the test caller; workers speak plain SIP to the front)
    max_calls: int = 4
    log_level: int = 1
    user_agent: str = "voice-gateway"
    clock_rate: int = 16000
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class WorkerOptions:
    index: int
    endpoint: EndpointOptions
    control: str | None  # the session host's socket; None: a bare worker (frames discarded)
    routes: list[tuple[str, str]]
    default_agent: str | None
    ring_delay: float
    rtp_timeout: float
    max_duration: float
    retry_after: int
    inbound_queue_frames: int = 50  # 1 s of audio; older frames are dropped (and counted) beyond
    max_playout_seconds: float = 300.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerOptions:
        data: dict[str, Any] = json.loads(text)
        endpoint = dict(data.pop("endpoint"))
        endpoint["codecs"] = tuple(endpoint["codecs"])
        routes = [(str(match), str(agent)) for match, agent in data.pop("routes")]
        return cls(endpoint=EndpointOptions(**endpoint), routes=routes, **data)
