#!/usr/bin/env python3
"""Synthetic phones for bench/rooms.py: each dials `sip:room-<room>@SIPx` over UDP (a minimal
UAC: INVITE with a PCMU offer, ACK, BYE; no authentication, the calls come from a trunk's
inbound network), then sends a PCMU tone every 20 ms and decodes what it receives.

Run by bench/rooms.py; JSON lines as bench/rooms_webrtc.py:
  stdin, first line: {"ip": "127.x.y.z", "target": [host, port], "timeout": s,
                      "phones": [{"name", "room", "tone": Hz, "expect_hz": Hz}], "record_dir"?}
  stdout: {"event": "ready"} once every phone hears its `expect_hz` tone (or {"event": "error"});
  "mark" / "report" / "stop" as there; a report gives per phone {packets, peak_hz, band} and,
  with "record_dir", writes the last second each phone heard there as <name>.wav.
"""

import asyncio
import json
import os
import random
import struct
import sys
import time
import wave

import numpy as np

RATE = 8000
FRAME = 160  # 20 ms of PCMU
T1 = 0.5


def ulaw_encode(pcm):
    """G.711 mu-law (the classic segment encoder), vectorised."""
    x = pcm.astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8)


def ulaw_table():
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exp = (u >> 4) & 0x07
    mant = u & 0x0F
    mag = ((mant << 3) + 0x84) << exp
    return np.where(u & 0x80, 0x84 - mag, mag - 0x84).astype(np.int16)


ULAW = ulaw_table()


def header(text, name):
    for line in text.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


class Phone(asyncio.DatagramProtocol):
    def __init__(self, spec, ip, target):
        self.name = spec["name"]
        self.room = spec["room"]
        self.expect_hz = spec.get("expect_hz")
        self.ip, self.target = ip, tuple(target)
        t = np.arange(RATE) / RATE
        self.tone = ulaw_encode(np.sin(2 * np.pi * spec.get("tone", 400) * t) * 8000).tobytes()
        self.call_id = f"{random.getrandbits(64):x}@{ip}"
        self.tag = f"{random.getrandbits(32):x}"
        self.to_tag = None
        self.sip = self.rtp = None
        self.remote_rtp = None
        self.responses = asyncio.Queue()
        self.ssrc, self.seq, self.ts = random.getrandbits(32), random.getrandbits(16), random.getrandbits(32)
        self.packets = self.packets_at_mark = 0
        self.ring = np.zeros(RATE, dtype=np.float32)

    # ---- SIP ----

    def datagram_received(self, data, addr):
        text = data.decode(errors="replace")
        if text.startswith("SIP/2.0"):
            self.responses.put_nowait(text)
        elif text.split(" ", 1)[0] in ("BYE", "OPTIONS", "INVITE", "UPDATE", "INFO", "NOTIFY"):
            # Whatever SIPx asks of the call is accepted (a BYE ends the bench's figures anyway).
            head = "\r\n".join(line for line in text.split("\r\n")
                               if line.split(":", 1)[0].lower() in ("via", "from", "to", "call-id", "cseq"))
            self.sip.sendto(f"SIP/2.0 200 OK\r\n{head}\r\nContent-Length: 0\r\n\r\n".encode(), addr)

    def request(self, method, cseq, branch, body=""):
        port = self.sip.get_extra_info("sockname")[1]
        to = f"<sip:room-{self.room}@{self.target[0]}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        return (f"{method} sip:room-{self.room}@{self.target[0]}:{self.target[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.ip}:{port};branch={branch};rport\r\nMax-Forwards: 70\r\n"
                f"From: <sip:{self.name}@{self.ip}>;tag={self.tag}\r\nTo: {to}\r\nCall-ID: {self.call_id}\r\n"
                f"CSeq: {cseq} {method}\r\nContact: <sip:{self.name}@{self.ip}:{port}>\r\n{ctype}"
                f"Content-Length: {len(body)}\r\n\r\n{body}").encode()

    async def transaction(self, method, cseq, body="", timeout=10):
        """Sends a request (retransmitted until answered) and returns its final response."""
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        msg = self.request(method, cseq, branch, body)
        deadline = time.monotonic() + timeout
        interval, answered = T1, False
        while time.monotonic() < deadline:
            if not answered:
                self.sip.sendto(msg, self.target)
            try:
                text = await asyncio.wait_for(self.responses.get(), interval)
            except TimeoutError:
                interval = min(interval * 2, 4)
                continue
            if branch not in header(text, "via"):
                continue
            status = int(text.split(" ", 2)[1])
            if status < 200:
                answered = True
                interval = 1
                continue
            return status, text
        raise RuntimeError(f"{self.name}: no final answer to {method}")

    async def call(self):
        loop = asyncio.get_running_loop()
        self.sip, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(self.ip, 0))
        self.rtp, _ = await loop.create_datagram_endpoint(lambda: Rtp(self), local_addr=(self.ip, 0))
        rtp_port = self.rtp.get_extra_info("sockname")[1]
        sdp = (f"v=0\r\no=- 1 1 IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\n"
               f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n")
        status, text = await self.transaction("INVITE", 1, sdp)
        if status != 200:
            raise RuntimeError(f"{self.name}: INVITE answered {status}")
        to = header(text, "to")
        self.to_tag = to.split("tag=", 1)[1].split(";")[0] if "tag=" in to else None
        body = text.split("\r\n\r\n", 1)[1]
        addr = next(line[len("c=IN IP4 "):].strip() for line in body.split("\r\n") if line.startswith("c=IN IP4 "))
        port = next(int(line.split()[1]) for line in body.split("\r\n") if line.startswith("m=audio "))
        self.remote_rtp = (addr, port)
        if not addr.startswith("127."):
            raise RuntimeError(f"{self.name}: SIPx answered with a non-loopback media address {addr}")
        ack_branch = f"z9hG4bK{random.getrandbits(48):x}"
        self.sip.sendto(self.request("ACK", 1, ack_branch), self.target)

    async def hang_up(self):
        if self.to_tag:
            try:
                await self.transaction("BYE", 2, timeout=5)
            except RuntimeError:
                pass
        for t in (self.sip, self.rtp):
            if t:
                t.close()

    # ---- RTP ----

    def send_frame(self):
        if not self.remote_rtp:
            return
        at = (self.seq * FRAME) % RATE
        payload = self.tone[at:at + FRAME]
        self.rtp.sendto(struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, self.ssrc)
                        + payload, self.remote_rtp)
        self.seq += 1
        self.ts += FRAME

    def on_rtp(self, data):
        if len(data) < 12 or data[1] & 0x7F != 0:
            return
        cc = data[0] & 0x0F
        offset = 12 + 4 * cc
        if data[0] & 0x10 and len(data) >= offset + 4:
            offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
        pcm = ULAW[np.frombuffer(data[offset:], dtype=np.uint8)]
        self.packets += 1
        n = len(pcm)
        if 0 < n <= RATE:
            self.ring = np.roll(self.ring, -n)
            self.ring[-n:] = pcm

    def save(self, path):
        """The last second heard, as a 16-bit WAV (for a person to listen to)."""
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(self.ring.astype(np.int16).tobytes())

    def spectrum(self):
        x = self.ring * np.hanning(len(self.ring))
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / RATE)
        peak = float(freqs[int(np.argmax(power[1:])) + 1])
        band = float(power[np.abs(freqs - peak) <= 50].sum() / max(power.sum(), 1e-9))
        return peak, band

    def hears(self):
        peak, band = self.spectrum()
        return self.expect_hz is None or (abs(peak - self.expect_hz) <= 20 and band > 0.5)


