"""Where ICE gathers host candidates, and the ICE servers used: aiortc configuration from settings.

aioice gathers host candidates on every interface it finds but never on loopback; the embedded
demo (HTTP on 127.0.0.1) and the tests need exactly loopback, and an operator may want one
public interface only. `restrict_host_addresses` makes aioice gather on the configured addresses.
"""

from __future__ import annotations

import ipaddress

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

from gateway.edges.webrtc.settings import WebRtcSettings

_original = aioice.ice.get_host_addresses


def restrict_host_addresses(addresses: list[str]) -> None:
    """Gather host candidates on `addresses` only (empty: aioice's own discovery)."""
    if not addresses:
        aioice.ice.get_host_addresses = _original
        return
    chosen = list(addresses)

    def host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        out = []
        for address in chosen:
            version = ipaddress.ip_address(address).version
            if (version == 4 and use_ipv4) or (version == 6 and use_ipv6):
                out.append(address)
        return out

    aioice.ice.get_host_addresses = host_addresses


def rtc_configuration(settings: WebRtcSettings) -> RTCConfiguration:
    return RTCConfiguration(
        iceServers=[RTCIceServer(s.urls, s.username, s.credential) for s in settings.ice_servers]
    )


def page_ice_servers(settings: WebRtcSettings) -> list[dict[str, object]]:
    """The same servers in the browser's RTCConfiguration shape."""
    out: list[dict[str, object]] = []
    for s in settings.ice_servers:
        entry: dict[str, object] = {"urls": s.urls}
        if s.username:
            entry["username"] = s.username
        if s.credential:
            entry["credential"] = s.credential
        out.append(entry)
    return out
