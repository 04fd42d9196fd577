"""Whether an SDP offer asks for SRTP: what `sip.srtp: required` checks before answering.

pjsua2 itself refuses a plain offer under mandatory SRTP before the application sees the call
(a bare 488, no log line), so the worker runs pjsua2 with SRTP optional and refuses plain offers
itself, with a reason the caller and the log can read. Sans-I/O: text in, a verdict out.
"""

from __future__ import annotations

SECURE_PROFILES = ("RTP/SAVP", "RTP/SAVPF", "UDP/TLS/RTP/SAVP", "UDP/TLS/RTP/SAVPF")
REFUSAL = "SRTP required: offer RTP/SAVP with a=crypto keys (SDES, over TLS) or DTLS-SRTP"


def sdp_body(message: str) -> str:
    """The body of a SIP message (empty when it has none)."""
    for sep in ("\r\n\r\n", "\n\n"):
        _, found, body = message.partition(sep)
        if found:
            return body
    return ""


def offers_srtp(sdp: str) -> bool:
    """True when the offer's first active audio stream is SRTP: a secure profile, or SDES keys
    (`a=crypto`) or a DTLS fingerprint in its media section; False for plain RTP or no offer."""
    media: list[list[str]] = []
    session: list[str] = []
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            session.append(line)
    for section in media:
        fields = section[0][2:].split()
        if len(fields) < 3 or fields[0] != "audio" or fields[1].split("/")[0] == "0":
            continue
        if fields[2].upper() in SECURE_PROFILES:
            return True
        attributes = section[1:] + session
        return any(a.startswith(("a=crypto:", "a=fingerprint:")) for a in attributes)
    return False
