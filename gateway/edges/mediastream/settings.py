"""Settings of the media-stream edge: the gateway file's `mediastream:` section, else environment
variables.

The defaults live here only: a key the gateway file leaves null or empty falls back to its
environment variable, and without one to the default below.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config.schema import GatewayConfig


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

    @classmethod
    def from_config(cls, config: GatewayConfig, env: Mapping[str, str] | None = None) -> MediaStreamSettings:
        """The gateway file's `mediastream:` section; its null or empty keys come from `from_env`."""
        section = config.mediastream
        base = cls.from_env(env)
        secret = section.secret.get_secret_value() if section.secret is not None else ""
        token = section.twilio_auth_token.get_secret_value() if section.twilio_auth_token is not None else ""
        return dataclasses.replace(
            base,
            secret=secret or base.secret,
            twilio_auth_token=token or base.twilio_auth_token,
            public_url=(section.public_url or "").rstrip("/") or base.public_url,
            agent=section.agent or base.agent,
        )
