"""Settings of the WebRTC edge: the gateway file's `webrtc:` section, else environment variables.

The defaults live here only: a key the gateway file leaves null (or a string key it leaves empty)
falls back to its environment variable, and without one to the default below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config.schema import GatewayConfig


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
    # HMAC key of offer tokens; "": a random key per process (tokens only from /webrtc/token).
    secret: str = ""
    # The page gets a token when it sends this password ("": no password).
    page_password: str = ""
    # Tokens for the page without a password. None: when no page password is set, and then only to
    # browsers on this host (loopback peers); True: to anyone who reaches the page.
    open_demo: bool | None = None
    # Seconds an offer token stays valid.
    token_ttl: float = 60.0

    @property
    def page_tokens(self) -> str:
        """How the page gets its tokens: "password", "open" (anyone), "loopback" or "none"."""
        if self.open_demo is True:
            return "open"
        if self.page_password:
            return "password"
        return "none" if self.open_demo is False else "loopback"

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, http_host: str = "127.0.0.1"
    ) -> WebRtcSettings:
        """GATEWAY_ICE_SERVERS (JSON list of {urls, username, credential}), GATEWAY_WEBRTC_ADDRESSES
        (comma-separated; default 127.0.0.1 when HTTP listens on loopback), GATEWAY_WEBRTC_AGENT,
        GATEWAY_WEBRTC_SECRET, GATEWAY_WEBRTC_PAGE_PASSWORD."""
        env = os.environ if env is None else env
        return cls(
            ice_servers=_ice_servers_from_env(env),
            addresses=_addresses_from_env(env, http_host),
            agent=env.get("GATEWAY_WEBRTC_AGENT") or None,
            secret=env.get("GATEWAY_WEBRTC_SECRET", ""),
            page_password=env.get("GATEWAY_WEBRTC_PAGE_PASSWORD", ""),
        )

    @classmethod
    def from_config(cls, config: GatewayConfig, env: Mapping[str, str] | None = None) -> WebRtcSettings:
        """The gateway file's `webrtc:` section; its null keys (and empty agent) come from `from_env`."""
        env = os.environ if env is None else env
        section = config.webrtc
        if section.ice_servers is None:
            servers = _ice_servers_from_env(env)
        else:
            servers = [
                IceServer(
                    list(s.urls),
                    s.username,
                    None if s.credential is None else s.credential.get_secret_value(),
                )
                for s in section.ice_servers
            ]
        if section.addresses is None:
            addresses = _addresses_from_env(env, config.http.host)
        else:
            addresses = list(section.addresses)
        agent = section.agent or env.get("GATEWAY_WEBRTC_AGENT") or None
        secret = section.secret.get_secret_value() if section.secret is not None else ""
        password = section.page_password.get_secret_value() if section.page_password is not None else ""
        return cls(
            ice_servers=servers,
            addresses=addresses,
            agent=agent,
            secret=secret or env.get("GATEWAY_WEBRTC_SECRET", ""),
            page_password=password or env.get("GATEWAY_WEBRTC_PAGE_PASSWORD", ""),
            open_demo=section.open_demo,
            token_ttl=section.token_ttl if section.token_ttl is not None else cls.token_ttl,
        )


def _ice_servers_from_env(env: Mapping[str, str]) -> list[IceServer]:
    servers = []
    for item in json.loads(env.get("GATEWAY_ICE_SERVERS", "[]") or "[]"):
        urls = item["urls"] if isinstance(item["urls"], list) else [item["urls"]]
        servers.append(IceServer(urls, item.get("username"), item.get("credential")))
    return servers


def _addresses_from_env(env: Mapping[str, str], http_host: str) -> list[str]:
    raw = env.get("GATEWAY_WEBRTC_ADDRESSES")
    if raw is None:
        return ["127.0.0.1"] if http_host.startswith("127.") or http_host == "localhost" else []
    return [a.strip() for a in raw.split(",") if a.strip()]
