"""Media test library: proves with real peers that audio crosses a call intact, that DTMF digits
are right, that SRTP is really encrypted and that audio survives loss and jitter.

Parts, in the order a test uses them:
  make_audio          test material (espeak-ng speech, sox tones, raw G.711 payloads), cached
  tone_check & co.    what a received WAV holds (numpy; PESQ through PyPI `pesq`)
  Capture             dumpcap on lo, awaited until it really captures
  rtp_to_wav          one G.711 RTP stream of a capture -> WAV, plus the RFC 4733 digits it carried
  call_sdps           the offer and answer of a call, as they crossed the wire
  media_streams,
  assert_no_cleartext_rtp   is the media in a capture encrypted?
  ImpairmentRelay     seeded loss / jitter / reordering between a peer and a server (no netem here)
  Baresip             a real UA (baresip-core) driven over ctrl_tcp
  Rtpengine           a media relay that transcodes (G.729 through bcg729), behind Kamailio
  run_sipp_call       sipp with one of peers/sipp/*.xml, in a folder holding its audio files

Every wait has a deadline; every random choice is seeded.
"""

import contextlib
import dataclasses
import hashlib
import heapq
import json
import math
import os
import pathlib
import random
import re
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import wave
from collections import Counter

import numpy as np

E2E = pathlib.Path(__file__).resolve().parent
PEERS = E2E / "peers"
AUDIO_CACHE = E2E / ".artifacts" / "audio"

# ---------------------------------------------------------------------------------------------
# Test material
# ---------------------------------------------------------------------------------------------

# About 5 s: long enough for PESQ (P.862 wants 3 s or more of speech), short enough for CI.
SPEECH_TEXT = "The quick brown fox jumps over the lazy dog. Call me back at five five five."


def _sox_tone(name, rate, *freqs, seconds=10):
    # Several frequencies are mixed: sox's "synth sine A sine B" would make a stereo file.
    synth = ["synth", str(seconds)] + [w for f in freqs for w in ("sine", str(f))]
    mix = ["channels", "1"] if len(freqs) > 1 else []
    # -9 dBFS per tone (vol 0.35) leaves headroom for two of them.
    return ["sox", "-n", "-r", str(rate), "-c", str(len(freqs)), "-b", "16", name, *synth, *mix, "vol", "0.35"]


def _g711(src, name, law):
    return ["sox", src, "-t", "raw", "-e", law, "-r", "8000", "-c", "1", name]


# (file made, command). Changing any command changes the cache key, so stale material is never
# reused. espeak-ng writes 22050 Hz; sox resamples to each rate a codec wants.
AUDIO_RECIPE = [
    ("speech_raw.wav", ["espeak-ng", "-v", "en-us", "-s", "150", "-w", "speech_raw.wav", SPEECH_TEXT]),
    *[(f"speech_{k}k.wav", ["sox", "speech_raw.wav", "-r", str(k * 1000), "-c", "1", "-b", "16",
                            f"speech_{k}k.wav"]) for k in (8, 16, 48)],
    *[(f"tone{f}_{k}k.wav", _sox_tone(f"tone{f}_{k}k.wav", k * 1000, f)) for f in (1000, 600) for k in (8, 16, 48)],
    ("tones_600_1000_8k.wav", _sox_tone("tones_600_1000_8k.wav", 8000, 600, 1000)),
    ("tone400_8k.wav", _sox_tone("tone400_8k.wav", 8000, 400, seconds=20)),
    # baresip's aufile source must match the codec's rate and channels (no resampling in 1.0):
    # opus/48000/2 wants 48 kHz stereo.
    ("tone1000_48k_stereo.wav", ["sox", "tone1000_48k.wav", "-c", "2", "tone1000_48k_stereo.wav"]),
    # Raw payload bytes for sipp's rtp_stream (it does not skip a WAV header).
    ("speech_8k.ulaw", _g711("speech_8k.wav", "speech_8k.ulaw", "mu-law")),
    ("speech_8k.alaw", _g711("speech_8k.wav", "speech_8k.alaw", "a-law")),
    ("tone1000_8k.ulaw", _g711("tone1000_8k.wav", "tone1000_8k.ulaw", "mu-law")),
    ("tone1000_8k.alaw", _g711("tone1000_8k.wav", "tone1000_8k.alaw", "a-law")),
    ("tone600_8k.ulaw", _g711("tone600_8k.wav", "tone600_8k.ulaw", "mu-law")),
    # What a G.711 leg does to speech at best: the ceiling a call can reach.
    ("speech_8k_ulaw_rt.wav", ["sox", "-t", "raw", "-e", "mu-law", "-r", "8000", "-c", "1", "speech_8k.ulaw",
                               "-b", "16", "-e", "signed", "speech_8k_ulaw_rt.wav"]),
]


