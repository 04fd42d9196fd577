"""Which agent takes a call: the one routing decision every edge's calls go through.

The SIP workers route INVITEs with it (on the request URI's user part), the HTTP edges through
the AgentRunner (on what the caller asked for and the called number). A caller can only ever name
an agent by a plain name (letters, digits, `-`, `_`), never by a path: a SIP user part, a browser
or a carrier must not make the gateway load an arbitrary file. Paths come from the operator's
gateway file only (its routes and default agent).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def is_agent_name(text: str) -> bool:
    """A plain agent name (`dental`), as opposed to a path or anything else."""
    return AGENT_NAME.fullmatch(text) is not None


def route_agent(
    routes: Sequence[tuple[str, str]], default: str | None, *, callee: str = "", requested: str = ""
) -> str | None:
    """The agent for a call, in this order:

    1. `requested`, when it is a plain agent name (what an HTTP caller asked for);
    2. the first route whose pattern (shell wildcards, any case) matches `callee`;
    3. `default`;
    4. with no routes and no default at all (demo mode): the agent named after `callee`, when that
       is a plain name, or the agent named "default" when there is no callee.

    None: no agent takes the call (SIP answers 404).
    """
    if requested and is_agent_name(requested):
        return requested
    for pattern, agent in routes:
        if fnmatch.fnmatchcase(callee.lower(), pattern.lower()):
            return agent
    if default:
        return default
    if routes:
        return None
    if not callee:
        return "default"
    return callee if is_agent_name(callee) else None
