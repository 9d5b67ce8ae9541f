#!/usr/bin/env python3
"""Synthetic WebRTC participants for bench/rooms.py: aiortc peers (ICE, DTLS-SRTP, Opus) that join
SIPx rooms over the documented signalling (docs/rooms-signalling.md), publish a tone and count and
decode what they receive.

Run by bench/rooms.py, one process per group of clients; it speaks JSON lines:
  stdin, first line: {"ip": "127.x.y.z", "clients": [{"name", "ws", "publish": bool, "tone": Hz,
                      "video": bool}], "expect": {"<client name>": <tracks it must receive>},
                      "timeout": s}
  stdout: {"event": "ready"} once every publisher sends and every client decodes a second of as
          many tracks as it expects (or {"event": "error", ...} when that does not happen in time);
  stdin "wait {"expect": {...}, "timeout": s}": the same again, for new expectations;
  stdin "mark": counters are zeroed, answered {"event": "marked", "cpu": <this process' CPU s>};
  stdin "report": {"event": "report", "cpu": s, "clients": {name: {"sent": {kind: packets},
                  "heard": {source[/video]: {kind, packets, frames, peak_hz, band}}}}} for the
                  time since "mark";
  stdin "stop": leaves and exits.

Only loopback addresses are used: aioice's host-address discovery is replaced by the client's
process's 127.x address, and no STUN server is configured.
"""

import asyncio
import fractions
import json
import os
import sys
import time

import aioice.ice
import numpy as np
import websockets
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
# The decoded audio kept per source for the tone check: the last second.
KEEP = RATE


def loopback_only(ip):
    """Makes aioice offer `ip` as the only host candidate (it skips 127.0.0.1 and offers every
    other interface address by default)."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [ip]


class Paced(MediaStreamTrack):
    """A source track that makes its frames in real time (aiortc's sender pulls as fast as it
    is given)."""

    def __init__(self):
        super().__init__()
        self.start = None

    async def wait_for(self, seconds):
        """Until `seconds` after the first frame; raises once the track is stopped."""
        if self.readyState != "live":
            raise MediaStreamError
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + seconds - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)


class Tone(Paced):
    """A mono sine at `hz`, paced in real time, 20 ms per frame (aiortc encodes it to Opus)."""

    kind = "audio"

    def __init__(self, hz):
        super().__init__()
        t = np.arange(RATE) / RATE
        self.second = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
        self.pts = 0

    async def recv(self):
        await self.wait_for(self.pts / RATE)
        at = self.pts % RATE
        samples = self.second[at:at + FRAME]
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.pts += FRAME
        return frame


class Pattern(Paced):
    """320x240 video at 15 frames a second, a bar moving across a gradient and a block of noise
    (so that frames take a few packets each; aiortc encodes it to VP8)."""

    kind = "video"
    FPS = 15

    def __init__(self):
        super().__init__()
        self.n = 0
        self.base = np.tile(np.arange(320, dtype=np.uint8), (240, 1))
        self.noise = np.random.default_rng(1)

    async def recv(self):
        await self.wait_for(self.n / self.FPS)
        y = self.base.copy()
        x = (self.n * 8) % 320
        y[:, x:x + 16] = 255
        y[90:150, 120:200] = self.noise.integers(0, 256, (60, 80), dtype=np.uint8)
        planes = np.concatenate([y, np.full((120, 320), 128, dtype=np.uint8)])
        frame = VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = self.n * 6000  # 90 kHz clock
        frame.time_base = fractions.Fraction(1, 90000)
        self.n += 1
        return frame


class Heard:
    """What one client received on one track: packets (RTP, from the receiver's stats), frames
    decoded, and for audio the last second of decoded samples (a ring)."""

    def __init__(self, receiver, kind):
        self.receiver = receiver
        self.kind = kind
        self.frames = 0
        self.frames_at_mark = 0
        self.packets_at_mark = 0
        self.ring = np.zeros(KEEP, dtype=np.float32)
        self.at = 0
        self.filled = 0

    def flowing(self):
        """A second of it decoded."""
        return self.frames >= (50 if self.kind == "audio" else Pattern.FPS)

    def add(self, frame):
        self.frames += 1
        if self.kind != "audio":
            return
        pcm = frame.to_ndarray()
        # Packed stereo s16 (1 x 2n) or planar (channels x n): keep the first channel.
        mono = pcm[0, ::2] if pcm.shape[0] == 1 and len(frame.layout.channels) == 2 else pcm[0]
        mono = mono[-KEEP:]
        n = len(mono)
        first = min(n, KEEP - self.at)
        self.ring[self.at:self.at + first] = mono[:first]
        self.ring[:n - first] = mono[first:]
        self.at = (self.at + n) % KEEP
        self.filled = min(KEEP, self.filled + n)

    async def packets(self):
        total = 0
        for s in (await self.receiver.getStats()).values():
            if getattr(s, "type", "") == "inbound-rtp":
                total += s.packetsReceived
        return total

    def spectrum(self):
        """The strongest frequency in the last second and the share of energy within 50 Hz."""
        if self.kind != "audio" or self.filled < KEEP // 2:
            return 0.0, 0.0
        ordered = np.concatenate([self.ring[self.at:], self.ring[:self.at]])
        x = ordered[-self.filled:] * np.hanning(self.filled)
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.fft.rfftfreq(self.filled, 1 / RATE)
        peak = float(freqs[int(np.argmax(power[1:])) + 1])
        band = float(power[np.abs(freqs - peak) <= 50].sum() / max(power.sum(), 1e-9))
        return peak, band


class Client:
    def __init__(self, spec):
        self.name = spec["name"]
        self.ws_url = spec["ws"]
        self.publish = spec.get("publish", False)
        self.tone = spec.get("tone", 440)
        self.video = spec.get("video", False)
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.ws = None
        self.mids = {}  # mid -> source identity (the server's `tracks` message)
        self.heard = {}  # source identity (+ "/video") -> Heard
        self.making_offer = False
        self.sent_at_mark = {"audio": 0, "video": 0}
        self.pc.on("track", self.on_track)

    def on_track(self, track):
        transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None:
            return
        mid = transceiver.mid
        source = self.mids.get(mid, f"mid{mid}") + ("" if track.kind == "audio" else "/video")
        heard = self.heard.setdefault(source, Heard(transceiver.receiver, track.kind))
        asyncio.ensure_future(self.consume(track, heard))

    async def consume(self, track, heard):
        try:
            while True:
                heard.add(await track.recv())
        except MediaStreamError:
            pass

    async def sent(self):
        """RTP packets this client has sent (its senders' stats), per kind."""
        total = {"audio": 0, "video": 0}
        for t in self.pc.getTransceivers():
            if t.sender.track is None:
                continue
            for s in (await t.sender.getStats()).values():
                if getattr(s, "type", "") == "outbound-rtp":
                    total[t.sender.track.kind] += s.packetsSent
        return total

    async def send(self, message):
        await self.ws.send(json.dumps(message))

    async def local_sdp(self):
        sdp = self.pc.localDescription.sdp
        for line in sdp.splitlines():
            if line.startswith("a=candidate:") and " 127." not in line:
                raise SystemExit(f"{self.name}: a non-loopback candidate: {line}")
        return sdp

    async def run(self):
        async with websockets.connect(self.ws_url, max_size=None) as ws:
            self.ws = ws
            async for text in ws:
                m = json.loads(text)
                kind = m.get("type")
                if kind == "welcome" and self.publish:
                    self.pc.addTransceiver(Tone(self.tone), direction="sendonly")
                    if self.video:
                        self.pc.addTransceiver(Pattern(), direction="sendonly")
                    self.making_offer = True
                    await self.pc.setLocalDescription(await self.pc.createOffer())
                    await self.send({"type": "offer", "sdp": await self.local_sdp()})
                elif kind == "answer":
                    await self.pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "answer"))
                    self.making_offer = False
                elif kind == "offer":
                    if self.making_offer or self.pc.signalingState == "have-local-offer":
                        continue  # the impolite side: the server offers again
                    await self.pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
                    await self.pc.setLocalDescription(await self.pc.createAnswer())
                    await self.send({"type": "answer", "sdp": await self.local_sdp()})
                elif kind == "tracks":
                    self.mids = {t["mid"]: t["participant"] for t in m["tracks"]}
                elif kind == "closed":
                    break

    async def close(self):
        if self.ws is not None:
            try:
                await self.send({"type": "leave"})
            except websockets.ConnectionClosed:
                pass
        await self.pc.close()


