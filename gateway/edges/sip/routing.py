"""Which agent answers an INVITE: the request URI's user part looked up in the routes table."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

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


def route_agent(user: str, routes: Sequence[tuple[str, str]], default: str | None = None) -> str | None:
    """The agent for a called user: the first matching route (shell wildcards), else `default`.

    No routes and no default routes every call to an agent named after the user part (demo mode);
    otherwise an unmatched call gets None (the worker answers 404).
    """
    if not routes and default is None:
        return user or "default"
    for pattern, agent in routes:
        if fnmatch.fnmatchcase(user.lower(), pattern.lower()):
            return agent
    return default
