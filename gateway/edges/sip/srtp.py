"""Whether an SDP offer asks for SRTP: what `sip.srtp: required` checks before answering.

pjsua2 itself refuses a plain offer under mandatory SRTP before the application sees the call
(a bare 488, no log line), so the worker runs pjsua2 with SRTP optional and refuses plain offers
itself, with a reason the caller and the log can read. Only the secure profiles count: under
optional SRTP pjsua2 answers an RTP/SAVP offer with SRTP or not at all, while keys offered on a
plain RTP/AVP line (best-effort SRTP) may end in plain RTP when no crypto suite matches. The
pjsua2 wheel has no DTLS-SRTP (an account asking for it offers plain RTP/AVP), so SDES it is.
Sans-I/O: text in, a verdict out.
"""

from __future__ import annotations

SECURE_PROFILES = ("RTP/SAVP", "RTP/SAVPF")
REFUSAL = "SRTP required: offer RTP/SAVP with a=crypto keys (SDES, over TLS)"


def sdp_body(message: str) -> str:
    """The body of a SIP message (empty when it has none)."""
    for sep in ("\r\n\r\n", "\n\n"):
        _, found, body = message.partition(sep)
        if found:
            return body
    return ""


def offers_srtp(sdp: str) -> bool:
    """True when the offer's first active audio stream has a secure profile (RTP/SAVP or
    RTP/SAVPF); False for plain RTP, keys on a plain profile, or no offer at all."""
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        fields = raw.strip()[2:].split() if raw.strip().startswith("m=") else []
        if len(fields) < 3 or fields[0] != "audio" or fields[1].split("/")[0] == "0":
            continue
        return fields[2].upper() in SECURE_PROFILES
    return False
