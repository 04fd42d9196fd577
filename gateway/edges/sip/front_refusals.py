"""What the Kamailio front refuses, into the gateway's refusal records.

The front (kamailio.cfg.tmpl) writes one line to its log for each INVITE it refuses itself:

    front: refused REASON STATUS from SOURCE call CALL-ID: DETAIL

(the allow-list, an INVITE flood, bad digest credentials, no worker free). `parse_refusal` reads such
a line (sans-I/O); `follow_front_refusals` follows the log from its current end and hands each one
to `gateway.calls.report_refusal`, like the workers' refusals.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

from gateway.calls import RefusedAttempt, report_refusal

log = logging.getLogger(__name__)

_LINE = re.compile(
    r"front: refused (?P<reason>[a-z_]+) (?P<status>\d{3}) from (?P<source>\S+) call (?P<call_id>\S*): "
    r"(?P<detail>.*?)\s*$"
)


def parse_refusal(line: str) -> RefusedAttempt | None:
    match = _LINE.search(line)
    if match is None:
        return None
    call_id = match["call_id"] if match["call_id"] != "<null>" else ""
    return RefusedAttempt(
        "sip",
        match["reason"],
        f"front: {match['detail']}",
        int(match["status"]),
        caller=match["source"],
        call_id=call_id,
    )


async def follow_front_refusals(path: Path, sessions: object, poll: float = 0.25) -> None:
    """Report every refusal line the front adds to its log at `path` (until cancelled)."""
    try:
        offset = path.stat().st_size
    except OSError:
        offset = 0
    pending = b""
    while True:
        try:
            size = path.stat().st_size
            if size < offset:  # the log was replaced (a restarted front)
                offset, pending = 0, b""
            if size > offset:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read(size - offset)
                offset = size
                *lines, pending = (pending + data).split(b"\n")
                for raw in lines:
                    attempt = parse_refusal(raw.decode(errors="replace"))
                    if attempt is not None:
                        report_refusal(sessions, attempt)
        except OSError as exc:  # not there (yet, or any more): try again
            log.debug("front log %s: %s", path, exc)
        await asyncio.sleep(poll)  # another process writes the file: nothing to await on