class Audio(dict):
    """File name (without extension for WAVs, e.g. `speech_8k`; with it for raw payloads, e.g.
    `speech_8k.ulaw`) -> path. Attribute access for WAVs: `audio.speech_8k`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def make_audio(directory=AUDIO_CACHE):
    """Makes the test material once; later calls (and later runs) reuse it. The folder is named
    after a hash of the commands, and filled atomically so parallel runs never see half of it."""
    key = hashlib.sha256(json.dumps(AUDIO_RECIPE).encode()).hexdigest()[:16]
    directory = pathlib.Path(directory)
    dest = directory / key
    if not (dest / ".done").exists():
        directory.mkdir(parents=True, exist_ok=True)
        work = pathlib.Path(tempfile.mkdtemp(prefix=".making-", dir=directory))
        for _, cmd in AUDIO_RECIPE:
            subprocess.run(cmd, cwd=work, check=True, capture_output=True, timeout=60)
        (work / ".done").touch()
        try:
            work.rename(dest)
        except OSError:  # another run finished first: use its copy
            shutil.rmtree(work, ignore_errors=True)
    audio = Audio()
    for name, _ in AUDIO_RECIPE:
        audio[name.removesuffix(".wav")] = dest / name
    return audio


# ---------------------------------------------------------------------------------------------
# What a WAV holds
# ---------------------------------------------------------------------------------------------

def read_wav(path):
    """(rate, mono float samples in [-1, 1)) of a 16-bit PCM WAV; channels are averaged."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: need 16-bit PCM, got {8 * width}-bit")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    return rate, x.reshape(-1, channels).mean(axis=1) if channels > 1 else x


def write_wav(path, rate, samples_i16):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples_i16, dtype="<i2").tobytes())


def _dbfs(x):
    rms = math.sqrt(float(np.mean(x * x))) if len(x) else 0.0
    return 20 * math.log10(rms) if rms > 0 else -999.0


def _band_shares(x, rate, freqs, half_width=30.0):
    """Share of the energy above 50 Hz that lies within +-half_width of each frequency."""
    if len(x) == 0:
        return [0.0] * len(freqs), None
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    bins = np.fft.rfftfreq(len(x), 1.0 / rate)
    audible = bins > 50
    total = spec[audible].sum()
    if total <= 1e-12:
        return [0.0] * len(freqs), None
    shares = [float(spec[(bins > f - half_width) & (bins < f + half_width)].sum() / total) for f in freqs]
    return shares, float(bins[audible][np.argmax(spec[audible])])


@dataclasses.dataclass
class ToneCheck:
    band_ratio: float  # share of the whole file's energy near the frequency (clean tone: >= 0.99)
    peak_hz: float | None
    rms_dbfs: float
    active_s: float    # seconds (in 100 ms frames) in which the tone dominates and is not silent
    duration_s: float


def tone_check(wav, hz, skip_s=0.0, min_ratio=0.5):
    """How much of `wav` is a tone of `hz`. Speech gives a band_ratio near 0.03."""
    rate, x = read_wav(wav)
    x = x[int(skip_s * rate):]
    frame = rate // 10
    active = 0
    for i in range(0, len(x) - frame + 1, frame):
        f = x[i:i + frame]
        if _band_shares(f, rate, [hz])[0][0] >= min_ratio and _dbfs(f) > -50:
            active += 1
    (ratio,), peak = _band_shares(x, rate, [hz])
    return ToneCheck(round(ratio, 4), peak and round(peak, 1), round(_dbfs(x), 1), active / 10.0,
                     round(len(x) / rate, 3))


def two_tones_present(wav, f1, f2, min_each=0.2, min_both=0.6):
    """Both tones are there, together dominating: each holds >= min_each of the energy and both
    >= min_both (a mix of two peers' tones, an in-band DTMF digit)."""
    rate, x = read_wav(wav)
    (a, b), _ = _band_shares(x, rate, [f1, f2])
    return a >= min_each and b >= min_each and a + b >= min_both


DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLUMNS = (1209, 1336, 1477, 1633)
DTMF_KEYPAD = ("123A", "456B", "789C", "*0#D")


def inband_digits(wav, frame_ms=40):
    """The DTMF keys heard as tones in `wav` (Q.23 pairs), one per press: a frame holds a key
    when its strongest row and column tones each carry a fifth of its energy and together 80 %,
    and a press is a run of such frames."""
    rate, x = read_wav(wav)
    n = rate * frame_ms // 1000
    keys, last = [], None
    for i in range(0, len(x) - n + 1, n):
        f = x[i:i + n]
        key = None
        if _dbfs(f) > -40:
            # 40 ms frames resolve 25 Hz; +-30 Hz keeps neighbouring rows (73 Hz apart) apart.
            rows, _ = _band_shares(f, rate, DTMF_ROWS, half_width=30)
            cols, _ = _band_shares(f, rate, DTMF_COLUMNS, half_width=30)
            r, c = int(np.argmax(rows)), int(np.argmax(cols))
            if rows[r] >= 0.2 and cols[c] >= 0.2 and rows[r] + cols[c] >= 0.8:
                key = DTMF_KEYPAD[r][c]
        if key and key != last:
            keys.append(key)
        last = key
    return "".join(keys)


