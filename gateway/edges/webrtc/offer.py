"""HTTP signalling of the WebRTC edge: SDP offer/answer, trickle ICE, hang-up; one WebRtcCall per peer.

    POST /webrtc/token   {"agent"?, "password"?}  -> {"token", "expires"} (tokens.py)
    POST /webrtc/offer   {"sdp", "type": "offer", "agent"?, "token"}  -> {"sdp", "type": "answer", "id"}
    POST /webrtc/ice     {"id", "candidate": {"candidate", "sdpMid", "sdpMLineIndex"} | null}
    POST /webrtc/hangup  {"id"}
    GET  /webrtc/config  -> {"iceServers": [...], "tokens": open | loopback | password | none} for the page

Every offer needs a token signed for the agent it asks for (`Authorization: Bearer` or the body's
`token`): a page gets one from /webrtc/token with the page password, or without one in open demo
mode (by default only browsers on this host, on loopback); an operator's web app can mint them with
the shared secret. Every refused offer is logged and reported with its reason
(`gateway.calls.report_refusal`).

The answer carries all of the gateway's candidates (aiortc gathers before answering; on
loopback that is immediate); the browser may trickle its own. The agent's audio track and the
caller's track meet in a WebRtcTransport that the AgentRunner runs like any other call; a data
channel named "events" carries the SessionFeed to the page and the page's reports back
(received-audio energy, DTMF, hang-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel
from aiortc.sdp import candidate_from_sdp

from gateway.calls import CallInfo, CallObserver, CallSessions, RefusedAttempt, report_refusal
from gateway.edges.webrtc.feed import SessionFeed
from gateway.edges.webrtc.ice import page_ice_servers, rtc_configuration
from gateway.edges.webrtc.settings import WebRtcSettings
from gateway.edges.webrtc.tokens import OfferTokens
from gateway.edges.webrtc.tracks import AgentAudioTrack, read_caller
from gateway.edges.webrtc.transport import WebRtcTransport

log = logging.getLogger(__name__)

MAX_SDP = 64 * 1024
# Wrong page passwords from one address before /webrtc/token answers 429 for a while.
PASSWORD_TRIES, PASSWORD_WINDOW = 5, 60.0


@dataclass
class WebRtcCall:
    id: str
    pc: RTCPeerConnection
    transport: WebRtcTransport
    feed: SessionFeed
    observer: CallObserver = field(default_factory=CallObserver)
    channel: RTCDataChannel | None = None
    running: bool = False  # the call has been handed to the sessions
    page_reports: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (call t, report)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # feed messages before the channel opened

    def send(self, message: str) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            for queued in self.pending:
                channel.send(queued)
            self.pending.clear()
            channel.send(message)
        else:
            self.pending.append(message)


def _bad(reason: str, status: int = 400) -> web.Response:
    log.warning("WebRTC signalling refused: %s", reason)
    return web.json_response({"error": reason}, status=status)


def _is_loopback(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def _offer_codecs(sdp: str) -> list[str]:
    """The audio codecs an SDP offer names (rtpmap encodings, lower case)."""
    match = re.search(r"^m=audio \d+ \S+ ([\d ]+)", sdp, re.MULTILINE)
    if match is None:
        return []
    names = []
    for pt in match.group(1).split():
        rtpmap = re.search(rf"^a=rtpmap:{pt} ([^/\s]+)", sdp, re.MULTILINE)
        names.append(
            rtpmap.group(1).lower() if rtpmap else {"0": "pcmu", "8": "pcma", "9": "g722"}.get(pt, pt)
        )
    return names


def _codec_of(sdp: str) -> str:
    """The first audio codec of an SDP answer (e.g. opus/48000/2, PCMU/8000)."""
    match = re.search(r"^m=audio \d+ \S+ (\d+)", sdp, re.MULTILINE)
    if match is None:
        return ""
    rtpmap = re.search(rf"^a=rtpmap:{match.group(1)} (\S+)", sdp, re.MULTILINE)
    return rtpmap.group(1) if rtpmap else ""


class WebRtcEdge:
    def __init__(self, sessions: CallSessions, settings: WebRtcSettings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.calls: dict[str, WebRtcCall] = {}
        self.finished: deque[WebRtcCall] = deque(maxlen=100)
        self._started = asyncio.Condition()
        self.tokens = OfferTokens(settings.secret, settings.token_ttl)
        self._wrong_passwords: dict[str, deque[float]] = {}  # remote -> times of wrong passwords

    def _refuse(
        self, request: web.Request, reason: str, detail: str, status: int, agent: str = ""
    ) -> web.Response:
        attempt = RefusedAttempt(
            "webrtc", reason, detail, status, caller=request.remote or "", callee=agent, agent=agent
        )
        report_refusal(self.sessions, attempt)
        return web.json_response({"error": detail, "reason": reason}, status=status)

    async def wait_call(self) -> WebRtcCall:
        """The next call whose session is running (tests)."""
        async with self._started:
            await self._started.wait_for(lambda: any(c.running for c in self.calls.values()))
            return next(c for c in self.calls.values() if c.running)

    # -- HTTP handlers --------------------------------------------------------------------------

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"iceServers": page_ice_servers(self.settings), "tokens": self.settings.page_tokens}
        )

    async def token(self, request: web.Request) -> web.Response:
        """A token for the page: with the page password, or in open demo mode."""
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("agent", ""), str):
            return self._refuse(request, "bad_request", "expected {agent?, password?}", 400)
        agent = str(body.get("agent") or "")[:128]
        mode = self.settings.page_tokens
        if mode == "password":
            password = body.get("password")
            if not isinstance(password, str) or not password:  # the page asks its user, then retries
                required = {"error": "the page password is required", "password": True}
                return web.json_response(required, status=401)
            now = time.monotonic()
            wrong = self._wrong_passwords.setdefault(request.remote or "", deque())
            while wrong and wrong[0] < now - PASSWORD_WINDOW:
                wrong.popleft()
            if len(wrong) >= PASSWORD_TRIES:
                detail = f"{len(wrong)} wrong page passwords within {PASSWORD_WINDOW:g} s"
                return self._refuse(request, "rate_limit", detail, 429, agent)
            if not hmac.compare_digest(password.encode(), self.settings.page_password.encode()):
                wrong.append(now)
                if len(self._wrong_passwords) > 10_000:  # bounded: forget the oldest addresses
                    self._wrong_passwords.pop(next(iter(self._wrong_passwords)))
                return self._refuse(request, "auth", "wrong page password", 401, agent)
        elif mode == "loopback" and (
            not _is_loopback(request.remote)
            or "X-Forwarded-For" in request.headers
            or "Forwarded" in request.headers
        ):  # a proxy on this host makes every browser look local
            return self._refuse(
                request, "auth", "the open demo hands tokens only to browsers on this host", 403, agent
            )
        elif mode == "none":
            return self._refuse(request, "auth", "this gateway hands no tokens to the page", 403, agent)
        token, expires = self.tokens.mint(agent)
        return web.json_response({"token": token, "expires": expires})

    async def offer(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_SDP:
            return self._refuse(request, "bad_request", "offer too large", 413)
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(request, "bad_request", "offer is not JSON", 400)
        if not isinstance(body, dict) or body.get("type") != "offer" or not isinstance(body.get("sdp"), str):
            return self._refuse(request, "bad_request", "expected {sdp, type: offer, token}", 400)
        requested = str(body.get("agent") or "")
        token = body.get("token")
        scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and bearer.strip():
            token = bearer.strip()
        if not isinstance(token, str) or not token:
            return self._refuse(request, "auth", "no offer token (POST /webrtc/token)", 401, requested)
        problem = self.tokens.check(token, requested)
        if problem is not None:
            return self._refuse(request, "auth", problem, 401, requested)
        if re.search(r"^m=audio [1-9]", body["sdp"], re.MULTILINE) is None:
            return self._refuse(request, "bad_request", "the offer has no audio stream", 400, requested)
        codecs = _offer_codecs(body["sdp"])
        wanted = [c.lower() for c in self.settings.codecs]
        if codecs and not set(codecs) & set(wanted):
            detail = (
                f"offer has only {', '.join(codecs)}; this gateway takes {', '.join(self.settings.codecs)}"
            )
            return self._refuse(request, "codec", detail, 400, requested)
        try:
            choice = self.sessions.choose(requested, "", self.settings.agent)
        except Exception as exc:
            return self._refuse(request, "routing", str(exc), 500, requested)
        agent, rate = choice.agent, choice.sample_rate
        call_id = f"webrtc:{uuid.uuid4().hex[:16]}"
        pc = RTCPeerConnection(rtc_configuration(self.settings))
        track = AgentAudioTrack(rate, self.settings.max_queue_frames)
        info = CallInfo(call_id, "webrtc", agent, caller=request.remote or "", callee=agent, sample_rate=rate)
        transport = WebRtcTransport(info, track)
        call = WebRtcCall(call_id, pc, transport, SessionFeed(lambda m: call.send(m)))

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            call.channel = channel
            channel.on("message", lambda message: self._page_message(call, message))
            channel.on("open", lambda: call.send(json.dumps({"type": "hello", "id": call_id})))
            if channel.readyState == "open":
                call.send(json.dumps({"type": "hello", "id": call_id}))

        @pc.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            if remote.kind == "audio":
                call.tasks.append(asyncio.create_task(read_caller(remote, rate, transport.feed)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("WebRTC %s: %s", call_id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                transport.end("caller_hangup" if pc.connectionState == "closed" else "error")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
            self._prefer_codecs(pc)
            pc.addTrack(track)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as exc:  # a bad SDP must not leak a peer connection
            with contextlib.suppress(Exception):  # aiortc may fail to close a half-made one too
                await pc.close()
            return self._refuse(request, "media", f"cannot answer the offer: {exc}", 400, agent)
        local = pc.localDescription
        transport.info = replace(info, codec=_codec_of(local.sdp))
        self.calls[call_id] = call
        call.tasks.append(asyncio.create_task(self._run(call), name=f"call {call_id}"))
        log.info(
            "WebRTC call %s (%s) from %s: agent %s", call_id, transport.info.codec, request.remote, agent
        )
        return web.json_response({"sdp": local.sdp, "type": local.type, "id": call_id})

    async def ice(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _bad("candidate is not JSON")
        call = self.calls.get(str(body.get("id", ""))) if isinstance(body, dict) else None
        if call is None:
            return _bad("unknown call", 404)
        cand = body.get("candidate")
        try:
            if not cand or not cand.get("candidate"):
                await call.pc.addIceCandidate(None)  # end of candidates
            else:
                text = str(cand["candidate"]).removeprefix("candidate:")
                candidate = candidate_from_sdp(text)
                candidate.sdpMid = cand.get("sdpMid")
                candidate.sdpMLineIndex = cand.get("sdpMLineIndex")
                await call.pc.addIceCandidate(candidate)
        except Exception as exc:
            return _bad(f"bad candidate: {exc}")
        return web.json_response({"ok": True})

    async def hangup(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _bad("hangup is not JSON")
        call = self.calls.get(str(body.get("id", ""))) if isinstance(body, dict) else None
        if call is None:
            return _bad("unknown call", 404)
        call.transport.end("caller_hangup")
        return web.json_response({"ok": True})

    async def shutdown(self, app: web.Application) -> None:
        for call in list(self.calls.values()):
            call.transport.end("shutdown")
        for call in list(self.calls.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(call.done.wait(), 5)

    # -- one call -------------------------------------------------------------------------------

    def _prefer_codecs(self, pc: RTCPeerConnection) -> None:
        wanted = [c.lower() for c in self.settings.codecs]
        caps = RTCRtpReceiver.getCapabilities("audio")
        if caps is None:
            return
        chosen = sorted(
            (c for c in caps.codecs if c.mimeType.split("/")[1].lower() in wanted),
            key=lambda c: wanted.index(c.mimeType.split("/")[1].lower()),
        )
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio" and chosen:
                transceiver.setCodecPreferences(chosen)

    async def _run(self, call: WebRtcCall) -> None:
        running = asyncio.create_task(self.sessions(call.transport, call.observer))
        feed = asyncio.create_task(call.feed.follow(call.observer))
        watchdog = asyncio.create_task(self._connect_watchdog(call))
        call.running = True
        async with self._started:
            self._started.notify_all()
        try:
            await running
        except Exception:
            log.exception("WebRTC call %s failed", call.id)
        finally:
            call.observer.close()  # also when the session never started
            await feed
            watchdog.cancel()
            call.send(json.dumps({"type": "ended"}))
            for task in call.tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            await call.pc.close()
            self.calls.pop(call.id, None)
            self.finished.append(call)
            call.done.set()

    async def _connect_watchdog(self, call: WebRtcCall) -> None:
        await asyncio.sleep(self.settings.connect_timeout)  # a deadline, not synchronisation
        if call.pc.connectionState != "connected":
            log.warning("WebRTC %s never connected: closing", call.id)
            call.transport.end("error")

    def _page_message(self, call: WebRtcCall, message: object) -> None:
        if not isinstance(message, str) or len(message) > 8192:
            return
        try:
            data = json.loads(message)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        t = call.transport.t
        if kind == "stats":
            call.page_reports.append((t, data))
        elif kind == "dtmf" and isinstance(data.get("digit"), str):
            call.transport.feed_dtmf(data["digit"][:1])
        elif kind == "hangup":
            call.transport.end("caller_hangup")
