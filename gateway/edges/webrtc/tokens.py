"""Offer tokens of the WebRTC edge: signed, short-lived, per agent, good for one call.

A token is `EXPIRES.NONCE.HEXSIG` with
`HEXSIG = HMAC-SHA256(secret, "webrtc-offer\\nAGENT\\nEXPIRES\\nNONCE")`, where AGENT is the agent name
the offer asks for ("" for the edge's default agent) and NONCE 16 random hex digits. The softphone
page gets one from `POST /webrtc/token`; an operator's own web app can mint them with the same secret
(`make_offer_token`). `OfferTokens` checks them and remembers the ones used until they expire, so a
token starts at most one call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

DEFAULT_TTL = 60.0


def _sig(secret: str, agent: str, expires: int, nonce: str) -> str:
    message = f"webrtc-offer\n{agent}\n{expires}\n{nonce}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def make_offer_token(
    secret: str, agent: str = "", *, ttl: float = DEFAULT_TTL, now: float | None = None
) -> str:
    """A token for one offer to `agent` ("" = the edge's default agent), valid for `ttl` seconds."""
    expires = int((time.time() if now is None else now) + ttl)
    nonce = secrets.token_hex(8)
    return f"{expires}.{nonce}.{_sig(secret, agent, expires, nonce)}"


class OfferTokens:
    """Mints and checks offer tokens with one secret (a random one when none is configured)."""

    def __init__(
        self, secret: str = "", ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.time
    ) -> None:
        self.secret = secret or secrets.token_hex(32)
        self.ttl = ttl
        self._clock = clock
        self._used: dict[str, int] = {}  # signature -> expiry, until it expires

    def mint(self, agent: str) -> tuple[str, int]:
        token = make_offer_token(self.secret, agent, ttl=self.ttl, now=self._clock())
        return token, int(token.partition(".")[0])

    def check(self, token: str, agent: str) -> str | None:
        """None when `token` admits one offer to `agent` (and is then spent), else why not."""
        now = self._clock()
        for sig, expires in list(self._used.items()):
            if expires < now:
                del self._used[sig]
        expires_text, nonce, sig = [*token.split("."), "", ""][:3]
        if not expires_text.isdigit() or len(expires_text) > 12 or len(nonce) > 64 or len(sig) != 64:
            return "malformed token"
        expires = int(expires_text)
        if expires < now:
            return "token expired"
        if not hmac.compare_digest(_sig(self.secret, agent, expires, nonce).encode(), sig.encode()):
            return "bad token signature (or a token for another agent)"
        if sig in self._used:
            return "token already used"
        self._used[sig] = expires
        return None
