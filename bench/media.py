#!/usr/bin/env python3
"""Media engine benchmark: SIPx transcoding PCMU <-> Opus, against the bare codec work (the floor)
and against rtpengine doing the same transcoding, in the same run, on this machine. Prints the
figures of issue 4 with their targets beside them. Not a test: it prints and judges, it does not
fail the build.

  .venv/bin/python bench/media.py [--calls 250] [--ladder 100,150,200,250,300,350]
                                  [--seconds 15] [--windows 3] [--warmup 4] [--rtpengine-calls 25]

Needs `cargo build --release -p sipx` (this script builds the two examples it uses), the test
material (espeak-ng and sox, installed by scripts/test) and, for the comparison, Debian's
rtpengine: `apt-get install --no-install-recommends rtpengine-daemon` (userspace only; the
kernel module is not used).

What runs:
- floor: `codec_floor` on the calls' own audio: PCMU decode + Opus encode fed 8 kHz + Opus decode
  to 8 kHz + PCMU encode, straight on the codecs, µs per 20 ms. This is the work one
  PCMU <-> Opus call cannot avoid.
- the machine's speed drifts from one second to the next (the same floor run gives 45 to 70 µs
  within a minute). A figure is therefore the lowest of several samples (anything else running
  only ever slows what is measured), and the ratio compares like with like: the judged step
  (`--calls`) runs in `--windows` rounds, each a floor run as long as a window and then a
  window of SIPx with the calls up, so the floor and SIPx are sampled as often, as long and
  at the same times. Short floor runs (3 at the start, 1 before each step) are printed as
  context and judge the other steps of the ladder (a stricter figure: the lowest of many short
  runs catches the fastest moments, which a long window averages over). Each other step is one
  setup, its measured time cut into `--windows` windows. Late frames, latency and packets back
  count over the whole measured time of a step.
- the floor runs the codec work back to back. SIPx cannot: it does each call's work once per
  20 ms and sleeps in between, and on this machine code that sleeps runs slower when it wakes
  (its caches have gone cold). For context, each round of the judged step also runs the same calls' codec work
  alone at their pace, shaped as SIPx's media threads run it (`codec_floor --paced N
  --threads <CPUs>`): SIPx against it is what SIPx adds to the codec work it has to do.
- calls: N SIP calls to SIPx's Opus echo test (`media.opus_echo_extension`): a PCMU leg whose
  received audio goes through the jitter buffer and decoder, is encoded to Opus and decoded again
  (what a phone in a room with one active speaker costs: its voice encoded for the room, the
  speaker decoded for it), then re-encoded to PCMU and sent back. The calls are set up over SIP by
  this script; RTP comes from `rtp_load` (one thread, one socket, measured and reported).
  CPU is SIPx's whole process (user + system) over the window, less its idle rate, per call per
  20 ms. Late ticks/frames and the added latency come from SIPx's /metrics (defined in
  crates/sipx-server/src/media/timing.rs); the generator checks from outside that every stream
  comes back, audible, at a steady 20 ms.
- rtpengine: the same PCMU streams into rtpengine (ng protocol offer/answer with
  codec transcode opus), its Opus side reflected back by the generator, so it decodes PCMU,
  encodes Opus, decodes Opus and encodes PCMU per call, like SIPx; CPU measured the same way.
- memory: SIPx's RSS with N calls up and their media flowing, less its RSS before the first
  call, per call (so the allocator's own growth is charged to the calls).
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]
E2E = ROOT / "tests" / "e2e"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
SIPX = TARGET / "sipx"
FLOOR = TARGET / "examples" / "codec_floor"
LOAD = TARGET / "examples" / "rtp_load"
TICK = 0.02
CLK_TCK = os.sysconf("SC_CLK_TCK")

SIPX_IP = "127.0.0.160"  # SIP and RTP of SIPx
UAC_IP = "127.0.0.161"  # this script's SIP, and the generator's RTP
ENGINE_IP = "127.0.0.170"  # rtpengine
REFLECT_IP = "127.0.0.162"  # the far side of rtpengine's calls

TARGETS = {"ratio": 1.3, "calls": 250, "p99_ms": 2.0, "kib_per_call": 256, "vs_rtpengine": 5.0}
RTPENGINE_REFERENCE = (700, 910)  # µs per transcoded call, ../shared/DEPENDENCIES.md


# ------------------------------------------------------------------------------------------------
# Processes: CPU, memory, threads
# ------------------------------------------------------------------------------------------------

def cpu_seconds(pid, task=None):
    """User + system CPU seconds of a process (or one of its threads)."""
    path = f"/proc/{pid}/task/{task}/stat" if task else f"/proc/{pid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def threads(pid, prefix):
    """Thread ids of a process whose name starts with prefix."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/comm") as f:
            if f.read().startswith(prefix):
                out.append(task)
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def cpu_jiffies():
    """(steal, total) jiffies of all CPUs: time the hypervisor ran something else while this
    machine's CPUs wanted to run (/proc/stat, `steal`), and all time."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return fields[7], sum(fields)


def steal_share(a, b):
    return (b[0] - a[0]) / max(1, b[1] - a[1])


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


HALT_POLL = pathlib.Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")


def idle_policy():
    """How this machine's CPUs idle, printed with the figures: on a VM guest whose idle driver
    is `haltpoll` with polling off, an idle vCPU halts at once and the host may run something
    else on the core, so code that sleeps between frames wakes to cold caches and the same
    codec work costs more paced than back to back (README, Benchmarks, has the figures with
    and without polling). Figures from machines that idle differently do not compare."""
    def read(path):
        try:
            return pathlib.Path(path).read_text().strip()
        except OSError:
            return None
    driver = read("/sys/devices/system/cpu/cpuidle/current_driver") or "none"
    poll = read(HALT_POLL)
    return f"cpuidle driver {driver}" + (f", guest halt polling {int(poll) // 1000} µs" if poll else "")


class HaltPolling:
    """`--guest-halt-poll-us`: sets the guest's halt polling for the run and puts the old value
    back after (a diagnosis of the machine, not a setting of SIPx; needs root)."""

    def __init__(self, micros):
        self.micros, self.old = micros, None

    def __enter__(self):
        if self.micros is not None:
            self.old = HALT_POLL.read_text().strip()
            HALT_POLL.write_text(str(self.micros * 1000))
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            HALT_POLL.write_text(self.old)


# ------------------------------------------------------------------------------------------------
# SIP: a minimal UAC for calls to the echo test
# ------------------------------------------------------------------------------------------------

class Call:
    def __init__(self, call_id, tag):
        self.call_id, self.tag = call_id, tag
        self.to = self.contact = self.rtp = None


def header(msg, name):
    m = re.search(rf"^{name}:\s*(.*?)\r?$", msg, re.MULTILINE | re.IGNORECASE)
    return m.group(1) if m else ""


class Uac:
    """INVITEs, ACKs and BYEs over one UDP socket; many transactions in flight at once."""

    def __init__(self, server):
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((UAC_IP, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.port = self.sock.getsockname()[1]

    def _request(self, method, uri, call, cseq, to, body=b"", ctype=None):
        lines = [f"{method} {uri} SIP/2.0",
                 f"Via: SIP/2.0/UDP {UAC_IP}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]}",
                 "Max-Forwards: 70", f"From: <sip:bench@{UAC_IP}>;tag={call.tag}", f"To: {to}",
                 f"Call-ID: {call.call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:bench@{UAC_IP}:{self.port}>"]
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(body)}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode() + body, self.server)

    def _responses(self, pending, method, timeout):
        """Final responses to `method` for the calls in `pending` (call-id -> resend function)."""
        finals = {}
        deadline = time.monotonic() + timeout
        resend_at = time.monotonic() + 1.0
        while len(finals) < len(pending) and time.monotonic() < deadline:
            self.sock.settimeout(0.2)
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                if time.monotonic() > resend_at:
                    for cid, resend in pending.items():
                        if cid not in finals:
                            resend()
                    resend_at = time.monotonic() + 1.0
                continue
            msg = data.decode(errors="replace")
            m = re.match(r"SIP/2.0 (\d{3})", msg)
            cid = header(msg, "Call-ID")
            if m and int(m.group(1)) >= 200 and cid in pending and header(msg, "CSeq").endswith(method):
                finals[cid] = (int(m.group(1)), msg)
        return finals

    def invite(self, user, count, rtp_port, batch=25):
        """Sets up `count` calls whose RTP goes to UAC_IP:rtp_port; returns the answered ones."""
        sdp = (f"v=0\r\no=bench 1 1 IN IP4 {UAC_IP}\r\ns=-\r\nc=IN IP4 {UAC_IP}\r\nt=0 0\r\n"
               f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
               "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n").encode()
        uri = f"sip:{user}@{self.server[0]}:{self.server[1]}"
        calls = []
        for start in range(0, count, batch):
            group = {}
            for _ in range(min(batch, count - start)):
                call = Call(uuid.uuid4().hex, uuid.uuid4().hex[:8])
                send = (lambda c=call: self._request("INVITE", uri, c, 1, f"<{uri}>", sdp, "application/sdp"))
                send()
                group[call.call_id] = (call, send)
            finals = self._responses({cid: s for cid, (_, s) in group.items()}, "INVITE", 10)
            for cid, (status, msg) in finals.items():
                call = group[cid][0]
                call.to = header(msg, "To")
                contact = re.search(r"<([^>]+)>", header(msg, "Contact"))
                call.contact = contact.group(1) if contact else uri
                self._request("ACK", call.contact, call, 1, call.to)
                if status != 200:
                    raise SystemExit(f"INVITE answered {status}: {msg.splitlines()[0]}")
                body = msg.split("\r\n\r\n", 1)[1]
                ip = re.search(r"^c=IN IP4 (\S+)", body, re.MULTILINE).group(1)
                port = int(re.search(r"^m=audio (\d+)", body, re.MULTILINE).group(1))
                call.rtp = (ip, port)
                calls.append(call)
        if len(calls) != count:
            raise SystemExit(f"only {len(calls)} of {count} calls answered")
        return calls

    def bye(self, calls):
        pending = {}
        for call in calls:
            send = (lambda c=call: self._request("BYE", c.contact, c, 2, c.to))
            send()
            pending[call.call_id] = send
        return self._responses(pending, "BYE", 10)


# ------------------------------------------------------------------------------------------------
# rtpengine's ng control protocol (bencode over UDP)
# ------------------------------------------------------------------------------------------------

def bencode(value):
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"
    raise TypeError(value)


def bdecode(data, i=0):
    """(value, next index) of the bencoded value at data[i]."""
    c = data[i:i + 1]
    if c == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1:end]), end + 1
    if c in (b"l", b"d"):
        i += 1
        items = []
        while data[i:i + 1] != b"e":
            v, i = bdecode(data, i)
            items.append(v)
        if c == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    colon = data.index(b":", i)
    n = int(data[i:colon])
    return data[colon + 1:colon + 1 + n], colon + 1 + n


class Ng:
    def __init__(self, addr):
        self.addr = addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)

    def __call__(self, **command):
        cookie = uuid.uuid4().hex[:12].encode()
        self.sock.sendto(cookie + b" " + bencode(command), self.addr)
        while True:
            data, _ = self.sock.recvfrom(65536)
            if data.startswith(cookie + b" "):
                reply, _ = bdecode(data, len(cookie) + 1)
                if reply.get("result") not in (b"ok", b"pong"):
                    raise RuntimeError(f"rtpengine {command['command']}: {reply}")
                return reply


def sdp_port(sdp):
    text = sdp.decode() if isinstance(sdp, bytes) else sdp
    ip = re.search(r"^c=IN IP4 (\S+)", text, re.MULTILINE).group(1)
    return ip, int(re.search(r"^m=audio (\d+)", text, re.MULTILINE).group(1))


# ------------------------------------------------------------------------------------------------
# Measurements
# ------------------------------------------------------------------------------------------------

def floor_us(ulaw, runs=3, frames=5000):
    """codec_floor's one-call figure on the calls' audio, once per run (µs, in run order)."""
    values = []
    for _ in range(runs):
        out = subprocess.run([str(FLOOR), "--input", str(ulaw), "--frames", str(frames)], capture_output=True,
                             text=True, check=True).stdout
        values.append(float(re.search(r"one PCMU <-> Opus call, both directions\s+([\d.]+)", out).group(1)))
    return values


def paced_floor_us(ulaw, calls, seconds):
    """codec_floor's figure for `calls` calls' codec work at their pace, shared by as many
    threads as SIPx's media threads (one per CPU), for `seconds`."""
    out = subprocess.run([str(FLOOR), "--input", str(ulaw), "--frames", "100", "--paced", str(calls), "--threads",
                          str(os.cpu_count()), "--seconds", str(seconds)], capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"calls at their pace, \d+ threads\s+([\d.]+)", out).group(1))


