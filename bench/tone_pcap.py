"""A pcap of one RTP stream (PCMU, 20 ms packets, a 1 kHz tone) for sipp's `play_pcap_audio`.

sipp replays the UDP payloads with the capture's timing and rewrites addresses and ports, so the
addresses written here are placeholders; the RTP header (one SSRC, consecutive sequence numbers
and timestamps) goes out as written. Standard library only.
"""

import math
import struct

RATE = 8000
FRAME = 160  # samples in 20 ms
LINKTYPE_ETHERNET = 1


def ulaw(sample):
    """G.711 mu-law of one 16-bit sample (the classic segment encoder)."""
    sign = 0x80 if sample < 0 else 0
    mag = min(abs(sample), 32635) + 0x84
    exp = mag.bit_length() - 8
    mant = (mag >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def tone_frame(hz=1000, amplitude=8000):
    """One 20 ms PCMU payload; at 1 kHz it holds whole periods, so frames repeat seamlessly."""
    return bytes(ulaw(round(amplitude * math.sin(2 * math.pi * hz * n / RATE))) for n in range(FRAME))


def checksum(header):
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def write(path, seconds, ssrc=0x5150BE4C):
    """Writes `seconds` of tone as one RTP stream into the pcap at `path`."""
    payload = tone_frame()
    packets = int(seconds * 1000 / 20)
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET)]
    for i in range(packets):
        rtp = struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, (i * FRAME) & 0xFFFFFFFF, ssrc) + payload
        udp = struct.pack("!HHHH", 40000, 40000, 8 + len(rtp), 0) + rtp  # checksum 0: none
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
        ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
        frame = b"\x00" * 12 + b"\x08\x00" + ip + udp
        usec = i * 20_000
        out.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame)) + frame)
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return packets
