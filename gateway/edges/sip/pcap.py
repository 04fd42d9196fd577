"""Make RTP captures (pcap) from WAV files, for sipp's `play_pcap_audio`.

    python -m gateway.edges.sip.pcap caller.wav caller_pcmu.pcap --codec PCMU

The WAV's first channel is resampled to 8 kHz, encoded with μ-law (PCMU, payload type 0) or A-law
(PCMA, payload type 8) and cut into 20 ms RTP packets inside Ethernet/IPv4/UDP frames, stamped 20 ms
apart. sipp rewrites addresses and ports and replays the packets at the capture's pace.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gateway.audio.frames import FRAME_SECONDS
from gateway.audio.g711 import alaw_encode, ulaw_encode
from gateway.audio.resample import resample
from gateway.audio.wav import read_wav

PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8}
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # LINKTYPE_ETHERNET


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_frame(payload: bytes, src_port: int = 6000, dst_port: int = 6002) -> bytes:
    src_ip, dst_ip = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])
    udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0, src_ip, dst_ip)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    ether = b"\x00" * 12 + b"\x08\x00"
    return ether + ip + udp


def rtp_packets(codes: NDArray[np.uint8], payload_type: int, ssrc: int = 0x5EED1234) -> list[bytes]:
    packets = []
    for i, start in enumerate(range(0, len(codes), SAMPLES_PER_PACKET)):
        chunk = codes[start : start + SAMPLES_PER_PACKET].tobytes()
        if len(chunk) < SAMPLES_PER_PACKET:
            chunk += bytes([0xFF if payload_type == 0 else 0xD5]) * (SAMPLES_PER_PACKET - len(chunk))
        marker = 0x80 if i == 0 else 0
        header = struct.pack("!BBHII", 0x80, marker | payload_type, i & 0xFFFF, i * SAMPLES_PER_PACKET, ssrc)
        packets.append(header + chunk)
    return packets


def write_pcap(path: Path, packets: list[bytes], interval_us: int = 20_000) -> None:
    out = [_PCAP_HEADER]
    for i, rtp in enumerate(packets):
        frame = _udp_frame(rtp)
        t_us = i * interval_us
        out.append(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    path.write_bytes(b"".join(out))


def encode_pcm(pcm: NDArray[np.int16], codec: str) -> NDArray[np.uint8]:
    if codec == "PCMU":
        return ulaw_encode(pcm)
    if codec == "PCMA":
        return alaw_encode(pcm)
    raise ValueError(f"unsupported codec {codec!r}; choose PCMU or PCMA")


def wav_to_pcap(wav: Path, pcap: Path, codec: str = "PCMU") -> int:
    """Write `pcap` from `wav`; returns the number of RTP packets."""
    audio = read_wav(wav)
    pcm = np.ascontiguousarray(audio.pcm[:, 0])
    if audio.rate != 8000:
        pcm = resample(pcm, audio.rate, 8000)
    packets = rtp_packets(encode_pcm(pcm, codec.upper()), PAYLOAD_TYPES[codec.upper()])
    write_pcap(pcap, packets)
    return len(packets)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gateway.edges.sip.pcap", description=__doc__)
    p.add_argument("wav", type=Path)
    p.add_argument("pcap", type=Path)
    p.add_argument("--codec", choices=sorted(PAYLOAD_TYPES), default="PCMU")
    a = p.parse_args(argv)
    n = wav_to_pcap(a.wav, a.pcap, a.codec)
    print(f"{a.pcap}: {n} RTP packets ({n * FRAME_SECONDS:.2f} s, {a.codec})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