def floor_side_by_side_us(ulaw, calls):
    """codec_floor's per-call figure with `calls` codec pairs taking turns (cold caches)."""
    out = subprocess.run([str(FLOOR), "--input", str(ulaw), "--frames", str(100 * calls), "--calls", str(calls)],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"per call, \d+ calls side by side\s+([\d.]+)", out).group(1))


def scrape(url):
    """{'name{labels}': value} of a Prometheus text page."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def histogram_delta(before, after, name):
    """[(upper bound s, cumulative count)] of a histogram's increase between two scrapes."""
    out = []
    for key, value in after.items():
        m = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if m:
            bound = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
            out.append((bound, value - before.get(key, 0)))
    return sorted(out)


def quantile(buckets, q):
    """The upper bound of the bucket holding the q-quantile (conservative: never below it)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def on_time(step):
    """Whether a step kept up: no late tick or frame, no silent stream, and (a frame never sent
    being worse than a late one) at least 99.9 % of the packets sent came back."""
    g = step["gen"]
    return not (step["late_frames"] or step["late_ticks"] or g["silent_streams"]) \
        and g["received"] >= 0.999 * g["sent"]


def run_load(targets, payload, bind, seconds, warmup, work, reflect=None, measure=(), windows=1):
    """Runs rtp_load; at `warmup`, at the end of each of `windows` equal windows after it and
    at `warmup + seconds` calls each of `measure` (sampling functions); returns (generator
    report, samples at start, samples at end, the samples at every boundary in order)."""
    tfile = work / "targets.txt"
    tfile.write_text("".join(f"{ip}:{port}\n" for ip, port in targets))
    cmd = [str(LOAD), "--targets", str(tfile), "--payload", str(payload), "--bind", f"{bind[0]}:{bind[1]}",
           "--seconds", str(warmup + seconds + 0.5), "--warmup", str(warmup)]
    if reflect:
        cmd += ["--reflect", f"{reflect[0]}:{reflect[1]}"]
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    time.sleep(warmup)
    marks = [[f() for f in measure] + [cpu_seconds(gen.pid), time.monotonic()]]
    for k in range(1, windows + 1):
        time.sleep(max(0.0, t0 + warmup + seconds * k / windows - time.monotonic()))
        marks.append([f() for f in measure] + [cpu_seconds(gen.pid), time.monotonic()])
    first, last = marks[0], marks[-1]
    out, _ = gen.communicate(timeout=30)
    report = json.loads(out)
    report["cpu_share"] = (last[-2] - first[-2]) / (last[-1] - first[-1])
    return report, first, last, marks


def per_call_us(marks, n, idle):
    """CPU µs per call per 20 ms in each window between `marks` (process CPU s first, time
    last), less the idle rate. Figures use the lowest: the machine's speed varies from minute
    to minute, and anything else running only ever slows the process measured."""
    return [(b[0] - a[0] - idle * (b[-1] - a[-1])) / n / ((b[-1] - a[-1]) / TICK) * 1e6
            for a, b in zip(marks, marks[1:])]


def free_udp_port(ip):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# SIPx
# ------------------------------------------------------------------------------------------------

def start_sipx(binary, work, media_threads=0):
    http = free_tcp_port()
    ours = dict(SIPX_SIP__UDP=f'["{SIPX_IP}:5060"]', SIPX_SIP__TCP="[]", SIPX_LOG__FILTER="warn",
                SIPX_SIP__TRUSTED_PROXIES='["127.0.0.0/8"]', SIPX_SIP__RATE_LIMIT_PER_SEC="0",
                SIPX_MEDIA__IP=SIPX_IP, SIPX_MEDIA__RTP_PORT_MIN="30000", SIPX_MEDIA__RTP_PORT_MAX="33999",
                SIPX_MEDIA__THREADS=str(media_threads))
    # Only these settings: a SIPX_ variable left in the caller's environment would change the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIPX_")} | ours
    with open(work / "sipx.log", "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([str(binary), "--data-dir", str(work / "data"), "serve", "--listen",
                                 f"127.0.0.1:{http}"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{http}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/readyz", timeout=1).read()
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"sipx exited: {(work / 'sipx.log').read_text()[-2000:]}")
            time.sleep(0.1)
    raise SystemExit("sipx did not become ready")


def sipx_step(proc, base, n, payload, args, work, rss_idle):
    """N calls to the Opus echo: set up, measured, hung up. Returns a dict of figures."""
    uac = Uac((SIPX_IP, 5060))
    rtp_port = free_udp_port(UAC_IP)
    calls = uac.invite("echo-opus", n, rtp_port)
    media = threads(proc.pid, "sipx-media")
    measure = [lambda: cpu_seconds(proc.pid), lambda: scrape(base + "/metrics"),
               lambda: [cpu_seconds(proc.pid, t) for t in media], cpu_jiffies]
    report, first, last, marks = run_load([c.rtp for c in calls], payload, (UAC_IP, rtp_port), args.seconds,
                                          args.warmup, work, measure=measure, windows=args.windows)
    rss = rss_kib(proc.pid)
    byes = uac.bye(calls)
    elapsed = last[-1] - first[-1]
    cpu = last[0] - first[0]
    m0, m1 = first[1], last[1]
    latency = histogram_delta(m0, m1, "sipx_media_added_latency_seconds")
    busy = histogram_delta(m0, m1, "sipx_media_tick_busy_seconds")
    delta = lambda name: m1.get(name, 0) - m0.get(name, 0)
    per_window = per_call_us(marks, n, args.idle_cpu)
    return {
        "calls": n, "elapsed": elapsed, "cpu": cpu,
        "us_per_call": min(per_window), "us_per_call_windows": per_window,
        "media_threads": [(b - a) / elapsed for a, b in zip(first[2], last[2])],
        "ticks": delta("sipx_media_ticks_total"), "late_ticks": delta("sipx_media_late_ticks_total"),
        "late_frames": delta("sipx_media_late_frames_total"),
        "frames": latency[-1][1] if latency else 0,
        "p50_ms": (quantile(latency, 0.5) or 0) * 1e3, "p99_ms": (quantile(latency, 0.99) or 0) * 1e3,
        "busy_p99_ms": (quantile(busy, 0.99) or 0) * 1e3, "latency": latency, "busy": busy,
        "rss_kib": rss, "kib_per_call": (rss - rss_idle) / n, "byes_ok": sum(1 for s, _ in byes.values() if s == 200),
        "steal": steal_share(first[3], last[3]), "gen": report,
    }


def judged_step(proc, base, n, payload, args, work, rss_idle, floor_frames):
    """The judged step: `--windows` rounds, each a floor run as long as a window, then the
    calls set up, warmed up, measured for one window and hung up. The machine's speed drifts
    from one second to the next (the same floor run from 45 to 70 µs): compared one long
    SIPx window against the fastest of many short floor runs, the ratio measured the drift as
    much as SIPx. Here both are sampled as often, as long and at the same times, and each
    figure is its lowest sample. Each round also runs the calls' codec work alone at their
    pace (`paced_floor_us`), for context. Returns (the step's figures over all rounds, the
    floor runs, the paced runs)."""
    one = argparse.Namespace(**{**vars(args), "seconds": args.seconds / args.windows, "windows": 1})
    floors, paced, rounds = [], [], []
    for _ in range(args.windows):
        floors += floor_us(payload, runs=1, frames=floor_frames)
        paced.append(paced_floor_us(payload, n, one.seconds))
        rounds.append(sipx_step(proc, base, n, payload, one, work, rss_idle))
    return combine_rounds(rounds), floors, paced


def combine_rounds(rounds):
    """One step's figures from rounds of it: CPU is the lowest round's, counts add up, latency
    comes from the merged histograms, memory and deviations are the worst round's."""
    merge = lambda key: [(bound, sum(dict(r[key]).get(bound, 0) for r in rounds))
                         for bound, _ in rounds[0][key]]
    total = lambda key: sum(r[key] for r in rounds)
    elapsed = total("elapsed")
    latency, busy = merge("latency"), merge("busy")
    gens = [r["gen"] for r in rounds]
    gen = {key: sum(g[key] for g in gens) for key in ("sent", "received", "audible", "silent_streams", "gaps")}
    gen["deviation_p99_ms"] = max(g["deviation_p99_ms"] for g in gens)
    gen["cpu_share"] = sum(g["cpu_share"] * r["elapsed"] for g, r in zip(gens, rounds)) / elapsed
    return {
        "calls": rounds[0]["calls"], "elapsed": elapsed, "cpu": total("cpu"),
        "us_per_call": min(r["us_per_call"] for r in rounds),
        "us_per_call_windows": [r["us_per_call"] for r in rounds],
        "media_threads": [sum(r["media_threads"][i] * r["elapsed"] for r in rounds) / elapsed
                          for i in range(min(len(r["media_threads"]) for r in rounds))],
        "ticks": total("ticks"), "late_ticks": total("late_ticks"), "late_frames": total("late_frames"),
        "frames": latency[-1][1] if latency else 0,
        "p50_ms": (quantile(latency, 0.5) or 0) * 1e3, "p99_ms": (quantile(latency, 0.99) or 0) * 1e3,
        "busy_p99_ms": (quantile(busy, 0.99) or 0) * 1e3, "latency": latency, "busy": busy,
        "rss_kib": max(r["rss_kib"] for r in rounds), "kib_per_call": max(r["kib_per_call"] for r in rounds),
        "byes_ok": total("byes_ok"), "gen": gen,
        "steal": sum(r["steal"] * r["elapsed"] for r in rounds) / elapsed,
    }


