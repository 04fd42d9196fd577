"""The request URI of an INVITE and its user part, which `gateway.config.routing` routes on."""

from __future__ import annotations

import re

_REQUEST_LINE = re.compile(r"^(?P<method>[A-Z]+)\s+(?P<uri>\S+)\s+SIP/2\.0", re.IGNORECASE)
_USER = re.compile(r"^(?:sips?|tel):(?:(?P<user>[^@;?]+)@)?", re.IGNORECASE)


def request_uri(message: str) -> str:
    """The request URI from the first line of a SIP request, '' if it has none."""
    m = _REQUEST_LINE.match(message.lstrip())
    return m.group("uri") if m else ""


def uri_user(uri: str) -> str:
    """User part of a SIP/tel URI (`sip:dental@host` -> `dental`), '' if none."""
    uri = uri.strip().strip("<>")
    m = _USER.match(uri)
    if not m:
        return ""
    if uri.lower().startswith("tel:"):
        return uri[4:].split(";", 1)[0]
    return m.group("user") or ""
