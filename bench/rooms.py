#!/usr/bin/env python3
"""Built-in rooms benchmark: what SIPx's SFU (the `sipx-rooms` thread) and the media threads
spend per forwarded audio (and video) stream and per phone participant, and a room with 1
publisher and 50 subscribers, all over loopback against the release binary.

  .venv/bin/python bench/rooms.py [--seconds 10] [--subscribers 50] [--video-subscribers 10]
                                  [--phones 10] [--group 25] [--binary target/release/sipx]

The WebRTC participants are aiortc peers (bench/rooms_webrtc.py: a full WebRTC stack in Python:
ICE, DTLS-SRTP through OpenSSL and libsrtp, Opus and VP8 through PyAV), grouped into a few
processes; each publisher sends a 20 ms Opus tone (and VP8 video in the video phase), each
subscriber decodes what it receives. Why aiortc: it is independent of SIPx's WebRTC stack
(str0m), so str0m-to-str0m DTLS issue #932 upstream does not apply; 50 headless Chromium peers
would not fit on 2 cores beside the server; and it costs a few % of a core per peer.
The phones are bench/rooms_phone.py: SIP calls over UDP into `sip:room-<name>@` through a
trunk's inbound network, then a PCMU tone every 20 ms.

CPU is read from /proc/<sipx pid>/task/<tid> (schedstat's run time in ns, or stat's utime +
stime where schedstat is missing) of the `sipx-rooms` thread, of the `sipx-media-*` threads and
of all threads (the process), over a window of --seconds, once every participant is seen
flowing. Figures are differences against a phase measured earlier in the same run (the
baseline: the publishers alone; one subscriber), so ratios are printed. On loopback the sender's
`sendto` also pays for the kernel's delivery to the receiving socket.

Checks that can fail (the run exits 1 and says FAIL): each subscriber receives at least 90 % of
the packets its publisher sent in the window and decodes the publisher's tone (video: 80 % of
the frames); each phone hears its room's browser tone through the mix, and each browser hears
its phone. Not a test: nothing runs it in CI. Other work on the machine skews CPU figures: the
load average is printed.

aiortc and its dependencies (bench/requirements.txt) are installed into the running interpreter's
environment (the repo's .venv) on first use.
"""

import argparse
import json
import os
import pathlib
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from common import free_port, signed

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
TICK = os.sysconf("SC_CLK_TCK")
OP_KEY, OP_SECRET = "benchop", "benchop-secret"
# Loopback addresses of the load generators: one per worker process (aiortc offers one host
# candidate per process) and the phones' network, which the trunk vouches for.
WEBRTC_NET = "127.0.0.{}"
PHONE_IP = "127.0.1.1"
PUB_TONE, PHONE_TONE, AGENT_TONE = 440, 400, 1000
# A stream's packets: 20 ms Opus frames.
PACKETS_PER_S = 50
VIDEO_FPS = 15  # bench/rooms_webrtc.py's Pattern


def ensure_requirements():
    """Installs bench/requirements.txt into this interpreter's environment when aiortc is missing."""
    probe = subprocess.run([sys.executable, "-c", "import aiortc, numpy, websockets"], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        print("installing bench/requirements.txt into", sys.prefix, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        str(BENCH / "requirements.txt")], check=True)


