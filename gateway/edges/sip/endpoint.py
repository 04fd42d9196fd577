"""Building a pjsua2 Endpoint the way the gateway needs it (workers and the test caller share this).

- `threadCnt = 0`: SIP events are handled in whichever thread calls `libHandleEvents` (our main
  thread), so every pjsua2 API call happens on one thread; only media callbacks run elsewhere.
- null sound device: the conference bridge is clocked without any audio hardware.
- codecs: everything disabled except the configured ones, in the configured order (pjsua2's own
  default would pick speex/16000 first).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pjsua2 as pj

from gateway.edges.sip.worker_options import EndpointOptions

log = logging.getLogger(__name__)

# Names as operators write them -> pjsua2 codec ids.
CODEC_IDS = {
    "PCMU": "PCMU/8000/1",
    "PCMA": "PCMA/8000/1",
    "G722": "G722/16000/1",
}


def codec_priorities(available: Sequence[str], wanted: Sequence[str]) -> dict[str, int]:
    """Priority per available codec id: wanted ones 255, 254, … in order, all others 0 (disabled)."""
    ids = []
    for name in wanted:
        key = name.upper().replace("/", "")
        codec_id = CODEC_IDS.get(key)
        if codec_id is None:
            raise ValueError(f"unsupported codec {name!r}; choose from {', '.join(CODEC_IDS)}")
        ids.append(codec_id)
    prio = dict.fromkeys(available, 0)
    for i, codec_id in enumerate(ids):
        if codec_id in prio:
            prio[codec_id] = 255 - i
    return prio


def _transport_config(opts: EndpointOptions, port: int) -> pj.TransportConfig:
    cfg = pj.TransportConfig()
    cfg.port = port
    cfg.boundAddress = opts.host
    if opts.public_address:
        cfg.publicAddress = opts.public_address
    return cfg


def _udp_and_tcp(ep: pj.Endpoint, opts: EndpointOptions, attempts: int = 8) -> str:
    """Bind UDP (and TCP on the same port number, when asked); returns the port as text.

    With `sip_port` 0 the OS picks the UDP port, and that number may already be taken for TCP (by a
    listener or a connection of another process): then the UDP transport is closed and another port
    tried, instead of failing. An explicit port that is taken fails at once.
    """
    for attempt in range(attempts):
        udp_id = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, _transport_config(opts, opts.sip_port))
        port = str(ep.transportGetInfo(udp_id).localName.rsplit(":", 1)[1])
        if not opts.tcp:
            return port
        try:
            ep.transportCreate(pj.PJSIP_TRANSPORT_TCP, _transport_config(opts, int(port)))
            return port
        except pj.Error:
            if opts.sip_port or attempt == attempts - 1:
                raise
            ep.transportClose(udp_id)
    raise AssertionError("unreachable")


def create_endpoint(opts: EndpointOptions, ep: pj.Endpoint | None = None) -> tuple[pj.Endpoint, int]:
    """Create (or take `ep`, a subclass with callbacks), configure and start an endpoint; returns it
    and the bound SIP port."""
    ep = pj.Endpoint() if ep is None else ep
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = False
    cfg.uaConfig.maxCalls = opts.max_calls
    cfg.uaConfig.userAgent = opts.user_agent
    cfg.logConfig.level = opts.log_level
    cfg.logConfig.consoleLevel = opts.log_level
    cfg.medConfig.clockRate = opts.clock_rate
    cfg.medConfig.sndClockRate = opts.clock_rate
    cfg.medConfig.channelCount = 1
    cfg.medConfig.audioFramePtime = 20
    cfg.medConfig.ptime = 20
    cfg.medConfig.noVad = True  # keep sending RTP during agent silence; callers' NATs like it
    cfg.medConfig.ecTailLen = 0  # no echo canceller: the far end is a phone network, not a speaker
    cfg.medConfig.threadCnt = 1
    ep.libInit(cfg)
    ep.audDevManager().setNullDev()

    port = _udp_and_tcp(ep, opts)
    if opts.tls:
        # Any free port: it also listens, but calls it places reuse their outgoing connection.
        # The server's certificate is not verified (tests use self-signed ones).
        tls_cfg = pj.TransportConfig()
        tls_cfg.port = 0
        tls_cfg.boundAddress = opts.host
        tls_cfg.tlsConfig.verifyServer = False
        ep.transportCreate(pj.PJSIP_TRANSPORT_TLS, tls_cfg)
    ep.libStart()

    available = [c.codecId for c in ep.codecEnum2()]
    for codec_id, prio in codec_priorities(available, opts.codecs).items():
        ep.codecSetPriority(codec_id, prio)
    log.info("pjsua2 %s on %s:%s, codecs %s", ep.libVersion().full, opts.host, port, list(opts.codecs))
    return ep, int(port)


SESSION_TIMER_MODES = {
    "off": pj.PJSUA_SIP_TIMER_INACTIVE,
    "optional": pj.PJSUA_SIP_TIMER_OPTIONAL,
    "required": pj.PJSUA_SIP_TIMER_REQUIRED,
}


SRTP_MODES = {
    "off": pj.PJMEDIA_SRTP_DISABLED,
    "optional": pj.PJMEDIA_SRTP_OPTIONAL,
    "required": pj.PJMEDIA_SRTP_MANDATORY,
}


def account_config(opts: EndpointOptions, sip_port: int, user: str = "gateway") -> pj.AccountConfig:
    """A local account (no registration) that receives calls on the endpoint's transports."""
    acfg = pj.AccountConfig()
    host = opts.public_address or opts.host
    acfg.idUri = f"sip:{user}@{host}:{sip_port}"
    media = acfg.mediaConfig.transportConfig
    media.boundAddress = opts.rtp_host or opts.host
    media.port = opts.rtp_port
    media.portRange = opts.rtp_port_range
    if opts.media_address or opts.public_address:
        media.publicAddress = opts.media_address or opts.public_address
    try:
        acfg.callConfig.timerUse = SESSION_TIMER_MODES[opts.session_timer]
    except KeyError:
        raise ValueError(f"session timer must be one of {', '.join(SESSION_TIMER_MODES)}") from None
    acfg.callConfig.timerSessExpiresSec = opts.session_expires
    acfg.callConfig.timerMinSESec = opts.min_se
    try:
        acfg.mediaConfig.srtpUse = SRTP_MODES[opts.srtp]
    except KeyError:
        raise ValueError(f"srtp must be one of {', '.join(SRTP_MODES)}") from None
    # Secure signalling is the front's job: TLS ends at Kamailio and the worker hears the INVITE
    # over loopback UDP, so pjsua2 must not ask for TLS (or sips:) itself before offering SRTP.
    acfg.mediaConfig.srtpSecureSignaling = 0
    return acfg
