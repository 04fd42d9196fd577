"""Twilio's voice webhook: answer an incoming call with TwiML `<Connect><Stream>` to our stream.

Twilio POSTs the call's parameters (CallSid, From, To, ...) signed with X-Twilio-Signature; a bad
or missing signature (when an auth token is configured) is refused with 403 and a logged reason.
The answer connects the call to `/media/twilio` on the host Twilio reached us at, passing the
agent, the caller and a stream token bound to the CallSid as `<Parameter>`s (Twilio stream URLs
take no query string), so the stream can be authenticated when it starts.
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import quoteattr

from aiohttp import web

from gateway.calls import CallSessions, RefusedAttempt, report_refusal
from gateway.edges.mediastream import auth
from gateway.edges.mediastream.settings import MediaStreamSettings

log = logging.getLogger(__name__)


def stream_url(request: web.Request, settings: MediaStreamSettings) -> str:
    if settings.public_url:
        scheme, _, rest = settings.public_url.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/media/twilio"
    forwarded = request.headers.get("X-Forwarded-Proto", "")
    secure = request.secure or forwarded == "https"
    return f"{'wss' if secure else 'ws'}://{request.host}/media/twilio"


def connect_stream(url: str, parameters: dict[str, str]) -> str:
    params = "".join(
        f"<Parameter name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in parameters.items() if v
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response><Connect><Stream url={quoteattr(url)}>{params}</Stream></Connect></Response>"
    )


async def voice_webhook(
    request: web.Request, sessions: CallSessions, settings: MediaStreamSettings
) -> web.Response:
    try:
        form = await request.post()
    except ValueError as exc:  # not UTF-8, a broken multipart body (found by tests/test_fuzz_http.py)
        log.warning("Twilio webhook from %s refused: unreadable form body (%s)", request.remote, exc)
        return web.Response(status=400, text=f"bad request: unreadable form body ({exc})\n")
    params = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    if settings.twilio_auth_token:
        signature = request.headers.get("X-Twilio-Signature", "")
        urls = [str(request.url)]
        if settings.public_url:
            urls.insert(0, settings.public_url.rstrip("/") + request.rel_url.path_qs)
        result = (
            auth.verify_twilio(settings.twilio_auth_token, signature, urls, params)
            if signature
            else auth.AuthResult.failed("no X-Twilio-Signature")
        )
        if not result.ok:
            log.warning("Twilio webhook from %s refused: %s", request.remote, result.reason)
            attempt = RefusedAttempt(
                "mediastream",
                "auth",
                f"Twilio webhook: {result.reason}",
                403,
                request.remote or "",
                call_id=params.get("CallSid", ""),
            )
            report_refusal(sessions, attempt)
            return web.Response(status=403, text=f"forbidden: {result.reason}\n")
    call_sid = params.get("CallSid", "")
    agent = sessions.route(request.query.get("agent", ""), params.get("To", ""), settings.agent)
    parameters = {
        "agent": agent if "/" not in agent else "",
        "from": params.get("From", ""),
        "to": params.get("To", ""),
    }
    if settings.secret:
        parameters["token"] = auth.make_token(settings.secret, scope=call_sid, ttl=settings.token_ttl)
    body = connect_stream(stream_url(request, settings), parameters)
    return web.Response(text=body, content_type="application/xml")