def resampled(wav, rate, out_dir=None):
    """`wav` at `rate` (sox), or `wav` itself when it already is."""
    with wave.open(str(wav), "rb") as w:
        if w.getframerate() == rate and w.getnchannels() == 1:
            return pathlib.Path(wav)
    wav = pathlib.Path(wav)
    out = pathlib.Path(out_dir or wav.parent) / f"{wav.stem}_{rate}.wav"
    subprocess.run(["sox", str(wav), "-r", str(rate), "-c", "1", "-b", "16", str(out)], check=True,
                   capture_output=True, timeout=30)
    return out


def loop_align(ref, deg):
    """`deg` recorded `ref` played in a loop, starting somewhere inside it (sipp rtp_stream with
    loops, a fake microphone): `ref` rotated to that start and repeated to `deg`'s length."""
    n = len(ref)
    head = deg[:min(len(deg), n)]
    size = 1 << math.ceil(math.log2(2 * n + len(head)))
    corr = np.fft.irfft(np.fft.rfft(np.tile(ref, 2), size) * np.conj(np.fft.rfft(head, size)), size)[:n]
    start = int(np.argmax(corr))
    reps = math.ceil(len(deg) / n) + 1
    return np.tile(np.roll(ref, -start), reps)[:len(deg)], start


def _pesq(ref, deg, rate, mode, loop):
    from pesq import pesq

    _, a = read_wav(resampled(ref, rate))
    _, b = read_wav(resampled(deg, rate))
    if loop:
        a, _ = loop_align(a, b)
    n = min(len(a), len(b))
    return round(float(pesq(rate, a[:n], b[:n], mode)), 3)


def pesq_nb(ref, deg, loop=False):
    """ITU-T P.862 narrow-band MOS-LQO (8 kHz; other rates are resampled). A G.711 leg of the
    espeak sentence scores ~4.0; the same file against itself 4.55."""
    return _pesq(ref, deg, 8000, "nb", loop)


def pesq_wb(ref, deg, loop=False):
    """P.862.2 wide-band MOS-LQO (16 kHz). Band-limiting to 8 kHz costs ~1.5 points here."""
    return _pesq(ref, deg, 16000, "wb", loop)


@dataclasses.dataclass
class Delay:
    ms: float    # how late `deg` is against `ref` (negative: early)
    corr: float  # normalised cross-correlation peak: ~1 for the same signal


def delay(ref, deg):
    rate, a = read_wav(ref)
    _, b = read_wav(resampled(deg, rate))
    size = 1 << math.ceil(math.log2(len(a) + len(b)))
    corr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lag = int(np.argmax(np.abs(corr)))
    if lag > size // 2:
        lag -= size
    norm = math.sqrt(float((a * a).sum() * (b * b).sum())) or 1.0
    return Delay(round(1000.0 * lag / rate, 1), round(float(np.abs(corr).max() / norm), 3))


# ---------------------------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------------------------

# Probes go here: a discard port on an address of this suite's range that nothing listens on.
# The payload cannot pass for RTP (its version bits are 01), so media analysis never sees it.
PROBE_ADDR = ("127.0.0.79", 9)
PROBE_PAYLOAD = b"sipx-capture-probe"


