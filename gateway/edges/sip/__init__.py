"""SIP edge: a Kamailio front, pjsua2 worker processes (thin media bridges) and a session host.

Processes and data paths (see `README.md` next to this file):

    caller ──SIP──► Kamailio (dispatcher, :5060) ──SIP──► worker N (pjsua2, loopback port)
    caller ◄─RTP──────────────────────────────────────────► worker N
    worker N ◄──frames/events (Unix socket, wire.py)──► session host (asyncio, in `gateway serve`)

pjsua2 is confined to the worker processes; asyncio code only ever sees a `CallTransport`.
"""