def cpu_seconds():
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def lines():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        yield line.decode().strip()


def say(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def wait_until_flowing(clients, tasks, expect, timeout):
    """Until every publisher sends and every client decodes a second of audio from each of the
    `expect[name]` sources it must hear; says "ready", or "error" with what is missing."""
    deadline = time.monotonic() + timeout

    async def flowing(c):
        if c.publish and (await c.sent())["audio"] < 50:
            return False
        return sum(h.flowing() for h in c.heard.values()) >= expect.get(c.name, 0)

    while True:
        waiting = [c.name for c in clients if not await flowing(c)]
        if not waiting:
            say({"event": "ready"})
            return
        failed = [t for t in tasks if t.done()]
        if failed or time.monotonic() > deadline:
            errors = [repr(t.exception()) for t in failed if not t.cancelled() and t.exception()]
            say({"event": "error", "why": "not every client sends and hears what it should",
                 "waiting": waiting[:10], "errors": errors[:5]})
            return
        await asyncio.sleep(0.2)


async def main():
    commands = lines()
    spec = json.loads(await commands.__anext__())
    loopback_only(spec["ip"])
    clients = [Client(c) for c in spec["clients"]]
    tasks = [asyncio.ensure_future(c.run()) for c in clients]
    await wait_until_flowing(clients, tasks, spec.get("expect", {}), spec.get("timeout", 60))
    async for command in commands:
        verb, _, arg = command.partition(" ")
        if verb == "wait":
            want = json.loads(arg)
            await wait_until_flowing(clients, tasks, want["expect"], want.get("timeout", 60))
        elif verb == "mark":
            for c in clients:
                c.sent_at_mark = await c.sent()
                for h in c.heard.values():
                    h.frames_at_mark = h.frames
                    h.packets_at_mark = await h.packets()
            say({"event": "marked", "cpu": cpu_seconds()})
        elif verb == "report":
            report = {}
            for c in clients:
                heard = {}
                for source, h in c.heard.items():
                    peak, band = h.spectrum()
                    heard[source] = {"kind": h.kind, "packets": await h.packets() - h.packets_at_mark,
                                     "frames": h.frames - h.frames_at_mark, "peak_hz": peak, "band": band}
                now = await c.sent()
                report[c.name] = {"sent": {k: now[k] - c.sent_at_mark[k] for k in now}, "heard": heard}
            say({"event": "report", "cpu": cpu_seconds(), "clients": report})
        elif verb == "stop":
            break
    for c in clients:
        await c.close()
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
