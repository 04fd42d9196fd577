"""Carrier media streams over WebSocket: Twilio, Telnyx, Plivo, Exotel and Vonage numbers.

Routes (added to an HTTP app by `install(app, sessions, settings)`):

- `GET /media` — any dialect, detected from the first messages;
- `GET /media/{twilio,telnyx,plivo,exotel,vonage}` — that dialect only;
- `POST /twilio/voice` — Twilio's voice webhook, answered with `<Connect><Stream>`.

Module map: `dialects/` (one sans-I/O module per carrier), `auth.py` (secrets, signed tokens,
Twilio signatures), `marks.py` (heard position from mark echoes), `transport.py` (the
CallTransport), `handler.py` (the WebSocket coroutine), `twiml.py`. A carrier in a box, for the
tests and the benchmark, is `tests/carrier_simulator.py` (not shipped).
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.calls import CallSessions
from gateway.edges.mediastream.dialects import DIALECTS
from gateway.edges.mediastream.handler import MediaStreamEdge
from gateway.edges.mediastream.settings import MediaStreamSettings
from gateway.edges.mediastream.twiml import voice_webhook

log = logging.getLogger(__name__)

MEDIASTREAM_EDGE = web.AppKey("mediastream_edge", MediaStreamEdge)


def install(app: web.Application, sessions: CallSessions, settings: MediaStreamSettings) -> MediaStreamEdge:
    """Add the media-stream and Twilio webhook routes to `app`; calls go to `sessions`."""
    if not settings.authenticated:
        log.warning(
            "media streams are not authenticated: set mediastream.secret and/or "
            "mediastream.twilio_auth_token (or GATEWAY_MEDIA_SECRET / TWILIO_AUTH_TOKEN)"
        )
    edge = MediaStreamEdge(sessions, settings)
    app[MEDIASTREAM_EDGE] = edge

    async def any_dialect(request: web.Request) -> web.StreamResponse:
        return await edge.handle(request)

    app.router.add_get("/media", any_dialect)
    for name in DIALECTS:

        async def forced(request: web.Request, name: str = name) -> web.StreamResponse:
            return await edge.handle(request, forced=name)

        app.router.add_get(f"/media/{name}", forced)

    async def twilio_voice(request: web.Request) -> web.Response:
        return await voice_webhook(request, sessions, settings)

    app.router.add_post("/twilio/voice", twilio_voice)
    return edge


__all__ = ["MEDIASTREAM_EDGE", "MediaStreamEdge", "MediaStreamSettings", "install"]
