"""WebRTC edge: browser callers over aiortc, and the softphone page that calls it.

Routes (added to `gateway serve`'s HTTP app by `install`): `GET /` (the softphone page),
`/webrtc/static/*` (its script and style), `POST /webrtc/offer`, `POST /webrtc/ice`,
`POST /webrtc/hangup`, `GET /webrtc/config`.

Module map: `settings.py`, `ice.py` (candidate addresses, ICE servers), `tracks.py` (paced
agent track, caller reader), `transport.py` (the CallTransport), `feed.py` (session log ->
page), `offer.py` (signalling and call life), `static/` (the page).
"""

from __future__ import annotations

import functools
from pathlib import Path

from aiohttp import web

from gateway.edges.webrtc.ice import restrict_host_addresses
from gateway.edges.webrtc.offer import WebRtcCall, WebRtcEdge
from gateway.edges.webrtc.settings import IceServer, WebRtcSettings
from gateway.runtime import GatewayRuntime

STATIC = Path(__file__).parent / "static"
WEBRTC_EDGE = web.AppKey("webrtc_edge", WebRtcEdge)


def make_install(settings: WebRtcSettings | None = None) -> functools.partial[None]:
    return functools.partial(_install, settings=settings)


def install(app: web.Application, runtime: GatewayRuntime) -> None:
    """The HTTP_ROUTES installer, with settings from the gateway file's `webrtc:` section (its
    unset keys from the environment)."""
    _install(app, runtime, settings=None)


def _install(app: web.Application, runtime: GatewayRuntime, settings: WebRtcSettings | None) -> None:
    settings = settings or WebRtcSettings.from_config(runtime.config)
    restrict_host_addresses(settings.addresses)
    edge = WebRtcEdge(runtime, settings)
    app[WEBRTC_EDGE] = edge

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    app.router.add_get("/", page)
    app.router.add_static("/webrtc/static/", STATIC)
    app.router.add_get("/webrtc/config", edge.config)
    app.router.add_post("/webrtc/offer", edge.offer)
    app.router.add_post("/webrtc/ice", edge.ice)
    app.router.add_post("/webrtc/hangup", edge.hangup)
    app.on_shutdown.append(edge.shutdown)


__all__ = [
    "WEBRTC_EDGE",
    "IceServer",
    "WebRtcCall",
    "WebRtcEdge",
    "WebRtcSettings",
    "install",
    "make_install",
]
