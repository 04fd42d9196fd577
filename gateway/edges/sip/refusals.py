"""Why a worker refused an INVITE, as a `RefusedAttempt` dict for the session host (sans-I/O).

pjsua2 refuses an offer without a codec in common (and without telephone-event) itself, with 488
and a Warning header, before the worker sees it, and tells the worker afterwards
(`Endpoint.onRejectedIncomingCall`). Offers it lets through but cannot serve, the worker refuses
itself with 488 and a Warning: media on IPv6 (`c=IN IP6`, warn-code 301; pjsua2 would fail its answer
with a bare 488) and an unknown codec next to telephone-event (305; pjsua2 would answer a call without
audio).
`classify` reads the offer to say which it was; the worker's own refusals (404: no agent) name
their reason directly (its 486/503 are not final: the front tries another worker). The dicts travel
in the worker's STATS heartbeat and become a log line, a counter and a row in the main process.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_CONNECTION = re.compile(r"^c=IN\s+(IP[46])\s", re.MULTILINE | re.IGNORECASE)
_AUDIO = re.compile(r"^m=audio\s+\d+\s+\S+\s+([\d ]+)", re.MULTILINE)
_STATIC = {"0": "PCMU/8000", "8": "PCMA/8000", "9": "G722/8000", "3": "GSM/8000", "18": "G729/8000"}


def offer_of(message: str) -> str:
    """The SDP body of a SIP message ('' without one)."""
    _head, sep, body = message.replace("\r\n", "\n").partition("\n\n")
    return body if sep and "v=0" in body else ""


def media_family(sdp: str) -> str:
    """IP4 or IP6: the address family of the offer's session-level or first connection line."""
    match = _CONNECTION.search(sdp)
    return match.group(1).upper() if match else ""


def sip_call_id(message: str) -> str:
    match = re.search(r"^(?:Call-ID|i)\s*:\s*(\S+)", message, re.MULTILINE | re.IGNORECASE)
    return match.group(1) if match else ""


def offered_codecs(sdp: str) -> list[str]:
    """The audio codecs of an offer, as `name/rate` (telephone-event left out)."""
    match = _AUDIO.search(sdp)
    if match is None:
        return []
    out = []
    for pt in match.group(1).split():
        rtpmap = re.search(rf"^a=rtpmap:{pt}\s+(\S+)", sdp, re.MULTILINE)
        name = rtpmap.group(1) if rtpmap else _STATIC.get(pt, f"payload {pt}")
        if not name.lower().startswith("telephone-event"):
            out.append(name)
    return out


def common_codecs(offered: list[str], ours: Sequence[str]) -> list[str]:
    """Our codecs (PCMU, PCMA, G722) the offer names, in our order."""
    names = {c.split("/")[0].upper() for c in offered}
    return [c for c in ours if c.upper() in names]


def classify(status: int, reason: str, message: str) -> tuple[str, str]:
    """(reason, detail) of an INVITE pjsua2 refused with `status`."""
    sdp = offer_of(message)
    families = {m.upper() for m in _CONNECTION.findall(sdp)}
    if status == 488 and "IP6" in families:
        return "media_address_family", "offer's media address is IPv6 (c=IN IP6); this gateway takes IPv4"
    if status == 488:
        codecs = offered_codecs(sdp)
        offered = ", ".join(codecs) if codecs else "no audio codec"
        return "codec", f"no codec in common: the offer has {offered}"
    if status in (400, 420, 415):
        return "bad_request", f"{status} {reason}".strip()
    if status in (486, 503):
        return "capacity", f"{status} {reason}".strip()
    return "error", f"{status} {reason}".strip()


def refusal(
    reason: str,
    detail: str,
    status: int,
    *,
    caller: str = "",
    callee: str = "",
    call_id: str = "",
    agent: str = "",
) -> dict[str, Any]:
    """The dict the worker sends (gateway.calls.RefusedAttempt.from_dict reads it)."""
    out: dict[str, Any] = {"reason": reason, "detail": detail, "status": status}
    for key, value in (("caller", caller), ("callee", callee), ("call_id", call_id), ("agent", agent)):
        if value:
            out[key] = value
    return out