class Capture:
    """dumpcap on `lo` with a BPF capture filter (`host 127.0.0.60 or udp port 5060`).

    `start()` returns only once dumpcap has really captured a probe datagram: "Capturing on" is
    printed before the filter is live. `stop()` first sends another probe and waits for it, so
    every packet sent before `stop()` is in the file."""

    def __init__(self, pcap, bpf_filter, interface="lo"):
        self.pcap = pathlib.Path(pcap)
        probe = f"(udp and dst host {PROBE_ADDR[0]} and dst port {PROBE_ADDR[1]})"
        self.filter = f"({bpf_filter}) or {probe}"
        self.interface = interface
        self.proc = None
        self._stderr = ""
        self._lock = threading.Condition()

    def start(self, timeout=10):
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(["dumpcap", "-i", self.interface, "-f", self.filter, "-w", str(self.pcap)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        self._probe_until_counted(0, timeout)
        return self

    def _read(self):
        # dumpcap reports "\rPackets: N " on stderr as it writes them.
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            with self._lock:
                self._stderr += chunk.decode(errors="replace")
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def packets(self):
        counts = re.findall(r"Packets(?: captured)?: (\d+)", self._stderr)
        return int(counts[-1]) if counts else 0

    def _probe_until_counted(self, before, timeout):
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while True:
                s.sendto(PROBE_PAYLOAD, PROBE_ADDR)
                with self._lock:
                    self._lock.wait(0.05)
                    if self.packets() > before:
                        return
                    if self.proc.poll() is not None:
                        raise AssertionError(f"dumpcap exited ({self.proc.returncode}): {self._stderr}")
                if time.monotonic() > deadline:
                    self.proc.kill()
                    raise AssertionError(f"dumpcap captured nothing within {timeout} s: {self._stderr}")

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self._probe_until_counted(self.packets(), timeout)
            self.proc.send_signal(signal.SIGTERM)  # dumpcap flushes and closes the file
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.pcap

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def tshark_fields(pcap, display_filter, fields, *options):
    """Rows of `fields` (lists of strings) for the packets matching `display_filter`.

    ICMP errors are left out: one quotes the packet it answers, whose IP and RTP fields then match
    the filter too (a port-unreachable to the phone looks like an RTP packet *to* it, carrying the
    phone's own SSRC)."""
    display_filter = f"({display_filter}) && !icmp && !icmpv6"
    cmd = ["tshark", "-r", str(pcap), "-o", "rtp.heuristic_rtp:TRUE", *options, "-Y", display_filter,
           "-T", "fields", "-E", "separator=|", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"tshark failed: {out.stderr}")
    return [line.split("|") for line in out.stdout.splitlines()]


# ---------------------------------------------------------------------------------------------
# RTP -> WAV and DTMF
# ---------------------------------------------------------------------------------------------

def _ulaw_to_linear(b):
    b = ~b & 0xFF
    magnitude = ((((b & 0x0F) << 3) + 0x84) << ((b >> 4) & 7)) - 0x84
    return -magnitude if b & 0x80 else magnitude


def _alaw_to_linear(b):
    b ^= 0x55
    exponent, mantissa = (b >> 4) & 7, b & 0x0F
    magnitude = (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if b & 0x80 else -magnitude


# G.711 decoding (ITU-T G.711) as two 256-entry tables, indexed by payload byte.
G711_TABLES = {0: np.array([_ulaw_to_linear(i) for i in range(256)], dtype=np.int16),
               8: np.array([_alaw_to_linear(i) for i in range(256)], dtype=np.int16)}
DTMF_EVENTS = "0123456789*#ABCD"


@dataclasses.dataclass
class RtpStream:
    wav: pathlib.Path
    packets: int              # audio packets decoded
    ssrcs: list
    payload_types: dict       # PT -> packet count (audio and events)
    dtmf: str                 # RFC 4733 digits, one per event (end-of-event retransmits folded)
    seconds: float
    gaps: int                 # packets missing from the sequence (filled with silence)
    out_of_order: int         # packets that arrived after a higher sequence number
    too_late: int = 0         # with playout_ms: packets that missed their playout time


def rtp_to_wav(pcap, out, dst=None, src=None, pt=None, event_pt=101, playout_ms=None, renumbered=None):
    """One G.711 (PCMU/PCMA) stream of a capture, as an 8 kHz 16-bit WAV ordered by sequence
    number with lost packets as silence (an ideal jitter buffer), and the RFC 4733 digits it
    carried. `dst`/`src` are (ip, port) to pick the stream; `pt` keeps one audio PT only.
    `playout_ms` plays a receiver with a fixed buffer instead: each packet is due that long after
    the first one's arrival plus its place in the sequence, and one that arrives later is
    silence too (0: no jitter buffer at all). `renumbered` maps dynamic payload types a peer gave
    G.711 to their static ones ({98: 0}: PT 98 is PCMU).
    G.722 and Opus are not decoded here: baresip records what it decoded itself (-dec.wav)."""
    flt = ["rtp"]
    for side, addr in (("dst", dst), ("src", src)):
        if addr:
            family = "ipv6" if ":" in addr[0] else "ip"
            flt.append(f"{family}.{side}=={addr[0]} && udp.{side}port=={addr[1]}")
    rows = tshark_fields(pcap, " && ".join(flt), ["rtp.ssrc", "rtp.seq", "rtp.p_type", "rtp.payload",
                                                  "rtpevent.event_id", "rtp.timestamp", "frame.time_relative"],
                         "-o", f"rtpevent.event_payload_type_value:{event_pt}")
    tables = {**G711_TABLES, **{p: G711_TABLES[law] for p, law in (renumbered or {}).items()}}
    streams, pts, digits, last_event = {}, Counter(), [], None
    for ssrc, seq, ptype, payload, event, ts, arrival in rows:
        if not seq:
            continue
        ptype = int(ptype)
        pts[ptype] += 1
        if event and ptype == event_pt:  # tshark also decodes PT 101 by default
            if (ssrc, ts) != last_event:  # one event = one RTP timestamp, sent several times
                digits.append(DTMF_EVENTS[int(event)] if int(event) < 16 else f"<{event}>")
                last_event = (ssrc, ts)
        if event:
            continue
        if ptype in tables and (pt is None or ptype == pt):
            streams.setdefault(ssrc, []).append((int(seq), ptype, bytes.fromhex(payload.replace(":", "")),
                                                 float(arrival)))
    chunks, gaps, late, too_late = [], 0, 0, 0
    for pkts in streams.values():
        ordered, wraps, prev, highest = [], 0, None, -1
        first = None  # (extended seq, arrival) of the first packet to arrive
        for seq, ptype, data, arrival in pkts:
            if prev is not None and seq < prev - 30000:
                wraps += 65536
            prev = seq
            ext = seq + wraps
            late += ext < highest
            highest = max(highest, ext)
            first = first or (ext, arrival)
            # G.711: 8 bytes a millisecond.
            due = first[1] + ((ext - first[0]) * len(data) / 8 + (playout_ms or 0)) / 1000.0
            if playout_ms is not None and arrival > due + 0.001:
                too_late += 1
                continue
            ordered.append((ext, ptype, data))
        ordered.sort(key=lambda p: p[0])
        last = None
        for ext, ptype, data in ordered:
            if last is not None and ext == last:
                continue  # duplicate
            if last is not None and ext > last + 1:
                gaps += ext - last - 1
                chunks.append(np.zeros(len(data) * (ext - last - 1), dtype=np.int16))
            chunks.append(tables[ptype][np.frombuffer(data, dtype=np.uint8)])
            last = ext
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    write_wav(out, 8000, samples)
    return RtpStream(pathlib.Path(out), sum(len(v) for v in streams.values()), list(streams), dict(pts),
                     "".join(digits), round(len(samples) / 8000, 2), gaps, late, too_late)


# ---------------------------------------------------------------------------------------------
# SDP in a capture
# ---------------------------------------------------------------------------------------------

def call_sdps(pcap, caller_ip):
    """The SDP of the caller's first INVITE and of the 200 that answered it, from a capture."""
    offer = answer = ""
    # Read as UDP, not through tshark's `sip`: it picks a dissector by port first, and SIPx's
    # ephemeral SIP port is sometimes one Wireshark gives another protocol (47808 is BACnet).
    for src, payload in tshark_fields(pcap, f"udp && ip.addr=={caller_ip}", ["ip.src", "udp.payload"]):
        text = bytes.fromhex(payload.replace(":", "")).decode(errors="replace")
        head, _, body = text.partition("\r\n\r\n")
        if "m=audio" not in body or not any(line.lower().startswith("cseq:") and "INVITE" in line
                                            for line in head.split("\r\n")):
            continue
        if src == caller_ip and head.startswith("INVITE ") and not offer:
            offer = body
        elif src != caller_ip and head.startswith("SIP/2.0 200") and not answer:
            answer = body
    return offer, answer


# ---------------------------------------------------------------------------------------------
# Is the media encrypted?
# ---------------------------------------------------------------------------------------------

def byte_entropy(data):
    """Shannon entropy in bits per byte: random (encrypted) bytes ~8.0, G.711 speech ~7.0,
    a G.711 tone ~2.4."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


@dataclasses.dataclass
class MediaStream:
    key: str               # "src:port->dst:port"
    packets: int
    payload_types: dict
    payload_size: int      # most common RTP payload size (SRTP: + the auth tag)
    entropy: float
    tshark_protocol: dict  # what tshark called it ("RTP" or "SRTP": SRTP only when it saw the SDP)

    @property
    def cleartext(self):
        # Encrypted payloads look random. The header stays readable in SRTP, so tshark's
        # heuristic still finds "RTP" with a sequence: that alone is no proof of cleartext, but
        # a G.711 frame with a readable byte distribution is.
        return self.entropy < 7.5 or (self.tshark_protocol.get("RTP") and self.payload_size in (160, 80, 240)
                                      and not self.tshark_protocol.get("SRTP") and self.entropy < 7.9)


def media_streams(pcap, display_filter="udp", min_packets=10):
    """The RTP-looking UDP streams of a capture (tshark's heuristic), SIP excluded."""
    rows = tshark_fields(pcap, f"({display_filter}) && rtp && !sip",  # SRTP too: its header is RTP
                         ["ip.src", "udp.srcport", "ip.dst", "udp.dstport", "_ws.col.Protocol", "rtp.p_type",
                          "rtp.payload", "srtp.enc_payload", "udp.length"])
    acc = {}
    for src, sport, dst, dport, proto, ptype, payload, enc, ulen in rows:
        s = acc.setdefault(f"{src}:{sport}->{dst}:{dport}",
                           {"n": 0, "pts": Counter(), "sizes": Counter(), "proto": Counter(), "bytes": bytearray()})
        s["n"] += 1
        s["pts"][ptype] += 1
        s["proto"][proto] += 1
        s["sizes"][int(ulen) - 8 - 12 if ulen else 0] += 1
        if len(s["bytes"]) < 200_000:
            s["bytes"] += bytes.fromhex((payload or enc).replace(":", ""))
    return [MediaStream(k, s["n"], dict(s["pts"]), s["sizes"].most_common(1)[0][0],
                        round(byte_entropy(bytes(s["bytes"])), 2), dict(s["proto"]))
            for k, s in acc.items() if s["n"] >= min_packets]


def assert_no_cleartext_rtp(pcap, display_filter="udp", min_streams=1):
    """Fails when a media stream of the capture is readable, or when there is no media at all
    (an empty capture must not pass as "encrypted"). Returns the streams."""
    streams = media_streams(pcap, display_filter)
    assert len(streams) >= min_streams, f"expected >= {min_streams} media streams, found {streams}"
    readable = [s for s in streams if s.cleartext]
    assert not readable, f"cleartext RTP: {readable}"
    return streams


# ---------------------------------------------------------------------------------------------
# Impairment relay
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Impairment:
    loss: float = 0.0            # probability of dropping a packet
    jitter_ms: float = 0.0       # extra delay: uniform in [0, jitter_ms], or normal around jitter_ms/2
    distribution: str = "uniform"  # "uniform" | "normal" (sd jitter_ms/4, clipped at 0)
    delay_ms: float = 0.0        # fixed delay added to every packet
    reorder: bool = True         # False: a packet never overtakes the one before it

    def draw(self, rng):
        """(dropped, delay in seconds). Both draws happen for every packet, so the pattern of
        one direction depends only on the seed and the packet's index in it."""
        dropped = rng.random() < self.loss
        if self.distribution == "normal":
            extra = max(0.0, rng.gauss(self.jitter_ms / 2, self.jitter_ms / 4))
        else:
            extra = rng.uniform(0.0, self.jitter_ms)
        return dropped, (self.delay_ms + extra) / 1000.0


@dataclasses.dataclass
class DirectionStats:
    received: int = 0
    sent: int = 0
    dropped: int = 0
    unroutable: int = 0  # from the server before the peer's address was known


class ImpairmentRelay:
    """A UDP relay: the peer sends to `peer_side` (put that address in what the peer is told,
    e.g. the server's SDP answer), the relay forwards from `server_side` to `upstream`, and the
    server's packets go back to the peer's address, learnt from its first packet (latching).
    Each direction has its own impairment and its own seeded random generator.
    For RTCP, run a second relay on the next ports."""

    def __init__(self, ip, port, upstream, up=Impairment(), down=Impairment(), seed=1):
        self.upstream = tuple(upstream)
        self._peer_sock = self._bind(ip, port)
        self._server_sock = self._bind(ip, port + 2 if port else 0)
        self.peer_side = self._peer_sock.getsockname()
        self.server_side = self._server_sock.getsockname()
        self.peer = None
        self.stats = {"up": DirectionStats(), "down": DirectionStats()}
        self._impairment = {"up": up, "down": down}
        self._rng = {d: random.Random(f"{seed}/{d}") for d in ("up", "down")}
        self._last_release = {"up": 0.0, "down": 0.0}
        self._queue = []  # (release time, order, direction, datagram)
        self._order = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _bind(ip, port):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.setblocking(False)
        return s

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._peer_sock.close()
        self._server_sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self, direction, data, now):
        stats = self.stats[direction]
        stats.received += 1
        dropped, extra = self._impairment[direction].draw(self._rng[direction])
        if dropped:
            stats.dropped += 1
            return
        release = now + extra
        if not self._impairment[direction].reorder:
            release = max(release, self._last_release[direction])
        self._last_release[direction] = release
        self._order += 1
        heapq.heappush(self._queue, (release, self._order, direction, data))

    def _release_due(self, now):
        while self._queue and self._queue[0][0] <= now:
            _, _, direction, data = heapq.heappop(self._queue)
            if direction == "up":
                self._server_sock.sendto(data, self.upstream)
            else:
                self._peer_sock.sendto(data, self.peer)
            self.stats[direction].sent += 1

    def _run(self):
        with selectors.DefaultSelector() as sel:
            sel.register(self._peer_sock, selectors.EVENT_READ, "up")
            sel.register(self._server_sock, selectors.EVENT_READ, "down")
            while not self._stop.is_set():
                wait = 0.05 if not self._queue else max(0.0, min(0.05, self._queue[0][0] - time.monotonic()))
                for key, _ in sel.select(wait):
                    while True:
                        try:
                            data, addr = key.fileobj.recvfrom(65535)
                        except BlockingIOError:
                            break
                        if key.data == "up":
                            self.peer = addr
                        elif self.peer is None:
                            self.stats["down"].unroutable += 1
                            continue
                        self._accept(key.data, data, time.monotonic())
                self._release_due(time.monotonic())


# ---------------------------------------------------------------------------------------------
# baresip
# ---------------------------------------------------------------------------------------------

BARESIP_CONFIG = """\
poll_method		epoll
sip_listen		{ip}:{sip_port}
call_local_timeout	120
call_max_calls		4
# The microphone is a WAV file (played once, then silence); the speaker is ALSA's null device.
# sndfile records what was decoded (-dec.wav) and what was sent (-enc.wav), per call.
audio_source		aufile,{source}
audio_player		alsa,null
audio_alert		alsa,null
audio_level		no
audio_buffer		20-160
rtp_ports		{rtp_first}-{rtp_last}
rtcp_mux		no
jitter_buffer_delay	5-10
rtp_stats		yes
# An address: "lo" is refused (libre skips loopback interfaces) and nothing else may be offered.
net_interface		{ip}
module_path		/usr/lib/baresip/modules
{codec_modules}
module			sndfile.so
module			alsa.so
module			aufile.so
module			srtp.so
module_tmp		uuid.so
module_tmp		account.so
module_app		contact.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		{ip}:{ctrl_port}
snd_path		{record_dir}
statmode_default	off
"""

# Codec name in `audio_codecs` (before any "/rate/channels") -> the module that provides it (all
# shipped by baresip-core).
BARESIP_CODEC_MODULES = {"pcmu": "g711", "pcma": "g711", "g722": "g722", "opus": "opus", "gsm": "gsm",
                         "l16": "l16"}


def _netstring(data):
    return str(len(data)).encode() + b":" + data + b","


class Baresip:
    """One baresip-core UA on its own loopback address, with a generated config, driven over
    ctrl_tcp (netstring JSON). `events` holds every event it reported since `start()`.

    Its account is `sip:{user}@{ip}:{sip_port}` with no registrar. baresip also listens on SIP/TLS
    at sip_port + 1, which is why each instance gets its own address."""

    def __init__(self, workdir, ip, source_wav, user="peer", sip_port=5070, ctrl_port=4470,
                 rtp_ports=(20000, 20099), codecs=("pcmu",), mediaenc=None, auto_answer=True, account_params="",
                 account=None, extra_config="", display_name=None):
        """`account` replaces the generated account line (e.g. one that registers somewhere);
        `extra_config` is appended to the config (e.g. `sip_cafile`); `display_name` goes into
        the From of its calls."""
        self.dir = pathlib.Path(workdir)
        self.ip, self.sip_port, self.ctrl_port = ip, sip_port, ctrl_port
        self.uri = f"sip:{user}@{ip}:{sip_port}"
        self.record_dir = self.dir / "recordings"
        params = [f"audio_codecs={','.join(codecs)}", "regint=0"]
        if auto_answer:
            params.append("answermode=auto")
        if mediaenc:
            params.append(f"mediaenc={mediaenc}")
        name = f'"{display_name}" ' if display_name else ""
        self.account = account or f"{name}<{self.uri}>;" + ";".join(params) + account_params
        modules = sorted({BARESIP_CODEC_MODULES[c.split("/")[0]] for c in codecs})
        self.config = BARESIP_CONFIG.format(
            ip=ip, sip_port=sip_port, source=source_wav, rtp_first=rtp_ports[0], rtp_last=rtp_ports[1],
            codec_modules="\n".join(f"module\t\t\t{m}.so" for m in modules), ctrl_port=ctrl_port,
            record_dir=self.record_dir) + extra_config
        self.proc = None
        self.events = []
        self._responses = {}
        self._token = 0
        self._cond = threading.Condition()
        self._sock = None

    def start(self, timeout=10):
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "config").write_text(self.config)
        (self.dir / "accounts").write_text(self.account + "\n")
        (self.dir / "contacts").write_text("")
        self.log = open(self.dir / "baresip.log", "w")
        self.proc = subprocess.Popen(["baresip", "-f", str(self.dir)], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while self._sock is None:
            try:
                self._sock = socket.create_connection((self.ip, self.ctrl_port), timeout=1)
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"baresip's ctrl_tcp did not open:\n{self.log_text()}") from None
                time.sleep(0.05)
        self._sock.settimeout(None)  # the reader blocks until baresip says something
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self._sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            # netstring: "<size>:<json>,"
            while (colon := buf.find(b":")) > 0 and len(buf) >= colon + int(buf[:colon]) + 2:
                size = int(buf[:colon])
                msg = json.loads(buf[colon + 1:colon + 1 + size])
                buf = buf[colon + 2 + size:]
                with self._cond:
                    if msg.get("response"):
                        self._responses[msg.get("token")] = msg
                    elif msg.get("event"):
                        self.events.append(msg)
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, found, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while (result := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"baresip {self.uri}: timed out waiting for {what}; events "
                                         f"{[e.get('type') for e in self.events]}\n{self.log_text()[-2000:]}")
                self._cond.wait(left)
            return result

    def command(self, cmd, params="", timeout=5):
        """Runs a menu command (`dial`, `hangup`, `sndcode`, `hold`, `resume`, ...) and returns
        its response: {"ok": bool, "data": text}."""
        with self._cond:
            self._token += 1
            token = str(self._token)
        self._sock.sendall(_netstring(json.dumps({"command": cmd, "params": params, "token": token}).encode()))
        return self._wait(lambda: self._responses.pop(token, None), timeout, f"the answer to {cmd}")

    def wait_event(self, kind, timeout=10, since=0):
        """The first event of `kind` (e.g. CALL_ESTABLISHED) at index >= `since` in `events`."""
        return self._wait(lambda: next((e for e in self.events[since:] if e.get("type") == kind), None),
                          timeout, kind)

    def dial(self, uri, timeout=10):
        """Calls `uri` and returns once the call is established."""
        mark = len(self.events)
        self.command("dial", uri)
        return self.wait_event("CALL_ESTABLISHED", timeout, since=mark)

    def hangup(self, timeout=10):
        mark = len(self.events)
        self.command("hangup")
        return self.wait_event("CALL_CLOSED", timeout, since=mark)

    def send_dtmf(self, digits, gap_s=0.25):
        """RFC 4733 events, one digit at a time (baresip sends each for ~100 ms)."""
        for d in digits:
            self.command("sndcode", d)
            time.sleep(gap_s)

    def recording(self, kind="dec"):
        """The newest sndfile recording: "dec" is what baresip heard, "enc" what it sent. sndfile
        closes the files when the call ends, so read it after CALL_CLOSED."""
        files = sorted(self.record_dir.glob(f"*-{kind}.wav"), key=lambda p: p.stat().st_mtime)
        assert files, f"no {kind} recording in {self.record_dir}: {list(self.record_dir.iterdir())}"
        return files[-1]

    def log_text(self):
        if not self.log.closed:
            self.log.flush()
        return (self.dir / "baresip.log").read_text(errors="replace")

    def stop(self, timeout=5):
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(OSError, AssertionError):
                self.command("quit", timeout=2)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        if self._sock:
            self._sock.close()
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------------------------
# rtpengine
# ---------------------------------------------------------------------------------------------

class Rtpengine:
    """rtpengine (Debian's rtpengine-daemon, userspace only: no kernel table) on `ip`, its ng
    control protocol on `ng_port`, media ports from `ports`. Its transcoders include bcg729's
    G.729. Ready once it answers an ng ping."""

    def __init__(self, workdir, ip, ng_port=2223, ports=(33000, 33099)):
        self.dir = pathlib.Path(workdir)
        self.ip, self.ng = ip, (ip, ng_port)
        self.ports = ports
        self.proc = None

    def start(self, timeout=10):
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = open(self.dir / "rtpengine.log", "w")
        self.proc = subprocess.Popen(
            ["rtpengine", "--config-file=none", "--foreground", "--log-stderr", "--log-level=6", "--table=-1",
             f"--interface={self.ip}", f"--listen-ng={self.ng[0]}:{self.ng[1]}", f"--port-min={self.ports[0]}",
             f"--port-max={self.ports[1]}", "--num-threads=1", "--no-redis-required", "--delete-delay=0"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        # ng: "<cookie> <bencoded dict>"; a ping is answered {"result": "pong"}.
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            while True:
                s.sendto(b"ready d7:command4:pinge", self.ng)
                try:
                    if s.recv(4096) == b"ready d6:result4:ponge":
                        return self
                except OSError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"rtpengine did not answer a ping:\n{self.log_text()[-2000:]}")

    def log_text(self):
        self.log.flush()
        return (self.dir / "rtpengine.log").read_text(errors="replace")

    def stop(self, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------------------------------------
# sipp
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SippRun:
    returncode: int
    stdout: str
    stderr: str
    logs: str      # the scenario's <log> lines (e.g. "FINAL 488")
    errors: str

    def final_status(self):
        """The status a scenario logged as "FINAL nnn" (the outcome-recording UACs)."""
        found = re.findall(r"FINAL (\d{3})", self.logs)
        return int(found[-1]) if found else None


def run_sipp_call(scenario, workdir, local_ip, target, *args, audio=None, timeout=40):
    """Runs sipp once with peers/sipp/`scenario` from `local_ip` (SIP on 5060, media on 6000).
    `audio` maps the fixed file names a scenario streams (`uac_audio.ulaw`, ...) to real files:
    sipp reads rtp_stream files relative to its working directory, and only literal names.
    sipp runs as root: pcap and DTMF play need a raw socket."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name, path in (audio or {}).items():
        link = workdir / name
        link.unlink(missing_ok=True)
        link.symlink_to(path)
    cmd = ["sipp", f"{target[0]}:{target[1]}", "-sf", str(PEERS / "sipp" / scenario),
           "-i", local_ip, "-p", "5060", "-mi", local_ip, "-mp", "6000", "-m", "1", "-nostdin",
           "-trace_err", "-trace_logs", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    stem = pathlib.Path(scenario).stem

    def read(suffix):
        return "".join(p.read_text(errors="replace") for p in workdir.glob(f"{stem}_*_{suffix}.log"))

    return SippRun(out.returncode, out.stdout, out.stderr, read("logs"), read("errors"))


@contextlib.contextmanager
def sipp_echo(workdir, ip, answer_to=None, codec="PCMU", pt=0, timeout=60):
    """sipp answering one call with peers/sipp/uas_echo.xml and echoing every RTP packet back to
    its sender (`-rtp_echo` on ip:6000). The SDP answer names `answer_to` (ip, port): point it at
    an ImpairmentRelay to put one in the path. Yields the Popen; returns after sipp exited."""
    answer_to = answer_to or (ip, 6000)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["sipp", "-sf", str(PEERS / "sipp" / "uas_echo.xml"), "-i", ip, "-p", "5060", "-mi", ip,
                             "-mp", "6000", "-rtp_echo", "-m", "1", "-nostdin", "-trace_err",
                             "-key", "sdp_ip", answer_to[0], "-key", "sdp_port", str(answer_to[1]),
                             "-key", "codec", codec, "-key", "pt", str(pt)],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _await_udp_listener(ip, 5060, proc)
        yield proc
        proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def _await_udp_listener(ip, port, proc, timeout=10):
    """Returns once something is bound to udp ip:port (read from /proc/net/udp, so no packet is
    sent that the process would take for a call)."""
    want = f"{socket.inet_aton(ip)[::-1].hex().upper()}:{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sipp exited early ({proc.returncode}): {proc.stdout.read()}")
        with open("/proc/net/udp") as f:
            if any(line.split()[1] == want for line in f.readlines()[1:]):
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on udp {ip}:{port}")
