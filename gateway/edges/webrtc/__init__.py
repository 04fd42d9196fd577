"""WebRTC edge: browser callers over aiortc, and the softphone page that calls it.

Routes (added to an HTTP app by `install(app, sessions, settings)`): `GET /` (the softphone page),
`/webrtc/static/*` (its script and style), `POST /webrtc/token`, `POST /webrtc/offer`, `POST /webrtc/ice`,
`POST /webrtc/hangup`, `GET /webrtc/config`.

Module map: `settings.py`, `ice.py` (candidate addresses, ICE servers), `tracks.py` (paced
agent track, caller reader), `transport.py` (the CallTransport), `feed.py` (session log ->
page), `offer.py` (signalling and call life), `static/` (the page).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.calls import CallSessions
from gateway.edges.webrtc.ice import restrict_host_addresses
from gateway.edges.webrtc.offer import WebRtcCall, WebRtcEdge
from gateway.edges.webrtc.settings import IceServer, WebRtcSettings
from gateway.edges.webrtc.tokens import OfferTokens, make_offer_token

STATIC = Path(__file__).parent / "static"
WEBRTC_EDGE = web.AppKey("webrtc_edge", WebRtcEdge)


def install(app: web.Application, sessions: CallSessions, settings: WebRtcSettings) -> WebRtcEdge:
    """Add the softphone page and the WebRTC signalling routes to `app`; calls go to `sessions`."""
    restrict_host_addresses(settings.addresses)
    edge = WebRtcEdge(sessions, settings)
    app[WEBRTC_EDGE] = edge

    async def page(request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    app.router.add_get("/", page)
    app.router.add_static("/webrtc/static/", STATIC)
    app.router.add_get("/webrtc/config", edge.config)
    app.router.add_post("/webrtc/token", edge.token)
    app.router.add_post("/webrtc/offer", edge.offer)
    app.router.add_post("/webrtc/ice", edge.ice)
    app.router.add_post("/webrtc/hangup", edge.hangup)
    app.on_shutdown.append(edge.shutdown)
    return edge


__all__ = [
    "WEBRTC_EDGE",
    "IceServer",
    "OfferTokens",
    "WebRtcCall",
    "WebRtcEdge",
    "WebRtcSettings",
    "install",
    "make_offer_token",
]
