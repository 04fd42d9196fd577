"""The WebSocket side of the media-stream edge: one coroutine per carrier stream.

    connect ─► handshake auth ─► [connected] ─► start (dialect detected or forced; auth by
    start parameters if the handshake had none) ─► call: reader ‖ AgentRunner ‖ writer ─► close

Nothing a peer sends can take the server down: a bad handshake is refused (403) before the
upgrade; before `start`, anything unexpected closes the stream with a policy-violation code and
the reason; after `start`, unusable messages (malformed JSON, bad base64, oversized media,
unknown events) are skipped and counted, and only a run of them closes the stream. Every
rejection and close is logged with its reason and kept in `MediaStreamEdge.closed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.calls import CallInfo, CallObserver, CallSessions, RefusedAttempt, report_refusal
from gateway.edges.mediastream import auth
from gateway.edges.mediastream.dialects import DIALECTS, Dialect, ProtocolError, detect
from gateway.edges.mediastream.dialects.base import (
    Connected,
    DtmfDigit,
    Ignored,
    Inbound,
    MarkEcho,
    Media,
    Outbound,
    Started,
    Stopped,
)
from gateway.edges.mediastream.settings import MediaStreamSettings
from gateway.edges.mediastream.transport import MediaStreamTransport

log = logging.getLogger(__name__)

POLICY = WSCloseCode.POLICY_VIOLATION  # 1008
TOO_BIG = WSCloseCode.MESSAGE_TOO_BIG  # 1009
UNSUPPORTED = WSCloseCode.UNSUPPORTED_DATA  # 1003
INTERNAL = WSCloseCode.INTERNAL_ERROR  # 1011


@dataclass
class FinishedCall:
    """A call the edge handled: its transport and what was observed of it, for inspection."""

    call_id: str
    transport: MediaStreamTransport
    observer: CallObserver = field(default_factory=CallObserver)


@dataclass(frozen=True)
class StreamClosed:
    peer: str
    call_id: str
    code: int
    reason: str


class _Close(Exception):
    def __init__(self, code: int, reason: str, refusal: str | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.refusal = refusal  # why the call attempt was refused (gateway.calls.REFUSAL_REASONS)


class MediaStreamEdge:
    def __init__(self, sessions: CallSessions, settings: MediaStreamSettings) -> None:
        self.sessions = sessions
        self.settings = settings
        self.transports: dict[str, MediaStreamTransport] = {}
        self.closed: deque[StreamClosed] = deque(maxlen=1000)
        self.finished: deque[FinishedCall] = deque(maxlen=100)
        self.rejections: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.streams = 0
        self._closed_event = asyncio.Event()

    async def wait_closed(self, count: int) -> list[StreamClosed]:
        """Until `count` streams have closed (tests)."""
        while len(self.closed) < count:
            self._closed_event.clear()
            await self._closed_event.wait()
        return list(self.closed)

    def _record(self, peer: str, call_id: str, code: int, reason: str) -> None:
        self.closed.append(StreamClosed(peer, call_id, code, reason))
        self._closed_event.set()

    # -- one stream -----------------------------------------------------------------------------

    async def handle(self, request: web.Request, forced: str | None = None) -> web.StreamResponse:
        peer = request.remote or "?"
        urls = _candidate_urls(request, self.settings.public_url)
        handshake = auth.check_handshake(
            self.settings, query=request.query, headers=request.headers, urls=urls
        )
        if not handshake.ok and handshake is not auth.NO_CREDENTIALS:
            self.rejections[handshake.reason] += 1
            log.warning("media stream from %s refused at the handshake: %s", peer, handshake.reason)
            self._record(peer, "", 403, handshake.reason)
            report_refusal(self.sessions, RefusedAttempt("mediastream", "auth", handshake.reason, 403, peer))
            return web.Response(status=403, text=f"forbidden: {handshake.reason}\n")
        ws = web.WebSocketResponse(max_msg_size=self.settings.max_message_bytes, autoping=True)
        await ws.prepare(request)
        self.streams += 1
        call_id = ""
        try:
            dialect, started = await self._until_start(ws, forced)
            if not handshake.ok:
                result = auth.check_start(self.settings, started.parameters, started.call_id)
                if not result.ok:
                    self.rejections[result.reason] += 1
                    raise _Close(POLICY, f"unauthenticated: {result.reason}", "auth")
            call_id = f"{dialect.name}:{started.stream_id or started.call_id}"
            if call_id in self.transports:
                raise _Close(POLICY, f"duplicate stream {call_id}", "bad_request")
            await self._call(ws, dialect, started, call_id, peer)
            code, reason = (ws.close_code or 1000), "call ended"
        except _Close as close:
            code, reason = close.code, close.reason
            log.warning("media stream %s from %s closed: %s", call_id or "(no start)", peer, reason)
            if close.refusal is not None:
                attempt = RefusedAttempt("mediastream", close.refusal, reason, code, peer, call_id=call_id)
                report_refusal(self.sessions, attempt)
        except TimeoutError:
            code, reason = POLICY, f"no start within {self.settings.start_timeout:g} s"
            log.warning("media stream from %s closed: %s", peer, reason)
            report_refusal(self.sessions, RefusedAttempt("mediastream", "bad_request", reason, code, peer))
        finally:
            self.transports.pop(call_id, None)
        if not ws.closed:
            await ws.close(code=code, message=reason.encode()[:120])
        self._record(peer, call_id, code, reason)
        return ws

    async def _receive(self, ws: web.WebSocketResponse, timeout: float | None = None) -> Outbound | None:
        """The next text or binary message; None when the peer closed."""
        msg = await ws.receive(timeout=timeout)
        if msg.type == WSMsgType.TEXT:
            return str(msg.data)
        if msg.type == WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type == WSMsgType.ERROR:
            exc = ws.exception()
            if ws.close_code == TOO_BIG or "exceeds limit" in str(exc) or "too big" in str(exc).lower():
                raise _Close(TOO_BIG, f"oversized message (> {self.settings.max_message_bytes} bytes)")
            raise _Close(UNSUPPORTED, f"WebSocket error: {exc}")
        return None  # CLOSE / CLOSING / CLOSED

    async def _until_start(self, ws: web.WebSocketResponse, forced: str | None) -> tuple[Dialect, Started]:
        deadline = time.monotonic() + self.settings.start_timeout
        dialect: Dialect | None = DIALECTS[forced]() if forced else None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            message = await self._receive(ws, timeout=remaining)
            if message is None:
                raise _Close(1000, "peer closed before start")
            try:
                if dialect is None:
                    cls = detect(message)
                    if cls is None:
                        continue  # a bare `connected`: the start message decides
                    dialect = cls()
                events = dialect.parse(message)
            except ProtocolError as exc:
                raise _Close(POLICY, f"before start: {exc}", "bad_request") from None
            for event in events:
                if isinstance(event, Started):
                    return dialect, event
                if isinstance(event, Stopped):
                    raise _Close(1000, "stop before start")
                if isinstance(event, Media | MarkEcho | DtmfDigit):
                    raise _Close(POLICY, f"{type(event).__name__.lower()} before start")

    async def _call(
        self, ws: web.WebSocketResponse, dialect: Dialect, started: Started, call_id: str, peer: str
    ) -> None:
        params = started.parameters
        try:
            choice = self.sessions.choose(params.get("agent", ""), started.callee, self.settings.agent)
        except Exception as exc:  # a broken agent file must not take the server down
            raise _Close(INTERNAL, str(exc), "routing") from None
        agent, rate = choice.agent, choice.sample_rate
        info = CallInfo(
            call_id=call_id,
            edge="mediastream",
            agent=agent,
            caller=started.caller,
            callee=started.callee,
            codec=f"{started.wire.encoding}/{started.wire.rate}",
            sample_rate=rate,
            extra={"carrier": dialect.name, "carrier_call_id": started.call_id, "peer": peer},
        )

        record = FinishedCall(call_id, MediaStreamTransport(info, dialect))
        transport = record.transport
        self.transports[call_id] = transport
        log.info("media stream %s (%s) from %s: agent %s", call_id, info.codec, peer, agent)
        call = asyncio.create_task(self.sessions(transport, record.observer), name=f"call {call_id}")
        call.add_done_callback(lambda _: transport.outbox.put_nowait(None))
        writer = asyncio.create_task(_write(ws, transport), name=f"writer {call_id}")
        close: _Close | None = None
        try:
            close = await self._read(ws, dialect, transport, call_id)
            if close is not None and not ws.closed:
                await ws.close(code=close.code, message=close.reason.encode()[:120])
        finally:
            self.finished.append(record)
            transport.end("caller_hangup" if close is None else "error")
            try:
                await call
            except Exception:
                log.exception("call %s failed", call_id)
                close = close or _Close(INTERNAL, "call failed")
            transport.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        if close is not None:
            raise close

    async def _read(
        self, ws: web.WebSocketResponse, dialect: Dialect, transport: MediaStreamTransport, call_id: str
    ) -> _Close | None:
        """Pump the socket into the transport until stop or close; a _Close to end it badly."""
        wire = dialect.wire
        max_bytes = int(self.settings.max_media_seconds * wire.rate * wire.bytes_per_sample)
        bad = 0
        while True:
            try:
                message = await self._receive(ws)
            except _Close as close:
                return close
            if message is None:
                return None
            try:
                events: list[Inbound] = dialect.parse(message)
            except ProtocolError as exc:
                events = [Ignored(f"bad message: {exc}")]
            usable = False
            for event in events:
                if isinstance(event, Media):
                    if len(event.payload) > max_bytes:
                        self._skip(call_id, f"oversized media ({len(event.payload)} bytes)")
                        continue
                    transport.feed_media(event.payload)
                elif isinstance(event, MarkEcho):
                    transport.feed_mark(event.name)
                elif isinstance(event, DtmfDigit):
                    transport.feed_dtmf(event.digit)
                elif isinstance(event, Stopped):
                    return None
                elif isinstance(event, Started):
                    self._skip(call_id, "duplicate start")
                    continue
                elif isinstance(event, Ignored):
                    if event.reason.startswith("bad message"):
                        self._skip(call_id, event.reason)
                        continue
                    if event.reason.startswith("unknown event"):
                        self._skip(call_id, event.reason)  # logged, but a carrier may add events
                    else:  # documented but unused (acknowledgements, other tracks)
                        log.debug("media stream %s: ignored %s", call_id, event.reason)
                elif isinstance(event, Connected):
                    pass
                usable = True
            bad = 0 if usable else bad + 1
            if bad >= self.settings.max_bad_messages:
                return _Close(UNSUPPORTED, f"{bad} unusable messages in a row")

    def _skip(self, call_id: str, reason: str) -> None:
        key = reason.split(":")[0]
        self.skipped[key] += 1
        if self.skipped[key] <= 5 or self.skipped[key] % 100 == 0:
            log.warning("media stream %s: skipped a message: %s (x%d)", call_id, reason, self.skipped[key])


async def _write(ws: web.WebSocketResponse, transport: MediaStreamTransport) -> None:
    while True:
        item = await transport.outbox.get()
        if item is None:
            break
        if ws.closed:
            continue
        try:
            if isinstance(item, bytes):
                await ws.send_bytes(item)
            else:
                await ws.send_str(item)
        except (ConnectionError, RuntimeError):
            break
    if not ws.closed:
        await ws.close()


def _candidate_urls(request: web.Request, public_url: str) -> list[str]:
    """URLs a carrier may have signed for this request (Twilio signs the URL it was given)."""
    path_qs = request.rel_url.path_qs
    urls = []
    if public_url:
        base = public_url.rstrip("/")
        urls.append(base + path_qs)
        scheme, sep, rest = base.partition("://")
        if sep:
            swap = {"https": "wss", "http": "ws", "wss": "https", "ws": "http"}.get(scheme, scheme)
            urls.append(f"{swap}://{rest}{path_qs}")
    host = request.host
    for scheme in ("wss", "ws", "https", "http"):
        urls.append(f"{scheme}://{host}{path_qs}")
    return urls
