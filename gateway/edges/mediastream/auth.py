"""Who may open a media stream: shared secrets, signed expiring tokens, Twilio request signatures.

A stream is authenticated either at the WebSocket handshake (query `token`, an `Authorization`
header, or Twilio's `X-Twilio-Signature` over the stream URL) or, for carriers whose stream URLs
cannot carry credentials (Twilio `<Stream>` takes no query string), by a `token` custom
parameter in the `start` message. Tokens are `EXPIRES.HEXSIG` with
`HEXSIG = HMAC-SHA256(secret, "EXPIRES.SCOPE")`; the scope binds a token to one carrier call id
(the TwiML webhook mints tokens bound to the CallSid) or is empty. Every rejection carries the
reason that is logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gateway.edges.mediastream.settings import MediaStreamSettings


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    reason: str = ""  # why it failed, or how it passed

    @classmethod
    def passed(cls, how: str) -> AuthResult:
        return cls(True, how)

    @classmethod
    def failed(cls, reason: str) -> AuthResult:
        return cls(False, reason)


NO_CREDENTIALS = AuthResult(False, "no credentials")


def _sig(secret: str, expires: int, scope: str) -> str:
    return hmac.new(secret.encode(), f"{expires}.{scope}".encode(), hashlib.sha256).hexdigest()


def make_token(secret: str, *, scope: str = "", ttl: float = 300.0, now: float | None = None) -> str:
    expires = int((time.time() if now is None else now) + ttl)
    return f"{expires}.{_sig(secret, expires, scope)}"


def verify_token(secret: str, token: str, *, scope: str = "", now: float | None = None) -> AuthResult:
    if not secret:
        return AuthResult.failed("no secret configured")
    if hmac.compare_digest(token.encode(), secret.encode()):
        return AuthResult.passed("shared secret")
    expires_text, _, sig = token.partition(".")
    if not expires_text.isdigit() or len(sig) != 64:
        return AuthResult.failed("malformed token")
    expires = int(expires_text)
    if expires < (time.time() if now is None else now):
        return AuthResult.failed("token expired")
    scopes = (scope, "") if scope else ("",)
    if any(hmac.compare_digest(_sig(secret, expires, s), sig) for s in scopes):
        return AuthResult.passed("signed token")
    return AuthResult.failed("bad token signature")


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str] | None = None) -> str:
    """Twilio's X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by the POST parameters
    sorted by name, each as name then value."""
    data = url + "".join(k + (params or {})[k] for k in sorted(params or {}))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(
    auth_token: str, signature: str, urls: Iterable[str], params: Mapping[str, str] | None = None
) -> AuthResult:
    for url in urls:
        if hmac.compare_digest(twilio_signature(auth_token, url, params).encode(), signature.encode()):
            return AuthResult.passed("Twilio signature")
    return AuthResult.failed("bad X-Twilio-Signature")


def _bearer(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":  # Exotel: wss://KEY:TOKEN@host/... -> the password is the secret
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ""
        return decoded.partition(":")[2]
    return None


def check_handshake(
    settings: MediaStreamSettings,
    *,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    urls: Iterable[str],
) -> AuthResult:
    """Credentials offered at the WebSocket handshake; NO_CREDENTIALS defers to the start message."""
    if not settings.authenticated:
        return AuthResult.passed("authentication off")
    token = query.get("token")
    if token is None:
        token = _bearer(headers.get("Authorization", ""))
    if token is not None:
        return verify_token(settings.secret, token)
    signature = headers.get("X-Twilio-Signature")
    if signature and settings.twilio_auth_token:
        return verify_twilio(settings.twilio_auth_token, signature, urls)
    return NO_CREDENTIALS


def check_start(settings: MediaStreamSettings, parameters: Mapping[str, str], call_id: str) -> AuthResult:
    """Credentials in the start message's custom parameters (the stream had none at the handshake)."""
    token = parameters.get("token")
    if token is None:
        return AuthResult.failed("no credentials at the handshake or in the start message")
    return verify_token(settings.secret, token, scope=call_id)
