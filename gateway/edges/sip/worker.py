"""A pjsua2 worker process: a thin media bridge between SIP/RTP calls and the session host.

Run as `python -m gateway.edges.sip.worker --options JSON` (a `WorkerOptions`, worker_options.py);
the supervisor (supervisor.py) starts one per slot of up to 4 calls (the wheel's limit per process).

Threads:
- main thread: the only one that calls the pjsua2 API. It runs `libHandleEvents` (SIP events are
  processed here because `threadCnt = 0`), executes commands from the host (hangup, drain) and runs
  the timers (ring delay, RTP inactivity, max duration, drain deadline).
- pjsua2 media threads: `CallMediaPort` callbacks, which only touch thread-safe buffers.
- link threads (worker_link.py): socket I/O to the session host.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from gateway.config.routing import route_agent
from gateway.edges.sip import srtp, wire
from gateway.edges.sip.buffers import DropOldestQueue, PlayoutBuffer
from gateway.edges.sip.bytevec import ByteVectorReader, choose_reader
from gateway.edges.sip.endpoint import account_config, create_endpoint
from gateway.edges.sip.media_port import CallMediaPort, frame_bytes
from gateway.edges.sip.refusals import (
    classify,
    common_codecs,
    media_family,
    offer_of,
    offered_codecs,
    refusal,
    sip_call_id,
)
from gateway.edges.sip.routing import request_uri, uri_user
from gateway.edges.sip.worker_calls import WorkerAccount, WorkerCall, WorkerEndpoint
from gateway.edges.sip.worker_link import HostLink, LinkedCall
from gateway.edges.sip.worker_options import WorkerOptions

log = logging.getLogger("gateway.sip.worker")

DTMF_METHODS = {0: "rfc4733", 1: "sip_info"}


@dataclass
class CallState:
    call: WorkerCall
    slot: int
    agent: str
    caller: str
    callee: str
    call_id: str
    created: float
    answer_at: float | None = None
    confirmed_at: float | None = None
    port: CallMediaPort | None = None
    linked: LinkedCall | None = None
    media_index: int = -1
    hangup_reason: str = ""
    last_rx_packets: int = -1
    last_rx_at: float = 0.0
    ended: bool = False


class Worker:
    def __init__(self, opts: WorkerOptions) -> None:
        self.opts = opts
        self.reader: ByteVectorReader
        self.reader, self.fast_read = choose_reader()
        self.calls: dict[int, CallState] = {}
        self._graveyard: list[Any] = []  # pjsua2 objects whose callbacks may still be on the stack
        self._next_slot = 1
        self._rejects: deque[tuple[WorkerCall, int, str, bool, str]] = deque()
        self.draining = False
        self._drain_deadline = 0.0
        self.stop = threading.Event()
        self.sip_port = 0
        self.counters = {"answered": 0, "rejected": 0, "ended": 0}
        self.refused: deque[dict[str, Any]] = deque(maxlen=1000)  # for the next heartbeat
        self._refused_ids: deque[str] = deque(maxlen=64)  # refused by us, not by pjsua2
        self.link = HostLink(opts.control, self._hello(), self._stats)
        self.ready_fd: int | None = None

    # -- life --------------------------------------------------------------------------------
    def _hello(self) -> dict[str, Any]:
        return {"worker": self.opts.index, "pid": os.getpid(), "fast_read": self.fast_read}

    def _stats(self) -> dict[str, Any]:
        states = list(self.calls.values())
        return {
            "worker": self.opts.index,
            "sip_port": self.sip_port,
            "calls": len(states),
            "draining": self.draining,
            "frames_dropped": sum(s.linked.inbound.dropped for s in states if s.linked),
            **self.counters,
            "refused": [self.refused.popleft() for _ in range(len(self.refused))],
        }

    def run(self) -> int:
        ep, self.sip_port = create_endpoint(self.opts.endpoint, WorkerEndpoint(self))
        self.link._hello["sip_port"] = self.sip_port
        account = WorkerAccount(self)
        acfg = account_config(self.opts.endpoint, self.sip_port)
        if self.opts.endpoint.srtp == "required":  # pjsua2 refuses silently: on_incoming_call says why
            acfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_OPTIONAL
        account.create(acfg)
        try:
            self.link.connect()
            self.link.start()
            self._announce_ready()
            next_tick = 0.0
            while not self.stop.is_set():
                ep.libHandleEvents(10)
                self._send_rejects()
                self._run_commands()
                now = time.monotonic()
                if now >= next_tick:
                    self._tick(now)
                    next_tick = now + 0.1
                self._graveyard.clear()
        finally:
            self._shutdown(ep, account)
        return 0

    def _announce_ready(self) -> None:
        """Tell the supervisor (reading our original stdout) that the worker is up."""
        if self.ready_fd is not None:
            os.write(self.ready_fd, f"READY {self.sip_port}\n".encode())
            os.close(self.ready_fd)
            self.ready_fd = None

    def _shutdown(self, ep: pj.Endpoint, account: WorkerAccount) -> None:
        """Hang up what is left, let pjsua2 finish, and drop every call object before libDestroy."""
        for state in list(self.calls.values()):
            self._hangup(state, state.hangup_reason or "shutdown")
        deadline = time.monotonic() + 2.0
        while self.calls and time.monotonic() < deadline:
            ep.libHandleEvents(10)
        for state in list(self.calls.values()):
            self._end(state)
        self.link.close()
        self.calls.clear()
        self._graveyard.clear()
        account.shutdown()
        del account
        ep.libDestroy()

    def request_drain(self, timeout: float) -> None:
        if not self.draining:
            log.info("worker %d draining (%d calls)", self.opts.index, len(self.calls))
        self.draining = True
        self._drain_deadline = time.monotonic() + timeout

    # -- commands from the host (main thread) -----------------------------------------------
    def _run_commands(self) -> None:
        while self.link.commands:
            kind, slot, body = self.link.commands.popleft()
            if kind == wire.Kind.HANGUP:
                state = self.calls.get(slot)
                if state is not None:
                    self._hangup(state, str(body.get("reason", "agent_hangup")))
            elif kind == wire.Kind.DRAIN:
                self.request_drain(float(body.get("timeout", 30.0)))

    def _tick(self, now: float) -> None:
        for state in list(self.calls.values()):
            if state.answer_at is not None and now >= state.answer_at:
                state.answer_at = None
                self._answer(state, 200)
            if state.confirmed_at is None or state.ended:
                continue
            if now - state.confirmed_at > self.opts.max_duration:
                self._hangup(state, "max_duration")
                continue
            self._check_rtp(state, now)
        if self.draining and (not self.calls or now >= self._drain_deadline):
            self.stop.set()

    def _check_rtp(self, state: CallState, now: float) -> None:
        if state.media_index < 0 or self.opts.rtp_timeout <= 0:
            return
        try:
            packets = state.call.getStreamStat(state.media_index).rtcp.rxStat.pkt
        except pj.Error:
            return
        if packets != state.last_rx_packets:
            state.last_rx_packets = packets
            state.last_rx_at = now
        elif now - state.last_rx_at > self.opts.rtp_timeout:
            self._hangup(state, "rtp_timeout")

    # -- pjsua2 callbacks (main thread) ------------------------------------------------------
    def on_incoming_call(self, account: WorkerAccount, prm: Any) -> None:
        call = WorkerCall(self, account, prm.callId)
        message = prm.rdata.wholeMsg
        info = call.getInfo()
        user = uri_user(request_uri(message))
        agent = route_agent(self.opts.routes, self.opts.default_agent, callee=user)
        who = {"caller": info.remoteUri, "callee": info.localUri, "call_id": info.callIdString}
        # 503/486 are not final: the front tries the next worker (its own 503 is the refusal).
        if self.draining:
            self._refused_ids.append(who["call_id"])
            self._reject(call, 503, "Service Unavailable", retry_after=True)
            return
        if len(self.calls) >= self.opts.endpoint.max_calls:
            self._refused_ids.append(who["call_id"])
            self._reject(call, 486, "Busy Here", retry_after=True)
            return
        if not self.link.admits(len(self.calls)):  # the session host is loaded (admission.py)
            self._refused_ids.append(who["call_id"])
            self.link.refused += 1
            self._reject(call, 503, "Service Unavailable", retry_after=True)
            return
        offer = offer_of(message)
        if media_family(offer) == "IP6":  # pjsua2 would fail the answer with a bare 488
            detail = "offer's media address is IPv6 (c=IN IP6); this gateway takes IPv4"
            self._refuse(who, "media_address_family", detail, 488)
            warning = '301 voice-gateway "Incompatible network address format: IPv6 media; use IPv4"'
            self._reject(call, 488, "Not Acceptable Here", warning=warning)
            return
        codecs = offered_codecs(offer)
        if codecs and not common_codecs(codecs, self.opts.endpoint.codecs):
            # pjsua2 would answer with telephone-event alone: a call without audio
            detail = f"no codec in common: the offer has {', '.join(codecs)}"
            self._refuse(who, "codec", detail, 488)
            warning = (
                f'305 voice-gateway "Incompatible media format: {", ".join(self.opts.endpoint.codecs)} only"'
            )
            self._reject(call, 488, "Not Acceptable Here", warning=warning)
            return
        if agent is None:
            self._refuse(who, "routing", f"no route and no default agent for {user!r}", 404)
            self._reject(call, 404, "Not Found")
            return
        if self.opts.endpoint.srtp == "required" and not srtp.offers_srtp(srtp.sdp_body(message)):
            self._refuse(who, "srtp", srtp.REFUSAL, 488)
            self._reject(call, 488, "SRTP Required", warning=srtp.REFUSAL)
            return
        slot = self._next_slot
        self._next_slot += 1
        call.slot = slot
        state = CallState(
            call=call,
            slot=slot,
            agent=agent,
            caller=info.remoteUri,
            callee=info.localUri,
            call_id=info.callIdString,
            created=time.monotonic(),
        )
        self.calls[slot] = state
        if self.opts.ring_delay <= 0:
            # answered at once: no 180, which the front's parallel children could deliver after the
            # 200 (a strict caller such as sipp aborts on it; a phone would only ring for nothing)
            self._answer(state, 200)
        else:
            self._answer(state, 180)
            state.answer_at = time.monotonic() + self.opts.ring_delay
        log.info("call %s for agent %s from %s (slot %d)", state.call_id, agent, state.caller, slot)

    def _refuse(self, who: dict[str, str], reason: str, detail: str, status: int) -> None:
        self._refused_ids.append(who["call_id"])
        self.refused.append(refusal(reason, detail, status, **who))
        log.warning("call %s refused (%s): %s", who["call_id"], reason, detail)

    def on_rejected(self, prm: Any) -> None:
        """pjsua2 refused an INVITE itself (no codec in common, IPv6 media, ...)."""
        message = str(prm.rdata.wholeMsg) if prm.rdata is not None else ""
        call_id = sip_call_id(message)
        if call_id in self._refused_ids or int(prm.statusCode) in (486, 503):
            return  # our own refusal (already reported), or not final: the front tries another worker
        reason, detail = classify(int(prm.statusCode), str(prm.reason), message)
        self.counters["rejected"] += 1
        self.refused.append(
            refusal(
                reason,
                detail,
                int(prm.statusCode),
                caller=str(prm.remoteInfo),
                callee=str(prm.localInfo),
                call_id=call_id,
            )
        )
        log.warning("call %s refused by pjsua2 with %d (%s): %s", call_id, prm.statusCode, reason, detail)

    def _reject(
        self, call: WorkerCall, code: int, reason: str, retry_after: bool = False, warning: str = ""
    ) -> None:
        """Refuse the call once `onIncomingCall` has returned: a final answer from inside the
        callback aborts pjsua2 2.15 when the INVITE has no SDP (an assertion in
        pjsip_rx_data_free_cloned, found by tests/test_fuzz_sip.py)."""
        self._rejects.append((call, code, reason, retry_after, warning))

    def _send_rejects(self) -> None:
        while self._rejects:
            self._send_reject(*self._rejects.popleft())

    def _send_reject(self, call: WorkerCall, code: int, reason: str, retry_after: bool, warning: str) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        prm.reason = reason
        if warning and not warning[:3].isdigit():  # RFC 3261 Warning: 399 (miscellaneous), agent, text
            warning = f'399 voice-gateway "{warning}"'
        for name, value in (
            ("Retry-After", str(self.opts.retry_after) if retry_after else ""),
            ("Warning", warning),
        ):
            if value:
                header = pj.SipHeader()
                header.hName = name
                header.hValue = value
                prm.txOption.headers.append(header)
        try:
            call.answer(prm)
        except pj.Error as exc:
            log.warning("could not reject call: %s", exc.info())
        self.counters["rejected"] += 1
        self._graveyard.append(call)

    def _answer(self, state: CallState, code: int) -> None:
        prm = pj.CallOpParam()
        prm.statusCode = code
        try:
            state.call.answer(prm)
        except pj.Error as exc:
            log.warning("answer %d failed: %s", code, exc.info())

    def on_call_state(self, call: WorkerCall) -> None:
        state = self.calls.get(call.slot)
        if state is None:
            return
        info = call.getInfo()
        if info.state == pj.PJSIP_INV_STATE_CONFIRMED and state.confirmed_at is None:
            state.confirmed_at = time.monotonic()
            state.last_rx_at = state.confirmed_at
            self.counters["answered"] += 1
        elif info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            if not state.hangup_reason:
                state.hangup_reason = "caller_hangup" if state.confirmed_at else "caller_cancel"
            self._end(state)

    def on_media_state(self, call: WorkerCall) -> None:
        state = self.calls.get(call.slot)
        if state is None or state.ended:
            return
        info = call.getInfo()
        media = info.media
        index = -1
        for mi in media:
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                index = mi.index
                break
        if index < 0:
            return
        audio = call.getAudioMedia(index)
        if state.port is None:
            stream = call.getStreamInfo(index)
            codec = str(stream.codecName)
            rate = 16000 if codec.upper().startswith("G722") else int(stream.codecClockRate)
            inbound = DropOldestQueue(self.opts.inbound_queue_frames)
            playout = PlayoutBuffer(frame_bytes(rate), int(self.opts.max_playout_seconds * rate * 2))
            port = CallMediaPort(rate, self.reader, inbound, playout, self.link.wake)
            port.create(f"call{state.slot}")
            state.port = port
            state.media_index = index
            state.linked = LinkedCall(
                slot=state.slot,
                inbound=inbound,
                playout=playout,
                start={
                    "call_id": state.call_id,
                    "agent": state.agent,
                    "caller": state.caller,
                    "callee": state.callee,
                    "codec": codec,
                    "sample_rate": rate,
                    "worker": self.opts.index,
                },
            )
            self.link.add(state.linked)
            log.info("call %s media: %s at %d Hz", state.call_id, codec, rate)
        audio.startTransmit(state.port)
        state.port.startTransmit(audio)

    def on_dtmf(self, call: WorkerCall, digit: str, method: int) -> None:
        state = self.calls.get(call.slot)
        if state is None or state.linked is None or state.port is None:
            return
        body = {"digit": digit, "method": DTMF_METHODS.get(method, str(method)), "seq": state.port.received}
        state.linked.controls.append(wire.pack_json(wire.Kind.DTMF, state.slot, body))
        self.link.wake.set()

    # -- ending ------------------------------------------------------------------------------
    def _hangup(self, state: CallState, reason: str) -> None:
        if state.ended:
            return
        if not state.hangup_reason:
            state.hangup_reason = reason
        prm = pj.CallOpParam()
        prm.statusCode = 603 if state.confirmed_at is None else 200
        try:
            state.call.hangup(prm)
        except pj.Error as exc:
            log.warning("hangup failed: %s", exc.info())
            self._end(state)

    def _end(self, state: CallState) -> None:
        if state.ended:
            return
        state.ended = True
        self.counters["ended"] += 1
        if state.linked is not None:
            self.link.finish(state.slot, {"reason": state.hangup_reason or "error"})
        self.calls.pop(state.slot, None)
        # Callbacks of this call may still be on the stack: drop the objects on the next loop turn.
        self._graveyard.extend([state.call, state.port])
        log.info("call %s ended: %s", state.call_id, state.hangup_reason)


def parse_args(argv: list[str] | None = None) -> WorkerOptions:
    p = argparse.ArgumentParser(prog="gateway-sip-worker", description=__doc__)
    p.add_argument("--options", required=True, help="WorkerOptions as JSON (service.worker_options)")
    return WorkerOptions.from_json(p.parse_args(argv).options)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    opts = parse_args(argv)
    worker = Worker(opts)
    # PJSIP writes its own log lines to stdout: keep the real stdout for the READY line only.
    worker.ready_fd = os.dup(1)
    os.dup2(2, 1)
    drain = (wire.Kind.DRAIN, 0, {"timeout": 30})
    signal.signal(signal.SIGTERM, lambda *_: worker.link.commands.append(drain))
    signal.signal(signal.SIGINT, lambda *_: worker.stop.set())
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