class Sipx:
    """The release binary on loopback, its JSON log read line by line."""

    def __init__(self, binary, work):
        self.http, self.rooms_port, self.sip_port = free_port(), free_port(socket.SOCK_DGRAM), free_port(
            socket.SOCK_DGRAM)
        env = dict(os.environ, SIPX_ADMIN__API_KEY=OP_KEY, SIPX_ADMIN__API_SECRET=OP_SECRET,
                   SIPX_SIP__UDP=f'["127.0.0.1:{self.sip_port}"]', SIPX_SIP__TCP="[]",
                   SIPX_ROOMS__UDP=f"127.0.0.1:{self.rooms_port}", SIPX_ROOMS__MAX_PARTICIPANTS="200",
                   # Warnings only, but the line that says a new trunk is in force.
                   SIPX_LOG__FILTER="warn,sipx_server::app=info,sipx_server::sip::core::trunks=info")
        env.pop("RUST_LOG", None)
        self.proc = subprocess.Popen([str(binary), "--data-dir", str(work / "data"), "--log-format", "json", "serve",
                                      "--listen", f"127.0.0.1:{self.http}"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.log = open(work / "sipx.log", "w")  # noqa: SIM115 (written until sipx exits)
        threading.Thread(target=self._read, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http}"
        self.wait_log("HTTP API listening", 30)

    def _read(self):
        for line in self.proc.stderr:
            self.log.write(line)
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass

    def wait_log(self, message, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if event.get("message") == message or event.get("fields", {}).get("message") == message:
                return event
        raise SystemExit(f"sipx did not log {message!r} within {timeout} s (see its log)")

    def api(self, method, path, header, body=None):
        req = urllib.request.Request(self.base + path, method=method, headers={
            "Authorization": header, "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def threads(self):
        """CPU seconds so far per thread name, the process' total, and how often the rooms
        thread went to sleep (its voluntary context switches: one per wait in its poll)."""
        out, wakeups = {}, 0
        for task in pathlib.Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                name, seconds = cpu_of(task)
                if name == "sipx-rooms":
                    status = (task / "status").read_text()
                    wakeups = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
            except OSError:
                continue  # the thread ended
            out[name] = out.get(name, 0) + seconds
        out["(process)"] = sum(out.values())
        out["(rooms wake-ups)"] = wakeups
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Worker:
    """A load-generator process (rooms_webrtc.py or rooms_phone.py) speaking JSON lines."""

    def __init__(self, script, spec, log):
        self.proc = subprocess.Popen([sys.executable, str(BENCH / script)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log, text=True)
        self.send(json.dumps(spec))

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self):
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"a load generator ended (exit {self.proc.poll()}); see its log")
        return json.loads(line)

    def ready(self):
        a = self.answer()
        if a.get("event") != "ready":
            raise SystemExit(f"load generator not ready: {a}")

    def stop(self):
        try:
            self.send("stop")
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


def measure(sipx, workers, seconds):
    """CPU seconds per sipx thread name and per worker, and the workers' reports, over a window."""
    for w in workers:
        w.send("mark")
    marks = [w.answer()["cpu"] for w in workers]
    before, t0 = sipx.threads(), time.monotonic()
    time.sleep(seconds)  # the measurement window itself, not a synchronisation
    after, elapsed = sipx.threads(), time.monotonic() - t0
    for w in workers:
        w.send("report")
    reports = [w.answer() for w in workers]
    cpu = {k: after[k] - before.get(k, 0) for k in after}
    group = lambda prefix: sum(v for k, v in cpu.items() if k.startswith(prefix))
    return {"elapsed": elapsed, "rooms": group("sipx-rooms"), "media": group("sipx-media"),
            "process": cpu["(process)"], "wakeups": cpu["(rooms wake-ups)"] / elapsed,
            "workers": sum(r["cpu"] for r in reports) - sum(marks),
            "reports": reports}


def cpu_of(task):
    """(thread name, CPU seconds) of /proc/<pid>/task/<tid>: utime + stime from its stat, or,
    where the kernel keeps it, the same time in nanoseconds from schedstat (stat counts 10 ms
    ticks, too coarse for a thread at 1 % over a few seconds)."""
    stat = (task / "stat").read_text()
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    try:
        return name, int((task / "schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = stat[stat.rindex(")") + 2:].split()
        return name, (int(fields[11]) + int(fields[12])) / TICK


def pct(seconds, elapsed):
    return 100 * seconds / elapsed


def load():
    return "load average " + " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])


class Checks:
    def __init__(self):
        self.failed = []

    def check(self, ok, what):
        if not ok:
            self.failed.append(what)
            print(f"  FAIL {what}", flush=True)


def judge_tracks(checks, m, sent, tone, label):
    """Every track each client receives brought ≥ 90 % of the packets sent for its kind in the
    window (`sent`: {kind: packets}) and decodes: audio as the `tone`, video at ≥ 80 % of the
    frame rate. Returns ({kind: packets received}, tracks received)."""
    received, tracks = {"audio": 0, "video": 0}, 0
    for r in m["reports"]:
        for name, c in r.get("clients", {}).items():
            for source, h in c["heard"].items():
                kind = h["kind"]
                tracks += 1
                received[kind] += h["packets"]
                checks.check(h["packets"] >= 0.9 * sent[kind], f"{label}: {name} received {h['packets']} of "
                             f"{sent[kind]} {kind} packets from {source}")
                if kind == "audio":
                    checks.check(abs(h["peak_hz"] - tone) <= 20 and h["band"] > 0.7,
                                 f"{label}: {name} decodes {h['peak_hz']:.0f} Hz (band {h['band']:.2f}) from "
                                 f"{source}, not {tone} Hz")
                else:
                    checks.check(h["frames"] >= 0.8 * VIDEO_FPS * m["elapsed"],
                                 f"{label}: {name} decoded {h['frames']} video frames from {source}")
    return received, tracks


def sent_by(m, name):
    for r in m["reports"]:
        if name in r.get("clients", {}):
            return r["clients"][name]["sent"]
    return {"audio": 0, "video": 0}


def token_url(sipx, tenant, room, identity, **extra):
    t = sipx.api("POST", f"/v1/rooms/{room}/tokens", tenant, {"identity": identity, **extra})
    return sipx.base.replace("http://", "ws://", 1) + t["url"] + "?token=" + t["token"]


def fanout(sipx, tenant, args, work, checks, room, counts, video, first_ip):
    """1 publisher (Opus, and VP8 if `video`) alone, then with as many subscribers as each of
    `counts` in turn (a window each). Returns the publisher-alone measure and one result per count."""
    with open(work / f"{room}.log", "a") as log:
        workers = []
        kinds = ("audio", "video") if video else ("audio",)
        try:
            pub = Worker("rooms_webrtc.py", {"ip": WEBRTC_NET.format(first_ip), "timeout": 60, "clients": [
                {"name": "pub", "ws": token_url(sipx, tenant, room, "pub"), "publish": True, "tone": PUB_TONE,
                 "video": video}]}, log)
            workers.append(pub)
            pub.ready()
            m0 = measure(sipx, workers, args.seconds)
            sent0 = sent_by(m0, "pub")
            print(f"  publisher alone:     rooms thread {pct(m0['rooms'], m0['elapsed']):5.2f} % "
                  f"({m0['wakeups']:.0f} wake-ups/s); in: "
                  + ", ".join(f"{sent0[k] / m0['elapsed']:.0f} {k} packets/s" for k in kinds), flush=True)
            results, joined = [], 0
            for count in counts:
                while joined < count:
                    group = [f"sub{i}" for i in range(joined, min(count, joined + args.group))]
                    w = Worker("rooms_webrtc.py", {
                        "ip": WEBRTC_NET.format(first_ip + len(workers)), "timeout": 90,
                        "clients": [{"name": s, "ws": token_url(sipx, tenant, room, s, can_publish=False)}
                                    for s in group],
                        "expect": {s: len(kinds) for s in group}}, log)
                    workers.append(w)
                    w.ready()
                    joined += len(group)
                m = measure(sipx, workers, args.seconds)
                sent = sent_by(m, "pub")
                received, tracks = judge_tracks(checks, m, sent, PUB_TONE, f"{room}, {count} subscribers")
                checks.check(tracks == count * len(kinds), f"{room}, {count} subscribers: {tracks} tracks received")
                total = sum(received.values())
                above = m["rooms"] - m0["rooms"] * m["elapsed"] / m0["elapsed"]
                result = {"subs": count, "m": m, "received": received, "above": above,
                          "per_packet": above / max(total, 1)}
                results.append(result)
                print(f"  {count:2} subscriber(s):    rooms thread {pct(m['rooms'], m['elapsed']):5.2f} % "
                      f"({m['wakeups']:.0f} wake-ups/s); forwarded: "
                      + ", ".join(f"{received[k] / m['elapsed']:.0f} {k} packets/s" for k in kinds)
                      + f"; {1e6 * result['per_packet']:.1f} µs of rooms thread per forwarded packet; "
                      f"load generators {pct(m['workers'], m['elapsed']):.0f} % of a core", flush=True)
            return m0, results
        finally:
            for w in workers:
                w.stop()


def phones(sipx, tenant, args, work, checks):
    """`args.phones` rooms with one publishing aiortc browser each; then a phone in each."""
    with open(work / "phones.log", "a") as log:
        workers = []
        try:
            agents = Worker("rooms_webrtc.py", {"ip": WEBRTC_NET.format(120), "timeout": 90, "clients": [
                {"name": f"agent{i}", "ws": token_url(sipx, tenant, f"desk{i}", "agent"), "publish": True,
                 "tone": AGENT_TONE} for i in range(args.phones)]}, log)
            workers.append(agents)
            agents.ready()
            p0 = measure(sipx, workers, args.seconds)
            print(f"  browsers alone:      rooms thread {pct(p0['rooms'], p0['elapsed']):5.2f} %, "
                  f"media threads {pct(p0['media'], p0['elapsed']):5.2f} %, process {pct(p0['process'], p0['elapsed']):5.2f} %; "
                  f"load generators {pct(p0['workers'], p0['elapsed']):.0f} % of a core", flush=True)
            calls = Worker("rooms_phone.py", {"ip": PHONE_IP, "target": ["127.0.0.1", sipx.sip_port], "timeout": 60,
                                              "record_dir": str(work),
                                              "phones": [{"name": f"phone{i}", "room": f"desk{i}", "tone": PHONE_TONE,
                                                          "expect_hz": AGENT_TONE} for i in range(args.phones)]}, log)
            workers.append(calls)
            calls.ready()
            agents.send("wait " + json.dumps({"expect": {f"agent{i}": 1 for i in range(args.phones)}, "timeout": 60}))
            agents.ready()
            p1 = measure(sipx, workers, args.seconds)
            print(f"  + a phone in each:   rooms thread {pct(p1['rooms'], p1['elapsed']):5.2f} %, "
                  f"media threads {pct(p1['media'], p1['elapsed']):5.2f} %, process {pct(p1['process'], p1['elapsed']):5.2f} %; "
                  f"load generators {pct(p1['workers'], p1['elapsed']):.0f} % of a core", flush=True)
            expected = PACKETS_PER_S * p1["elapsed"]
            for r in p1["reports"]:
                for name, h in r.get("phones", {}).items():
                    checks.check(h["packets"] >= 0.9 * expected, f"phones: {name} received {h['packets']} packets, "
                                 f"expected {expected:.0f}")
                    checks.check(abs(h["peak_hz"] - AGENT_TONE) <= 20 and h["band"] > 0.7,
                                 f"phones: {name} hears {h['peak_hz']:.0f} Hz (band {h['band']:.2f}), not {AGENT_TONE} Hz")
            judge_tracks(checks, p1, {"audio": expected}, PHONE_TONE, "browsers hearing phones")
            return p0, p1
        finally:
            for w in workers:
                w.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10, help="each measurement window")
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--video-subscribers", type=int, default=10, help="0: no video phase")
    ap.add_argument("--phones", type=int, default=10)
    ap.add_argument("--group", type=int, default=25, help="subscribers per load-generator process")
    ap.add_argument("--binary", type=pathlib.Path, default=ROOT / "target" / "release" / "sipx")
    args = ap.parse_args()
    if not args.binary.exists():
        raise SystemExit(f"build first: cargo build --release -p sipx (or pass --binary); {args.binary} is missing")
    ensure_requirements()

    work = pathlib.Path(tempfile.mkdtemp(prefix="sipx-bench-rooms-"))
    print(f"SIPx {args.binary}; {os.cpu_count()} CPUs; {load()}; windows of {args.seconds:g} s; logs in {work}",
          flush=True)
    sipx = Sipx(args.binary, work)
    checks = Checks()
    video = None
    try:
        op = signed(OP_KEY, OP_SECRET)
        app = sipx.api("POST", "/v1/apps", op, {"name": "bench"})
        tenant = signed(app["app"]["api_key"], app["api_secret"])
        sipx.api("POST", "/v1/trunks", tenant, {"name": "bench-phones",
                                                "inbound": {"allowed_cidrs": [f"{PHONE_IP}/32"]}})
        sipx.wait_log("trunks loaded", 10)
        audio = video = phone = None
        if args.subscribers:
            print(f"Audio: 1 publisher, then 1 and {args.subscribers} subscribers (aiortc), one room:", flush=True)
            _, audio = fanout(sipx, tenant, args, work, checks, "fanout", sorted({1, args.subscribers}), False, 20)
        if args.video_subscribers:
            print(f"Audio + video (VP8 320x240, {VIDEO_FPS} fps): 1 publisher, then {args.video_subscribers} "
                  "subscribers, one room:", flush=True)
            _, (video,) = fanout(sipx, tenant, args, work, checks, "video", [args.video_subscribers], True, 60)
        if args.phones:
            print(f"{args.phones} rooms of 1 publishing browser (aiortc), then + 1 phone each (SIP, PCMU):",
                  flush=True)
            phone = phones(sipx, tenant, args, work, checks)
    finally:
        sipx.stop()
    report(args, audio, video, phone, checks)
    print(load())
    if checks.failed:
        print(f"FAILED: {len(checks.failed)} check(s); logs in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


def report(args, audio, video, phone, checks):
    """The summary: figures, ratios to the same run's baselines, and whether the checks held."""
    per_stream = None  # the CPU (fraction of a core) of one forwarded audio stream, at scale
    if audio:
        one, many = audio[0], audio[-1]
        el = many["m"]["elapsed"]
        per_stream = many["per_packet"] * PACKETS_PER_S
        print(f"Room with 1 publisher and {many['subs']} subscribers: rooms thread "
              f"{pct(many['m']['rooms'], el):.2f} % of a core, {many['received']['audio'] / el:.0f} packets/s "
              f"forwarded; load generators {pct(many['m']['workers'], el):.0f} % of a core "
              f"({pct(many['m']['workers'] / (many['subs'] + 1), el):.2f} % per WebRTC peer)")
        print(f"CPU per forwarded audio stream (rooms thread, above the publisher alone): {100 * per_stream:.3f} % "
              f"of a core ({1e6 * many['per_packet']:.1f} µs/packet) with {many['subs']} subscribers; baseline with "
              f"1 subscriber {100 * one['per_packet'] * PACKETS_PER_S:.3f} % ({1e6 * one['per_packet']:.1f} µs/packet);"
              f" ratio {many['per_packet'] / one['per_packet']:.2f}")
    if video:
        ve = video["m"]["elapsed"]
        per_sub = video["above"] / video["subs"] / ve
        vpps = video["received"]["video"] / video["subs"] / ve
        line = (f"CPU per subscriber to audio + video (VP8 320x240 {VIDEO_FPS} fps, {vpps:.0f} packets/s) with "
                f"{video['subs']} subscribers: {100 * per_sub:.3f} % of a core")
        if per_stream:
            line += (f"; the video stream alone (less the audio stream above) {100 * (per_sub - per_stream):.3f} %, "
                     f"{(per_sub - per_stream) / per_stream:.1f} audio streams")
        print(line)
    if phone:
        p0, p1 = phone
        n = args.phones
        scale = p1["elapsed"] / p0["elapsed"]
        per = {k: (p1[k] - p0[k] * scale) / n / p1["elapsed"] for k in ("media", "rooms", "process")}
        line = (f"CPU per phone participant (in {n} room(s) with one browser each, above the browsers alone): "
                f"media threads {100 * per['media']:.3f} %, rooms thread {100 * per['rooms']:.3f} %, "
                f"whole process {100 * per['process']:.3f} % of a core")
        if per_stream:
            line += f"; {per['process'] / per_stream:.1f} forwarded audio streams"
        print(line)
    print("Checks: " + ("all held (every subscriber, browser and phone received and decoded its tone)"
                        if not checks.failed else f"{len(checks.failed)} FAILED (above)"))


if __name__ == "__main__":
    sys.exit(main())