class Rtp(asyncio.DatagramProtocol):
    def __init__(self, phone):
        self.phone = phone

    def datagram_received(self, data, addr):
        self.phone.on_rtp(data)


async def pace(phones):
    """Every phone sends a frame each 20 ms, on one schedule (catching up after a late wake)."""
    start, n = time.monotonic(), 0
    while True:
        n += 1
        wait = start + n * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        for p in phones:
            p.send_frame()


def cpu_seconds():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def say(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    spec = json.loads(await reader.readline())
    phones = [Phone(p, spec["ip"], spec["target"]) for p in spec["phones"]]
    pacer = asyncio.ensure_future(pace(phones))
    deadline = time.monotonic() + spec.get("timeout", 60)
    try:
        await asyncio.gather(*(p.call() for p in phones))
        while not all(p.hears() for p in phones):
            if time.monotonic() > deadline:
                raise RuntimeError("not every phone hears its tone: " + ", ".join(
                    f"{p.name} {p.spectrum()[0]:.0f} Hz" for p in phones if not p.hears()))
            await asyncio.sleep(0.2)
        say({"event": "ready"})
    except (RuntimeError, OSError, StopIteration) as e:
        say({"event": "error", "why": str(e)})
    while line := (await reader.readline()).decode().strip():
        if line == "mark":
            for p in phones:
                p.packets_at_mark = p.packets
            say({"event": "marked", "cpu": cpu_seconds()})
        elif line == "report":
            report = {}
            for p in phones:
                peak, band = p.spectrum()
                report[p.name] = {"packets": p.packets - p.packets_at_mark, "peak_hz": peak, "band": band}
                if spec.get("record_dir"):
                    p.save(os.path.join(spec["record_dir"], f"{p.name}.wav"))
            say({"event": "report", "cpu": cpu_seconds(), "phones": report})
        elif line == "stop":
            break
    pacer.cancel()
    await asyncio.gather(*(p.hang_up() for p in phones))


if __name__ == "__main__":
    asyncio.run(main())
