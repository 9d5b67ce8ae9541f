#!/usr/bin/env python3
"""Built-in rooms benchmark: what SIPx's SFU (the `sipx-rooms` thread) and the media threads
spend per forwarded audio (and video) stream and per phone participant, and a room with 1
publisher and 50 subscribers, all over loopback against the release binary.

  .venv/bin/python bench/rooms.py [--seconds 5] [--repeat 3] [--subscribers 50]
      [--video-subscribers 10] [--phones 10] [--group 25] [--binary target/release/sipx]

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
of all threads (the process), over --repeat windows of --seconds (the median is taken), once
every participant is seen flowing. Figures are differences within the same run, so ratios are
printed: the cost of forwarding audio is each window's rooms-thread CPU less that of the next
window, in which the publisher is muted through the API (its packets still arrive and are
decrypted, none is forwarded); 1 subscriber is the baseline for 50. Video and phones are
measured above the publishers alone. On loopback the sender's
`sendto` also pays for the kernel's delivery to the receiving socket.

Checks that can fail (the run exits 1 and says FAIL), in every window: each subscriber receives
at least 90 % of the packets its publisher sent in the window (at most 5 % while it is muted) and decodes the publisher's tone (video: 80 % of
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
import shutil
import statistics
import sys
import tempfile

from common import signed
from rooms_harness import (
    OP_KEY,
    OP_SECRET,
    Checks,
    Sipx,
    Worker,
    ensure_requirements,
    load,
    measure,
    summary,
    token_url,
    window,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Loopback addresses of the load generators: one per worker process (aiortc offers one host
# candidate per process) and the phones' network, which the trunk vouches for.
WEBRTC_NET = "127.0.0.{}"
PHONE_IP = "127.0.1.1"
PUB_TONE, PHONE_TONE, AGENT_TONE = 440, 400, 1000
# A stream's packets: 20 ms Opus frames.
PACKETS_PER_S = 50
VIDEO_FPS = 15  # bench/rooms_webrtc.py's Pattern


def judge_tracks(checks, m, tone, label, sent_by=None):
    """In every window, every track each client receives brought ≥ 90 % of the packets sent for
    its kind (by the client `sent_by`, or 50 a second) and decodes: audio as the `tone`, video at
    ≥ 80 % of the frame rate. Returns ({kind: median packets received per second}, tracks in the
    last window)."""
    rates = {"audio": [], "video": []}
    tracks = 0
    for w in m["windows"]:
        sent = {"audio": PACKETS_PER_S * w["elapsed"], "video": 0}
        for r in w["reports"]:
            if sent_by in r.get("clients", {}):
                sent = r["clients"][sent_by]["sent"]
        received, tracks = {"audio": 0, "video": 0}, 0
        for r in w["reports"]:
            for name, c in r.get("clients", {}).items():
                for source, h in c["heard"].items():
                    kind = h["kind"]
                    tracks += 1
                    received[kind] += h["packets"]
                    checks.check(h["packets"] >= 0.9 * sent[kind], f"{label}: {name} received {h['packets']} of "
                                 f"{sent[kind]:.0f} {kind} packets from {source}")
                    if kind == "audio":
                        checks.check(abs(h["peak_hz"] - tone) <= 20 and h["band"] > 0.7,
                                     f"{label}: {name} decodes {h['peak_hz']:.0f} Hz (band {h['band']:.2f}) from "
                                     f"{source}, not {tone} Hz")
                    else:
                        checks.check(h["frames"] >= 0.8 * VIDEO_FPS * w["elapsed"],
                                     f"{label}: {name} decoded {h['frames']} video frames from {source}")
        for kind, values in rates.items():
            values.append(received[kind] / w["elapsed"])
    return {k: statistics.median(v) for k, v in rates.items()}, tracks


def judge_muted(checks, m, label):
    """Muting worked: in every muted window no subscriber received more than 5 % of what was
    sent (the baseline windows measure what they say)."""
    for w in m["windows"]:
        sent = next((r["clients"]["pub"]["sent"] for r in w["reports"] if "pub" in r.get("clients", {})), None)
        for r in w["reports"]:
            for name, c in r.get("clients", {}).items():
                for source, h in c["heard"].items():
                    checks.check(sent is not None and h["packets"] <= 0.05 * sent[h["kind"]],
                                 f"{label}, muted: {name} still received {h['packets']} packets from {source}")


def sent_rate(m, name):
    """Packets per second the client `name` sent, per kind (median over the windows)."""
    rates = {"audio": [], "video": []}
    for w in m["windows"]:
        for r in w["reports"]:
            if name in r.get("clients", {}):
                for kind, values in rates.items():
                    values.append(r["clients"][name]["sent"][kind] / w["elapsed"])
    return {k: statistics.median(v) if v else 0 for k, v in rates.items()}


def fanout(sipx, tenant, args, work, checks, room, counts, video, first_ip):
    """1 publisher (Opus, and VP8 if `video`) alone, then with as many subscribers as each of
    `counts` in turn. Returns one result per count."""
    kinds = ("audio", "video") if video else ("audio",)
    with open(work / f"{room}.log", "a") as log:
        workers = []
        try:
            pub = Worker("rooms_webrtc.py", {"ip": WEBRTC_NET.format(first_ip), "timeout": 60, "clients": [
                {"name": "pub", "ws": token_url(sipx, tenant, room, "pub"), "publish": True, "tone": PUB_TONE,
                 "video": video}]}, log)
            workers.append(pub)
            pub.ready()
            alone = measure(sipx, workers, args.seconds, args.repeat)
            sent = sent_rate(alone, "pub")
            print(f"  publisher alone:     rooms thread {100 * alone['rooms']:5.2f} % "
                  f"({alone['wakeups']:.0f} wake-ups/s); in: "
                  + ", ".join(f"{sent[k]:.0f} {k} packets/s" for k in kinds), flush=True)
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
                label = f"{room}, {count} subscribers"
                if video:
                    # The rooms thread above the publisher alone.
                    m = measure(sipx, workers, args.seconds, args.repeat)
                    above = m["rooms"] - alone["rooms"]
                else:
                    # Windows with the publisher's audio forwarded, each followed by one with it
                    # muted through the API (received and decrypted, not forwarded): the
                    # difference of each pair is what forwarding costs, drift cancelled.
                    on, off = [], []
                    for _ in range(args.repeat):
                        on.append(window(sipx, workers, args.seconds))
                        sipx.mute(tenant, room, "pub", True)
                        off.append(window(sipx, workers, args.seconds))
                        sipx.mute(tenant, room, "pub", False)
                    m, muted = summary(on), summary(off)
                    above = statistics.median(a["rooms"] / a["elapsed"] - b["rooms"] / b["elapsed"]
                                              for a, b in zip(on, off, strict=True))
                    judge_muted(checks, muted, label)
                received, tracks = judge_tracks(checks, m, PUB_TONE, label, "pub")
                checks.check(tracks == count * len(kinds), f"{label}: {tracks} tracks received")
                per_packet = above / max(sum(received.values()), 1)
                results.append({"subs": count, "m": m, "received": received, "above": above,
                                "per_packet": per_packet})
                print(f"  {count:2} subscriber(s):    rooms thread {100 * m['rooms']:5.2f} % "
                      + ("" if video else f"({100 * muted['rooms']:.2f} % muted) ")
                      + f"({m['wakeups']:.0f} wake-ups/s); forwarded: "
                      + ", ".join(f"{received[k]:.0f} {k} packets/s" for k in kinds)
                      + f"; {1e6 * per_packet:.1f} µs of rooms thread per forwarded packet; "
                      f"load generators {100 * m['workers']:.0f} % of a core", flush=True)
            return results
        finally:
            for w in workers:
                w.stop()


def phones(sipx, tenant, args, work, checks):
    """`args.phones` rooms with one publishing aiortc browser each; then a phone in each.
    Returns the two measures."""
    def line(label, m):
        print(f"  {label:20} rooms thread {100 * m['rooms']:5.2f} %, media threads {100 * m['media']:5.2f} %, "
              f"process {100 * m['process']:5.2f} %; load generators {100 * m['workers']:.0f} % of a core",
              flush=True)

    with open(work / "phones.log", "a") as log:
        workers = []
        try:
            agents = Worker("rooms_webrtc.py", {"ip": WEBRTC_NET.format(120), "timeout": 90, "clients": [
                {"name": f"agent{i}", "ws": token_url(sipx, tenant, f"desk{i}", "agent"), "publish": True,
                 "tone": AGENT_TONE} for i in range(args.phones)]}, log)
            workers.append(agents)
            agents.ready()
            alone = measure(sipx, workers, args.seconds, args.repeat)
            line("browsers alone:", alone)
            calls = Worker("rooms_phone.py", {
                "ip": PHONE_IP, "target": ["127.0.0.1", sipx.sip_port], "timeout": 60, "record_dir": str(work),
                "phones": [{"name": f"phone{i}", "room": f"desk{i}", "tone": PHONE_TONE, "expect_hz": AGENT_TONE}
                           for i in range(args.phones)]}, log)
            workers.append(calls)
            calls.ready()
            agents.send("wait " + json.dumps({"expect": {f"agent{i}": 1 for i in range(args.phones)}, "timeout": 60}))
            agents.ready()
            m = measure(sipx, workers, args.seconds, args.repeat)
            line("+ a phone in each:", m)
            for w in m["windows"]:
                expected = PACKETS_PER_S * w["elapsed"]
                for r in w["reports"]:
                    for name, h in r.get("phones", {}).items():
                        checks.check(h["packets"] >= 0.9 * expected, f"phones: {name} received {h['packets']} "
                                     f"packets, expected {expected:.0f}")
                        checks.check(abs(h["peak_hz"] - AGENT_TONE) <= 20 and h["band"] > 0.7,
                                     f"phones: {name} hears {h['peak_hz']:.0f} Hz (band {h['band']:.2f}), "
                                     f"not {AGENT_TONE} Hz")
            judge_tracks(checks, m, PHONE_TONE, "browsers hearing phones")
            return alone, m
        finally:
            for w in workers:
                w.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5, help="one measurement window")
    ap.add_argument("--repeat", type=int, default=3, help="windows per phase (their median is used)")
    ap.add_argument("--subscribers", type=int, default=50, help="0: no audio phase")
    ap.add_argument("--video-subscribers", type=int, default=10, help="0: no video phase")
    ap.add_argument("--phones", type=int, default=10, help="0: no phone phase")
    ap.add_argument("--group", type=int, default=25, help="subscribers per load-generator process")
    ap.add_argument("--binary", type=pathlib.Path, default=ROOT / "target" / "release" / "sipx")
    args = ap.parse_args()
    if not args.binary.exists():
        raise SystemExit(f"build first: cargo build --release -p sipx (or pass --binary); {args.binary} is missing")
    ensure_requirements()

    work = pathlib.Path(tempfile.mkdtemp(prefix="sipx-bench-rooms-"))
    print(f"SIPx {args.binary}; {os.cpu_count()} CPUs; {load()}; {args.repeat} windows of {args.seconds:g} s "
          f"per phase; logs in {work}", flush=True)
    sipx = Sipx(args.binary, work)
    checks = Checks()
    audio = video = phone = None
    try:
        op = signed(OP_KEY, OP_SECRET)
        app = sipx.api("POST", "/v1/apps", op, {"name": "bench"})
        tenant = signed(app["app"]["api_key"], app["api_secret"])
        sipx.api("POST", "/v1/trunks", tenant, {"name": "bench-phones",
                                                "inbound": {"allowed_cidrs": [f"{PHONE_IP}/32"]}})
        sipx.wait_log("trunks loaded", 10)
        if args.subscribers:
            print(f"Audio: 1 publisher, then 1 and {args.subscribers} subscribers (aiortc), one room:", flush=True)
            audio = fanout(sipx, tenant, args, work, checks, "fanout", sorted({1, args.subscribers}), False, 20)
        if args.video_subscribers:
            print(f"Audio + video (VP8 320x240, {VIDEO_FPS} fps): 1 publisher, then {args.video_subscribers} "
                  "subscribers, one room:", flush=True)
            (video,) = fanout(sipx, tenant, args, work, checks, "video", [args.video_subscribers], True, 60)
        if args.phones:
            print(f"{args.phones} rooms of 1 publishing browser (aiortc), then + 1 phone each (SIP, PCMU):",
                  flush=True)
            phone = phones(sipx, tenant, args, work, checks)
    finally:
        sipx.stop()
    print()
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
        m = many["m"]
        per_stream = many["per_packet"] * PACKETS_PER_S
        print(f"Room with 1 publisher and {many['subs']} subscribers: rooms thread {100 * m['rooms']:.2f} % of a "
              f"core, {many['received']['audio']:.0f} packets/s forwarded; load generators "
              f"{100 * m['workers']:.0f} % of a core ({100 * m['workers'] / (many['subs'] + 1):.2f} % per WebRTC peer)")
        print(f"CPU per forwarded audio stream (rooms thread, forwarded less muted): {100 * per_stream:.3f} % "
              f"of a core ({1e6 * many['per_packet']:.1f} µs/packet) with {many['subs']} subscribers; baseline with "
              f"1 subscriber {100 * one['per_packet'] * PACKETS_PER_S:.3f} % ({1e6 * one['per_packet']:.1f} µs/packet);"
              f" ratio {many['per_packet'] / one['per_packet']:.2f}")
    if video:
        per_sub = video["above"] / video["subs"]
        vpps = video["received"]["video"] / video["subs"]
        line = (f"CPU per subscriber to audio + video (VP8 320x240 {VIDEO_FPS} fps, {vpps:.0f} packets/s) with "
                f"{video['subs']} subscribers: {100 * per_sub:.3f} % of a core")
        if per_stream:
            line += (f"; the video stream alone (less the audio stream above) {100 * (per_sub - per_stream):.3f} %, "
                     f"{(per_sub - per_stream) / per_stream:.1f} audio streams")
        print(line)
    if phone:
        alone, m = phone
        per = {k: (m[k] - alone[k]) / args.phones for k in ("media", "rooms", "process")}
        line = (f"CPU per phone participant (in {args.phones} room(s) with one browser each, above the browsers "
                f"alone): media threads {100 * per['media']:.3f} %, rooms thread {100 * per['rooms']:.3f} %, "
                f"whole process {100 * per['process']:.3f} % of a core")
        if per_stream:
            line += f"; {per['process'] / per_stream:.1f} forwarded audio streams"
        print(line)
    print("Checks: " + ("all held (every subscriber, browser and phone received and decoded its tone)"
                        if not checks.failed else f"{len(checks.failed)} FAILED (above)"))


if __name__ == "__main__":
    sys.exit(main())
