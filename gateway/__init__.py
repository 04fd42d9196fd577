"""Telephony voice-bot gateway: SIP/WebRTC edges, a sans-I/O turn engine, local barge-in detection."""

__version__ = "0.1.0"
