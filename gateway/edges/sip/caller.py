"""`gateway call`: a pjsua2 test caller that plays a WAV into a call and records the answer.

It places one call, plays the caller WAV from the moment media flows, records everything the
far end sends (the agent) at the codec's rate, optionally sends RFC 4733 DTMF, hangs up after
`duration` seconds, when `stop` is set (`gateway call` sets it on SIGTERM or SIGINT) or when the
far end hangs up, and returns a summary.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

from gateway.audio.resample import resample
from gateway.audio.wav import read_wav, write_wav
from gateway.edges.sip.buffers import DropOldestQueue, PlayoutBuffer
from gateway.edges.sip.bytevec import choose_reader
from gateway.edges.sip.endpoint import account_config, create_endpoint
from gateway.edges.sip.media_port import CallMediaPort, frame_bytes
from gateway.edges.sip.worker_options import EndpointOptions

log = logging.getLogger(__name__)


@dataclass
class CallOptions:
    to: str
    play: Path | None = None
    record: Path | None = None
    duration: float | None = None  # None: the WAV's length + 1.5 s
    codecs: list[str] = field(default_factory=lambda: ["PCMU", "PCMA", "G722"])
    transport: str = "udp"  # udp | tcp | tls
    dtmf: str = ""
    dtmf_at: float = 0.5
    timeout: float = 10.0  # for the answer
    srtp: str = "off"  # off | optional (offer RTP/AVP with keys) | required (offer RTP/SAVP)
    user: str = ""  # SIP digest credentials, when the gateway asks for them
    password: str = field(default="", repr=False)


@dataclass
class CallResult:
    answered: bool = False
    status: int = 0
    codec: str = ""
    sample_rate: int = 0
    ended_by: str = ""  # caller | remote | timeout
    seconds: float = 0.0
    recorded_frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


# The transport profile of the answer's audio stream (RTP/SAVP: SRTP with SDES keys).
MEDIA_PROTOS = {
    pj.PJMEDIA_TP_PROTO_RTP_AVP: "RTP/AVP",
    pj.PJMEDIA_TP_PROTO_RTP_SAVP: "RTP/SAVP",
    pj.PJMEDIA_TP_PROTO_DTLS_SRTP: "UDP/TLS/RTP/SAVP",
    pj.PJMEDIA_TP_PROTO_RTP_AVPF: "RTP/AVPF",
    pj.PJMEDIA_TP_PROTO_RTP_SAVPF: "RTP/SAVPF",
}


class _Call(pj.Call):
    def __init__(self, account: pj.Account) -> None:
        super().__init__(account)
        self.state = -1
        self.status = 0
        self.reason = ""
        self.media_ready = threading.Event()
        self.disconnected = False

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        self.state = info.state
        self.status = info.lastStatusCode
        self.reason = str(info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: Any) -> None:
        self.media_ready.set()


def place_call(opts: CallOptions, stop: threading.Event | None = None) -> CallResult:
    result = CallResult()
    stop = stop or threading.Event()
    ep, port = create_endpoint(
        EndpointOptions(
            sip_port=0, codecs=opts.codecs, tcp=opts.transport == "tcp", tls=opts.transport == "tls"
        )
    )
    account = pj.Account()
    acfg = account_config(EndpointOptions(srtp=opts.srtp), port, user=opts.user or "caller")
    if opts.user:
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", opts.user, 0, opts.password))
    account.create(acfg)
    call = _Call(account)
    media: CallMediaPort | None = None
    recorded: list[bytes] = []
    try:
        to = opts.to
        if opts.transport != "udp" and "transport=" not in to:
            to = f"{to};transport={opts.transport}"
        call.makeCall(to, pj.CallOpParam(True))
        start = time.monotonic()
        answered_at = 0.0
        deadline = start + opts.timeout
        caller_pcm = read_wav(opts.play) if opts.play else None
        dtmf_pending = bool(opts.dtmf)
        while not call.disconnected:
            ep.libHandleEvents(10)
            now = time.monotonic()
            if call.state == pj.PJSIP_INV_STATE_CONFIRMED and not answered_at:
                answered_at = now
                result.answered = True
                wav_len = caller_pcm.duration if caller_pcm else 0.0
                run_for = opts.duration if opts.duration is not None else wav_len + 1.5
                deadline = now + run_for
            if media is None and call.media_ready.is_set():
                media = _connect_media(call, caller_pcm, result)
            if media is not None:
                recorded.extend(media.inbound.drain())
                if dtmf_pending and answered_at and now - answered_at >= opts.dtmf_at:
                    call.dialDtmf(opts.dtmf)
                    dtmf_pending = False
            if now >= deadline or (stop.is_set() and not result.ended_by):
                result.ended_by = "caller" if answered_at else "timeout"
                call.hangup(pj.CallOpParam(True))
                deadline = now + 5.0
        if not result.ended_by:
            result.ended_by = "remote"
        result.status = call.status
        result.extra["reason"] = call.reason
        result.seconds = time.monotonic() - answered_at if answered_at else 0.0
        if media is not None:
            recorded.extend(media.inbound.drain())
            result.extra["frames_dropped"] = media.inbound.dropped
    finally:
        del call
        media = None
        account.shutdown()
        del account
        ep.libDestroy()
    result.recorded_frames = len(recorded)
    if opts.record is not None and result.sample_rate:
        pcm = np.frombuffer(b"".join(item[4:] for item in recorded), "<i2")
        write_wav(opts.record, pcm, result.sample_rate)
    return result


def _connect_media(call: _Call, caller: Any, result: CallResult) -> CallMediaPort | None:
    info = call.getInfo()
    index = -1
    for mi in info.media:
        if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            index = mi.index
    if index < 0:
        return None
    stream = call.getStreamInfo(index)
    codec = str(stream.codecName)
    rate = 16000 if codec.upper().startswith("G722") else int(stream.codecClockRate)
    result.codec, result.sample_rate = codec, rate
    result.extra["media_proto"] = MEDIA_PROTOS.get(int(stream.proto), str(stream.proto))
    playout = PlayoutBuffer(frame_bytes(rate), 1 << 30)
    if caller is not None:
        pcm = np.ascontiguousarray(caller.pcm[:, 0])
        if caller.rate != rate:
            pcm = resample(pcm, caller.rate, rate)
        playout.write(pcm.astype("<i2").tobytes())
    reader, _ = choose_reader()
    port = CallMediaPort(rate, reader, DropOldestQueue(1 << 20), playout, threading.Event())
    port.create("caller")
    audio = call.getAudioMedia(index)
    audio.startTransmit(port)
    port.startTransmit(audio)
    return port
