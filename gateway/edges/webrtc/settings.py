"""Settings of the WebRTC edge (environment variables until the gateway file has a section)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class IceServer:
    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True)
class WebRtcSettings:
    # STUN/TURN servers for the gateway's own candidates (and handed to the softphone page).
    # None by default: the embedded demo runs on loopback and must not reach out.
    ice_servers: list[IceServer] = field(default_factory=list)
    # Local addresses ICE gathers host candidates on; empty: every interface aioice finds
    # (it skips loopback, so the loopback demo names 127.0.0.1 here).
    addresses: list[str] = field(default_factory=list)
    # Audio codecs offered in the answer, in preference order (aiortc names).
    codecs: list[str] = field(default_factory=lambda: ["opus", "PCMU", "PCMA"])
    # Agent audio the outbound track may hold before the oldest frames are dropped.
    max_queue_frames: int = 25
    # Agent for calls that name none (None: the gateway's default_agent).
    agent: str | None = None
    # Peer connections that never connect are closed after this many seconds.
    connect_timeout: float = 30.0

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, http_host: str = "127.0.0.1"
    ) -> WebRtcSettings:
        """GATEWAY_ICE_SERVERS (JSON list of {urls, username, credential}), GATEWAY_WEBRTC_ADDRESSES
        (comma-separated; default 127.0.0.1 when HTTP listens on loopback), GATEWAY_WEBRTC_AGENT."""
        env = os.environ if env is None else env
        servers = []
        for item in json.loads(env.get("GATEWAY_ICE_SERVERS", "[]") or "[]"):
            urls = item["urls"] if isinstance(item["urls"], list) else [item["urls"]]
            servers.append(IceServer(urls, item.get("username"), item.get("credential")))
        raw = env.get("GATEWAY_WEBRTC_ADDRESSES")
        if raw is None:
            addresses = ["127.0.0.1"] if http_host.startswith("127.") or http_host == "localhost" else []
        else:
            addresses = [a.strip() for a in raw.split(",") if a.strip()]
        return cls(ice_servers=servers, addresses=addresses, agent=env.get("GATEWAY_WEBRTC_AGENT") or None)
