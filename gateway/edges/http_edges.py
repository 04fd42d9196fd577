"""The edges served on `gateway serve`'s HTTP port, and what they share.

    from gateway.edges.http_edges import install_all
    install_all()          # before runtime.http_service(): adds the WebRTC and media-stream routes

`choose_agent` is how an HTTP edge picks the agent of a call: a plain agent name the caller asked
for (never a path: a browser or a carrier must not make the gateway load arbitrary files), else
the gateway's routes on the called number, else the edge's or the gateway's default agent.
"""

from __future__ import annotations

import re

from gateway.runtime import HTTP_ROUTES, GatewayRuntime

_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def install_all() -> None:
    """Register the WebRTC edge (softphone page, /webrtc/*) and the media-stream edge (/media*,
    /twilio/voice) with the runtime's HTTP app. Idempotent."""
    from gateway.edges import mediastream, webrtc

    for install in (webrtc.install, mediastream.install):
        if install not in HTTP_ROUTES:
            HTTP_ROUTES.append(install)


def choose_agent(
    runtime: GatewayRuntime, requested: str = "", callee: str = "", default: str | None = None
) -> str:
    if requested and _AGENT_NAME.fullmatch(requested):
        return requested
    config = runtime.config
    if callee:
        for route in config.routes:
            if route.matches(callee):
                return route.agent
    return default or config.default_agent or "default"
