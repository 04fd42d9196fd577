"""Settings of the media-stream edge (environment variables until the gateway file has a section)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaStreamSettings:
    # Shared secret: accepted as is (`?token=`, `Authorization: Bearer`, Basic password, or a
    # `token` custom parameter) and the HMAC key of signed, expiring stream tokens.
    secret: str = ""
    # Twilio account auth token: validates X-Twilio-Signature on the webhook and the stream.
    twilio_auth_token: str = ""
    # The URL carriers reach us at (scheme://host[:port]), when a proxy sits in front.
    public_url: str = ""
    # A WebSocket message larger than this closes the stream (1009).
    max_message_bytes: int = 64 * 1024
    # One media message may carry at most this much audio; more is an oversized frame.
    max_media_seconds: float = 1.0
    # Seconds to wait for `start` after the socket opened.
    start_timeout: float = 10.0
    # Consecutive unusable messages after `start` before the stream is closed.
    max_bad_messages: int = 20
    # Lifetime of tokens minted for the TwiML webhook's <Stream>.
    token_ttl: float = 300.0
    # Agent for streams that name none and match no route (None: the gateway's default_agent).
    agent: str | None = None

    @property
    def authenticated(self) -> bool:
        return bool(self.secret or self.twilio_auth_token)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MediaStreamSettings:
        env = os.environ if env is None else env
        return cls(
            secret=env.get("GATEWAY_MEDIA_SECRET", ""),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            public_url=env.get("GATEWAY_PUBLIC_URL", "").rstrip("/"),
            agent=env.get("GATEWAY_MEDIA_AGENT") or None,
        )
