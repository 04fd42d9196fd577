"""Refusing to serve unauthenticated edges beyond this host: the check `gateway serve` runs first.

On loopback (the demo default) everything may be open. An HTTP or SIP address other than loopback
needs every edge on it to check who is calling, or the operator's explicit
`http.allow_unauthenticated` / `sip.allow_unauthenticated`:

- SIP: `sip.allow` (source networks) or `sip.auth` (digest);
- WebRTC: offers always need a signed token; an open demo (`webrtc.open_demo: true`, tokens for
  anyone) is the exposure;
- media streams: `mediastream.secret` or `mediastream.twilio_auth_token` (or their environment
  variables);
- /metrics: `http.metrics.allow` and/or `http.metrics.token`.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping

from gateway.config.errors import KeyPath
from gateway.config.schema import GatewayConfig


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def exposure_problems(
    config: GatewayConfig, env: Mapping[str, str] | None = None, *, http: bool = True
) -> list[tuple[KeyPath, str]]:
    """(key path, why) for each unauthenticated edge on a non-loopback address; [] when safe.
    `http=False`: the HTTP port is not served (`gateway serve --session`)."""
    env = os.environ if env is None else env
    problems: list[tuple[KeyPath, str]] = []
    sip = config.sip
    if not is_loopback_host(sip.host) and not (sip.allow or sip.auth) and not sip.allow_unauthenticated:
        problems.append(
            (
                ("sip", "host"),
                f"listening on {sip.host} with neither sip.allow nor sip.auth: anyone who reaches the "
                "port could place calls; set one, or sip.allow_unauthenticated: true",
            )
        )
    if not http:
        return problems
    return problems + _http_problems(config, env)


def _http_problems(config: GatewayConfig, env: Mapping[str, str]) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    http = config.http
    if is_loopback_host(http.host) or http.allow_unauthenticated:
        return problems
    way_out = "or http.allow_unauthenticated: true"
    if config.webrtc.enabled and config.webrtc.open_demo:
        problems.append(
            (
                ("webrtc", "open_demo"),
                f"an open demo on {http.host} hands call tokens to anyone; set webrtc.page_password "
                f"(or mint tokens with webrtc.secret), {way_out}",
            )
        )
    if config.mediastream.enabled:
        secret = config.mediastream.secret
        twilio = config.mediastream.twilio_auth_token
        if not (
            (secret is not None and secret.get_secret_value())
            or (twilio is not None and twilio.get_secret_value())
            or env.get("GATEWAY_MEDIA_SECRET")
            or env.get("TWILIO_AUTH_TOKEN")
        ):
            problems.append(
                (
                    ("mediastream", "secret"),
                    f"media streams on {http.host} are not authenticated: set mediastream.secret or "
                    f"mediastream.twilio_auth_token, mediastream.enabled: false, {way_out}",
                )
            )
    token = http.metrics.token
    if (
        not http.metrics.allow
        and not (token is not None and token.get_secret_value())
        and not env.get("GATEWAY_METRICS_TOKEN")
    ):
        problems.append(
            (
                ("http", "metrics"),
                f"/metrics on {http.host} is open to anyone: set http.metrics.allow and/or "
                f"http.metrics.token, {way_out}",
            )
        )
    return problems