# ------------------------------------------------------------------------------------------------
# rtpengine
# ------------------------------------------------------------------------------------------------

def rtpengine_run(n, payload, args, work):
    """N PCMU <-> Opus calls through rtpengine (userspace). Returns figures, or the reason it
    could not run."""
    binary = shutil.which("rtpengine")
    if not binary:
        return None, "not installed (apt-get install --no-install-recommends rtpengine-daemon)"
    ng_port = free_udp_port(ENGINE_IP)
    with open(work / "rtpengine.log", "w") as log:  # the child keeps its own copy
        proc = subprocess.Popen([binary, "--config-file=none", "--foreground", "--log-stderr", "--log-level=4",
                                 f"--interface={ENGINE_IP}", f"--listen-ng={ENGINE_IP}:{ng_port}", "--table=-1",
                                 "--port-min=40000", "--port-max=44999", "--num-threads=2", "--no-redis-required",
                                 "--delete-delay=0"], stdout=log, stderr=log)
    try:
        ng = Ng((ENGINE_IP, ng_port))
        deadline = time.monotonic() + 10
        while True:
            try:
                ng(command="ping")
                break
            except (OSError, RuntimeError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    return None, f"did not start: {(work / 'rtpengine.log').read_text()[-1500:]}"
                time.sleep(0.2)
        time.sleep(2)
        idle0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(3)
        idle = (cpu_seconds(proc.pid) - idle0) / (time.monotonic() - t0)
        rss_idle = rss_kib(proc.pid)
        a_port, b_port = free_udp_port(UAC_IP), free_udp_port(REFLECT_IP)
        targets, ids = [], []
        for _ in range(n):
            cid = uuid.uuid4().hex
            offer = (f"v=0\r\no=a 1 1 IN IP4 {UAC_IP}\r\ns=-\r\nc=IN IP4 {UAC_IP}\r\nt=0 0\r\n"
                     f"m=audio {a_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n")
            ng(command="offer", **{"call-id": cid, "from-tag": "a"}, sdp=offer, codec={"transcode": ["opus"]})
            answer = (f"v=0\r\no=b 1 1 IN IP4 {REFLECT_IP}\r\ns=-\r\nc=IN IP4 {REFLECT_IP}\r\nt=0 0\r\n"
                      f"m=audio {b_port} RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n"
                      "a=fmtp:96 useinbandfec=1\r\na=ptime:20\r\na=sendrecv\r\n")
            reply = ng(command="answer", **{"call-id": cid, "from-tag": "a", "to-tag": "b"}, sdp=answer)
            targets.append(sdp_port(reply["sdp"]))
            ids.append(cid)
        report, first, last, marks = run_load(targets, payload, (UAC_IP, a_port), args.seconds, args.warmup, work,
                                              reflect=(REFLECT_IP, b_port), measure=[lambda: cpu_seconds(proc.pid)],
                                              windows=args.windows)
        rss = rss_kib(proc.pid)
        for cid in ids:
            ng(command="delete", **{"call-id": cid, "from-tag": "a"})
        elapsed = last[-1] - first[-1]
        cpu = last[0] - first[0]
        return {"calls": n, "us_per_call": min(per_call_us(marks, n, idle)),
                "cpu_share": cpu / elapsed, "kib_per_call": (rss - rss_idle) / n, "gen": report}, None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ------------------------------------------------------------------------------------------------

def verdict(ok):
    return "pass" if ok else "FAIL"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=TARGETS["calls"], help="the step whose figures are judged")
    ap.add_argument("--ladder", default="100,150,200,250,300,350",
                    help="call counts tried, in order, until one has late frames")
    ap.add_argument("--seconds", type=float, default=15, help="measured time per step")
    ap.add_argument("--windows", type=int, default=3,
                    help="CPU windows the measured time is cut into; SIPx's figure is the lowest")
    ap.add_argument("--warmup", type=float, default=4, help="seconds of media before the window")
    ap.add_argument("--rtpengine-calls", type=int, default=25, help="0 skips the comparison")
    ap.add_argument("--sipx", type=pathlib.Path, default=SIPX, help="the binary (default: the release build)")
    ap.add_argument("--media-threads", type=int, default=0, help="SIPx's media.threads (0: one per CPU)")
    ap.add_argument("--guest-halt-poll-us", type=int, default=None,
                    help="diagnosis on a VM guest with the haltpoll idle driver: poll this long before "
                         "halting an idle vCPU, for the run only (root); the machine, not SIPx, is changed")
    args = ap.parse_args()
    with HaltPolling(args.guest_halt_poll_us):
        return run(args)


def run(args):
    if not args.sipx.exists():
        raise SystemExit(f"build first: cargo build --release -p sipx (looked for {args.sipx})")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sipx-media", "--example", "codec_floor",
                    "--example", "rtp_load"], cwd=ROOT, check=True)
    sys.path.insert(0, str(E2E))
    import media
    payload = media.make_audio()["speech_8k.ulaw"]
    work = pathlib.Path(tempfile.mkdtemp(prefix="sipx-media-bench-"))
    print(f"load average before: {loadavg()}  ({os.cpu_count()} CPUs; {idle_policy()})", flush=True)
    if float(loadavg().split()[0]) > 0.5:
        print("  (something else is running: late ticks and CPU figures will suffer; `top` shows what)", flush=True)

    floors = floor_us(payload)
    print(f"floor, short runs: {min(floors):.1f} µs per call per 20 ms (runs: {', '.join(f'{v:.1f}' for v in floors)})",
          flush=True)
    cold = floor_side_by_side_us(payload, args.calls)
    print(f"floor with {args.calls} calls' codecs taking turns (no longer in the CPU caches): {cold:.1f} µs per call",
          flush=True)

    ladder = sorted({int(x) for x in args.ladder.split(",")} | {args.calls})
    proc, base = start_sipx(args.sipx, work, args.media_threads)
    steps, paired, paced = [], [], []
    try:
        time.sleep(1)
        idle0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(3)
        args.idle_cpu = (cpu_seconds(proc.pid) - idle0) / (time.monotonic() - t0)
        rss_idle = rss_kib(proc.pid)
        print(f"SIPx idle: {args.idle_cpu * 100:.2f} % CPU, RSS {rss_idle} KiB", flush=True)
        print(f"{'calls':>6} {'µs/call':>8} {'×floor':>7} {'CPU %':>6} {'threads %':>11} {'late t/f':>9} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'busy p99':>8} {'KiB/call':>8} {'back %':>7} {'dev p99':>7} "
              f"{'gen %':>6} {'steal %':>7}", flush=True)
        for n in ladder:
            # The floor once more before each step; the lowest seen so far is the codecs' cost.
            floors += floor_us(payload, runs=1)
            step_floor = min(floors)
            if n == args.calls:
                # Floor runs as long as a window: at the fastest speed seen, frames for a window.
                frames = int(args.seconds / args.windows / (min(floors) * 1e-6))
                s, paired, paced = judged_step(proc, base, n, payload, args, work, rss_idle, frames)
                step_floor = min(paired)
            else:
                s = sipx_step(proc, base, n, payload, args, work, rss_idle)
            steps.append(s)
            g = s["gen"]
            back = 100 * g["received"] / max(1, g["sent"])
            print(f"{n:>6} {s['us_per_call']:>8.1f} {s['us_per_call'] / step_floor:>7.2f} "
                  f"{100 * s['cpu'] / s['elapsed']:>6.1f} "
                  f"{'/'.join(f'{100 * t:.0f}' for t in s['media_threads']):>11} "
                  f"{int(s['late_ticks']):>4}/{int(s['late_frames']):<4} {s['p50_ms']:>7.2f} {s['p99_ms']:>7.2f} "
                  f"{s['busy_p99_ms']:>8.1f} {s['kib_per_call']:>8.1f} {back:>7.1f} "
                  f"{g['deviation_p99_ms']:>7.1f} {100 * g['cpu_share']:>6.1f} {100 * s['steal']:>7.1f}", flush=True)
            if not on_time(s) and n >= args.calls:
                break
        print(f"  (×floor: the {args.calls}-call step against its own floor runs, the others against the lowest "
              "short floor run so far, a stricter figure; threads: CPU of each media thread; late t/f: late "
              "ticks/frames in the window; p50/p99: added latency, bucket upper bounds; back: packets echoed/sent; dev p99: |inter-arrival − "
              "20 ms| at the generator; gen: the generator's CPU; steal: CPU time the hypervisor gave to others while "
              "this machine wanted it, which delays wake-ups by milliseconds and shows in p99)", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)

    if args.rtpengine_calls > 0:
        print(f"rtpengine, {args.rtpengine_calls} calls ...", flush=True)
        engine, why = rtpengine_run(args.rtpengine_calls, payload, args, work)
    else:
        engine, why = None, "skipped (--rtpengine-calls 0)"
    if engine:
        g = engine["gen"]
        print(f"  rtpengine: {engine['us_per_call']:.1f} µs/call, {100 * engine['cpu_share']:.1f} % CPU, "
              f"{engine['kib_per_call']:.1f} KiB/call, back {100 * g['received'] / max(1, g['sent']):.1f} %, "
              f"audible {100 * g['audible'] / max(1, g['received']):.1f} %, reflected {g['reflected']} "
              f"({g['reflected_transcoded']} not PCMU), "
              f"dev p99 {g['deviation_p99_ms']:.1f} ms", flush=True)
    else:
        print(f"  rtpengine could not run: {why}", flush=True)

    judged = next((s for s in steps if s["calls"] == args.calls), None)
    clean = [s["calls"] for s in steps if on_time(s)]
    most = max(clean) if clean else 0
    print()
    print(f"Figures (load average now {loadavg()}):")
    print(f"{'figure':<52} {'measured':>12} {'target':>10}  ")
    if judged:
        floor = min(paired)
        ratio = judged["us_per_call"] / floor
        print(f"{'floor: bare codec work per call per 20 ms (lowest)':<52} {floor:>9.1f} µs {'':>10}")
        print(f"{'  every floor run, each before a window (µs)':<52} {' '.join(f'{v:.0f}' for v in paired)}")
        print(f"{'  the same work at its pace, as SIPx runs it':<52} {min(paced):>9.1f} µs   SIPx / it: "
              f"{judged['us_per_call'] / min(paced):.2f}")
        print(f"{'  every such run, each before a window (µs)':<52} {' '.join(f'{v:.0f}' for v in paced)}")
        print(f"{'  lowest short floor run (context)':<52} {min(floors):>9.1f} µs   SIPx / it: "
              f"{judged['us_per_call'] / min(floors):.2f}")
        print(f"{'  every short floor run (µs)':<52} {' '.join(f'{v:.0f}' for v in floors)}")
        print(f"{f'  the same, {args.calls} calls side by side (context)':<52} {cold:>9.1f} µs {'':>10}")
        print(f"{f'SIPx per call per 20 ms, {args.calls} calls (lowest window)':<52} {judged['us_per_call']:>9.1f} µs {'':>10}")
        print(f"{'  every window of that step, each after a floor run':<52} {' '.join(f'{v:.0f}' for v in judged['us_per_call_windows'])}")
        print(f"{'SIPx / floor':<52} {ratio:>12.2f} {'≤ 1.3':>10}  {verdict(ratio <= TARGETS['ratio'])}")
        print(f"{'  SIPx / the side-by-side floor (context)':<52} {judged['us_per_call'] / cold:>12.2f}")
        print(f"{'concurrent calls, 0 late ticks/frames, ≥99.9 % back':<52} {most:>12} {'≥ 250':>10}  "
              f"{verdict(most >= TARGETS['calls'])}")
        print(f"{f'added latency p50 / p99, {args.calls} calls (ms)':<52} "
              f"{judged['p50_ms']:>5.2f} /{judged['p99_ms']:>5.2f} {'p99 ≤ 2':>10}  "
              f"{verdict(judged['p99_ms'] <= TARGETS['p99_ms'])}")
    if judged:
        kib = judged["kib_per_call"]
        label = f"memory per call (RSS delta, {args.calls} calls)"
        print(f"{label:<52} {kib:>8.1f} KiB {'≤ 256':>10}  {verdict(kib <= TARGETS['kib_per_call'])}")
        if engine:
            times = engine["us_per_call"] / judged["us_per_call"]
            print(f"{'rtpengine per call per 20 ms (measured here)':<52} {engine['us_per_call']:>9.1f} µs")
            print(f"{'rtpengine / SIPx':<52} {times:>11.1f}× {'≥ 5×':>10}  {verdict(times >= TARGETS['vs_rtpengine'])}")
        else:
            lo, hi = RTPENGINE_REFERENCE
            times = lo / judged["us_per_call"]
            print(f"{'rtpengine per call (REFERENCE, DEPENDENCIES.md)':<52} {lo:>5}-{hi} µs")
            print(f"{'rtpengine (reference, low end) / SIPx':<52} {times:>11.1f}× {'≥ 5×':>10}  "
                  f"{verdict(times >= TARGETS['vs_rtpengine'])}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
