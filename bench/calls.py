#!/usr/bin/env python3
"""Call-control benchmark: sipp calls into SIPx's built-in rooms, against the release binary.

  .venv/bin/python bench/calls.py [--seconds 5] [--hold-ms 100] [--long-hold-ms 1000] [--rooms 100]
      [--max-rate 10000]
      [--media-calls 250] [--media-rate 20] [--media-seconds 20] [--media-rooms 50]
      [--only signalling|media] [--binary target/release/sipx]

Two figures, each against a fresh SIPx (embedded defaults, a temporary data dir, logs at warn)
with one application and an inbound trunk whose network is sipp's source address, so every call
belongs to the application and `sip:room-<name>@` joins that room (created on first join):

1. Signalling only: sipp (bench/sipp/call_room.xml) calls `room-bench<N>` (spread over --rooms
   rooms, so none reaches `rooms.max_participants`) with a PCMU offer, ACKs, holds --hold-ms
   without sending RTP, and hangs up; a rate ladder, --seconds per step. A step passes when every
   call succeeded, sipp saw no unexpected message and no retransmission timeout, sipp kept the
   offered rate (within 5 %), SIPx saw exactly one INVITE and one BYE per call (its
   /metrics; sipp alone can count a late 200 to the INVITE as the BYE's answer), and SIPx holds
   no call, media leg or room participant once sipp is done. The ladder stops at the first step
   that does not pass. Retransmissions, the mean INVITE->200 time and the datagrams the kernel
   dropped on SIPx's full SIP socket are printed beside. SIPx still sends each phone leg its
   room's mix (silence) every 20 ms while a call holds: a call costs a media leg even here.
   The judged ladder holds calls 100 ms (sipp's own default holds 0): at 2000 calls/s that is
   200 calls up at once, within the 250 concurrent calls the media target sizes SIPx for. A
   second ladder, --long-hold-ms (1000 ms; 0 skips it), is printed for context and not judged:
   at 2000 calls/s it keeps 2000 legs up, each sent 50 packets a second, which on this 2-core
   machine is a media load, not signalling.
2. With media: --media-calls calls at --media-rate calls/s, all up at once (`-l`), each playing
   --media-seconds of a PCMU tone from a pcap (bench/tone_pcap.py) into a room of
   calls/--media-rooms phones, then BYE. Reported: failures, the peak of concurrent media legs,
   SIPx's CPU while all calls are up, the caller frames that reached the others of the room
   (through the rooms thread, encoded to Opus, or as PCM to the phones of the room on the same
   media thread) against what was played, and the media threads' clock skips (ticks so late
   that the 20 ms clock jumped ahead). The rooms hold phones only, so when a room's phones share
   a media thread (SIPx places them so) nothing is encoded to Opus; bench/media.py measures
   the Opus path a room with a browser needs.

CPU is SIPx's (all threads; media and rooms threads apart) from /proc, as % of one core, and
sipp's own from its rusage: on this 2-core machine sipp's ceiling is part of the figure. Other
work on the machine skews everything; the load average is printed. sipp runs as root (pcap play
uses a raw socket). Not a test: nothing runs it in CI; it exits 1 when a figure misses its target.
"""

import argparse
import ipaddress
import os
import pathlib
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import tone_pcap
from common import signed
from rooms_harness import OP_KEY, OP_SECRET, Sipx, load

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCENARIO = pathlib.Path(__file__).resolve().parent / "sipp" / "call_room.xml"
LADDER = [250, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 8000, 10000]
TARGET_CPS, TARGET_MEDIA_CALLS, TARGET_MEDIA_RATE = 2000, 250, 20
# sipp's source addresses (each run's trunk vouches for it) and its media port.
SIGNAL_IP, MEDIA_IP, SIPP_MEDIA_PORT = "127.0.2.1", "127.0.2.2", 6000
PACKETS_PER_S = 50
# SIPx for the benchmark: no per-source rate limit (one trunk sends everything; its default of
# 200 messages/s would cap the ladder at ~70 calls/s), RTP ports for ~10 000 legs.
SIPX_ENV = {"SIPX_SIP__RATE_LIMIT_PER_SEC": "0", "SIPX_MEDIA__RTP_PORT_MIN": "10000",
            "SIPX_MEDIA__RTP_PORT_MAX": "29999"}
IDLE_TIMEOUT = 60


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5, help="calls are offered this long per ladder step")
    ap.add_argument("--hold-ms", type=int, default=100, help="signalling-only calls hold this long")
    ap.add_argument("--long-hold-ms", type=int, default=1000,
                    help="a second signalling ladder, not judged, with calls held this long (0: none)")
    ap.add_argument("--rooms", type=int, default=100, help="rooms the signalling-only calls are spread over")
    ap.add_argument("--max-rate", type=int, default=10000)
    ap.add_argument("--media-calls", type=int, default=TARGET_MEDIA_CALLS)
    ap.add_argument("--media-rate", type=int, default=TARGET_MEDIA_RATE)
    ap.add_argument("--media-seconds", type=int, default=20, help="tone each media call plays (then BYE)")
    ap.add_argument("--media-rooms", type=int, default=50)
    ap.add_argument("--only", choices=("signalling", "media"))
    ap.add_argument("--binary", type=pathlib.Path,
                    default=pathlib.Path(os.environ.get("SIPX_BINARY", ROOT / "target" / "release" / "sipx")))
    args = ap.parse_args()
    preflight(args)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop sipp and SIPx.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = pathlib.Path(tempfile.mkdtemp(prefix="sipx-bench-calls-"))
    print(f"SIPx {args.binary}; {os.cpu_count()} CPUs; {load()}; logs in {work}", flush=True)
    ladder_result = media = None
    failed = False
    if args.only != "media":
        ladder_result, failed = with_sipx(args, work / "signalling", SIGNAL_IP,
                                          lambda sipx, w: ladder(sipx, w, args))
    best, stop = ladder_result or (None, "SIPx exited")
    long_hold = None
    if args.only != "media" and args.long_hold_ms > 0:
        long_args = argparse.Namespace(**{**vars(args), "hold_ms": args.long_hold_ms})
        long_hold, _ = with_sipx(long_args, work / "signalling-long-hold", SIGNAL_IP,
                                 lambda sipx, w: ladder(sipx, w, long_args))
    if args.only != "signalling":
        media, bad = with_sipx(args, work / "media", MEDIA_IP, lambda sipx, w: media_run(sipx, w, args))
        failed = failed or bad
    summary(args, best, stop, media, long_hold)
    print(load())
    missed = (args.only != "media" and (best or 0) < TARGET_CPS) or (
        args.only != "signalling" and not (media and media["ok"] and media["media_ok"]))
    if failed or missed:
        print(f"logs kept in {work}")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    return 0


def preflight(args):
    if not shutil.which("sipp"):
        raise SystemExit("sipp is missing: apt-get install -y --no-install-recommends sip-tester")
    if os.geteuid() != 0:
        raise SystemExit("run as root: sipp plays the media pcap through a raw socket")
    if not args.binary.exists():
        raise SystemExit(f"build first: cargo build --release -p sipx (or pass --binary); {args.binary} is missing")
    # Two sockets per media leg in SIPx, one per call's pcap play in sipp: lift the soft limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def with_sipx(args, work, ip, run):
    """Runs `run(sipx, work)` against a fresh SIPx whose trunk vouches for `ip`; returns its
    result and whether SIPx died meanwhile."""
    work.mkdir(parents=True)
    sipx = Sipx(args.binary, work, SIPX_ENV)
    try:
        op = signed(OP_KEY, OP_SECRET)
        app = sipx.api("POST", "/v1/apps", op, {"name": "bench"})
        tenant = signed(app["app"]["api_key"], app["api_secret"])
        sipx.api("POST", "/v1/trunks", tenant, {"name": "bench-sipp", "inbound": {"allowed_cidrs": [f"{ip}/32"]}})
        sipx.wait_log("trunks loaded", 10)
        result = run(sipx, work)
    except OSError:
        if sipx.proc.poll() is None:
            raise
        result = None  # SIPx is gone (its API with it): said below
    finally:
        died = sipx.proc.poll()
        sipx.stop()
    if died is not None:
        print(f"  FAIL SIPx exited with {died} during the run (see {work}/sipx.log)", flush=True)
    return result, died is not None


# ---- signalling only ----

def ladder(sipx, work, args):
    rooms = work / "rooms.csv"
    rooms.write_text("SEQUENTIAL\n" + "".join(f"room-bench{i}\n" for i in range(args.rooms)))
    tone_pcap.write(work / "tone.pcap", 0.1)  # read when sipp loads the scenario, not played
    print(f"Signalling only: calls into {args.rooms} rooms, {args.seconds} s per step, each call holds "
          f"{args.hold_ms} ms, no RTP from sipp:", flush=True)
    best = None
    for rate in [r for r in LADDER if r <= args.max_rate]:
        total = rate * args.seconds
        # Enough concurrent calls for the hold plus slow answers; beyond that sipp would throttle.
        limit = rate * (args.hold_ms // 1000 + 6)
        step = run_sipp(sipx, work, SIGNAL_IP, rate=rate, total=total, limit=limit, hold_ms=args.hold_ms,
                        media=False, rooms=rooms, budget=args.seconds * 3 + args.hold_ms / 1000 + 60)
        _, settled = settle(sipx, step, total)
        offered = step["offered"]
        problems = step["problems"] + settled
        if step["created"] == total and offered < 0.95 * rate:
            problems.append(f"sipp offered only {offered:.0f}/s")
        print(f"  rate {rate:5}/s: {'ok  ' if not problems else 'FAIL'} {step['created']} attempted, "
              f"{step['ok']} succeeded, {step['failed']} failed, {step['retrans']} retransmissions; "
              f"offered {offered:.0f}/s; INVITE->200 mean {step['setup_ms']:.0f} ms; SIPx CPU {cpu_text(step['cpu'])}, "
              f"sipp {step['sipp_cpu']:.0f} %" + "".join(f"; {x}" for x in step["notes"] + problems), flush=True)
        if problems:
            return best, f"{rate}/s: {'; '.join(problems)}"
        best = rate
    return best, None


# ---- with media ----

def media_run(sipx, work, args):
    packets = tone_pcap.write(work / "tone.pcap", args.media_seconds)
    rooms = work / "rooms.csv"
    rooms.write_text("SEQUENTIAL\n" + "".join(f"room-media{i}\n" for i in range(args.media_rooms)))
    per_room = -(-args.media_calls // args.media_rooms)
    print(f"With media: {args.media_calls} calls at {args.media_rate}/s into {args.media_rooms} rooms "
          f"(up to {per_room} phones each), each plays {args.media_seconds} s of PCMU tone then hangs up:", flush=True)
    window = {}

    def watch(proc, t0):
        """While sipp runs: the peak of concurrent legs, and a CPU window once all calls are up."""
        peak = 0
        while proc.poll() is None:
            legs = sipx.metrics().get("sipx_media_legs", 0)
            peak = max(peak, legs)
            if legs >= args.media_calls and not window:
                # All calls up: measure until the first would hang up (its tone ends), at most 5 s.
                span = min(5.0, args.media_seconds - (time.monotonic() - t0) - 0.5)
                if span >= 1:
                    a = sipx.threads()
                    time.sleep(span)  # the measurement window itself
                    b = sipx.threads()
                    window.update(cpu_of(a, b, span), seconds=span)
            time.sleep(0.2)
        return peak

    step = run_sipp(sipx, work, MEDIA_IP, rate=args.media_rate, total=args.media_calls, limit=args.media_calls,
                    hold_ms=args.media_seconds * 1000 + 200, media=True, rooms=rooms,
                    budget=args.media_calls / args.media_rate + args.media_seconds + 90, watch=watch)
    after, settled = settle(sipx, step, args.media_calls)

    def delta(key):
        return after.get(key, 0) - step["before"].get(key, 0)

    played = args.media_calls * packets
    # A caller's voice reaches the others two ways: through the rooms thread (encoded, when
    # someone not on its media thread hears it), or as PCM to the phones of its room on its
    # own media thread (no codec).
    through_rooms = delta('sipx_rooms_phone_packets_total{direction="from_phone"}')
    beside = delta('sipx_media_room_voice_frames_total{heard_by="phones_beside"}')
    from_phones = through_rooms + beside
    to_phones = delta('sipx_rooms_phone_packets_total{direction="to_phone"}')
    # The target: every call set up, all up at once, all gone afterwards.
    problems = step["problems"] + settled
    if step["peak"] < args.media_calls:
        problems.append(f"only {step['peak']:.0f} calls were up at once")
    # The media itself: what was played reached the rooms, while anyone was there to hear it
    # (SIPx does not encode a phone's voice for a room where nobody else is).
    heard = heard_packets(args)
    media_ok = from_phones >= 0.95 * heard
    result = {"ok": not problems, "media_ok": media_ok, "step": step, "window": window, "played": played,
              "heard": heard,
              "from": from_phones, "through_rooms": through_rooms, "beside": beside, "to": to_phones, "expected_to": overlap_packets(args),
              "skips": delta("sipx_media_clock_skips_total"), "send_errors": delta("sipx_media_send_errors_total"),
              "encode_errors": delta("sipx_media_room_encode_errors_total"),
              "received": delta("sipx_media_rtp_received_total"),
              "sent": delta("sipx_media_rtp_sent_total"),
              "jitter": {k: delta(f'sipx_media_jitter_total{{outcome="{k}"}}')
                         for k in ("played", "late", "lost", "skipped", "underruns")},
              "late_ticks": delta("sipx_media_late_ticks_total"), "ticks": delta("sipx_media_ticks_total"),
              "link_dropped": delta('sipx_rooms_phone_link_dropped_total{direction="from_phone"}')}
    print(f"  calls: {'ok  ' if not problems else 'FAIL'} {step['created']} attempted, {step['ok']} succeeded, "
          f"{step['failed']} failed, {step['retrans']} retransmissions; {step['peak']:.0f} up at once; "
          f"INVITE->200 mean {step['setup_ms']:.0f} ms" + "".join(f"; {x}" for x in step["notes"] + problems),
          flush=True)
    if window:
        print(f"  with all {args.media_calls} calls up ({window['seconds']:.1f} s): SIPx CPU {cpu_text(window)}",
              flush=True)
    print(f"  media: {'ok  ' if media_ok else 'FAIL'} RTP packets played {played}, {heard:.0f} while someone "
          f"else was in the room; taken into the rooms {from_phones:.0f} ({100 * from_phones / heard:.1f} % "
          f"of those, 95 % needed: {through_rooms:.0f} through the rooms thread, {beside:.0f} as PCM to "
          f"the phones beside on their media thread), forwarded toward the phones by the rooms thread "
          f"{to_phones:.0f} (~{result['expected_to']:.0f} by the call schedule if all went through it); "
          f"media clock skips "
          f"{result['skips']:.0f}, send errors {result['send_errors']:.0f}, encode errors "
          f"{result['encode_errors']:.0f}; whole run: SIPx CPU {step['cpu']['process']:.0f} %, "
          f"sipp {step['sipp_cpu']:.0f} %", flush=True)
    # Where the played packets went: received by the legs, then their jitter buffers' verdicts
    # (packets played or late; frames lost, skipped to cut the delay, underruns), the media
    # threads' late ticks, and the caller's voice dropped on a full phone link.
    j = result["jitter"]
    print(f"  path: received by SIPx {result['received']:.0f} ({100 * result['received'] / played:.1f} %); "
          f"jitter buffers: played {j['played']:.0f}, late {j['late']:.0f}, lost {j['lost']:.0f}, "
          f"skipped {j['skipped']:.0f}, underrun ticks {j['underruns']:.0f}; late ticks "
          f"{result['late_ticks']:.0f} of {result['ticks']:.0f}; dropped on full links toward the rooms "
          f"{result['link_dropped']:.0f}; RTP sent to the phones {result['sent']:.0f}", flush=True)
    return result


def heard_packets(args):
    """The packets played while another phone of the same room was in it and playing, by the
    call schedule: what the rooms should take from the phones."""
    starts = [i / args.media_rate for i in range(args.media_calls)]
    total = 0.0
    for a, sa in enumerate(starts):
        spans = sorted((max(sa, starts[b]), min(sa, starts[b]) + args.media_seconds)
                       for b in range(a % args.media_rooms, args.media_calls, args.media_rooms) if b != a)
        covered, reach = 0.0, sa
        for begin, end in spans:
            begin = max(begin, reach)
            if end > begin:
                covered += end - begin
                reach = end
        total += covered
    return total * PACKETS_PER_S


def overlap_packets(args):
    """The packets the phones should hear by the call schedule: each phone hears every other of
    its room (calls cycle through the rooms) while both are in it and playing."""
    starts = [i / args.media_rate for i in range(args.media_calls)]
    total = 0.0
    for a, sa in enumerate(starts):
        for b in range(a % args.media_rooms, args.media_calls, args.media_rooms):
            if b != a:
                total += max(0.0, min(sa, starts[b]) + args.media_seconds - max(sa, starts[b]))
    return total * PACKETS_PER_S


# ---- sipp and SIPx ----

def run_sipp(sipx, work, ip, rate, total, limit, hold_ms, media, rooms, budget, watch=None):
    """One sipp run; its counters, SIPx's CPU over it and (with `watch`) what watch returned."""
    stat = work / "stat.csv"
    stat.unlink(missing_ok=True)
    cmd = ["sipp", f"127.0.0.1:{sipx.sip_port}", "-sf", str(SCENARIO), "-inf", str(rooms), "-i", ip, "-p", "5060",
           "-mi", ip, "-mp", str(SIPP_MEDIA_PORT), "-d", str(hold_ms), "-set", "media", "1" if media else "0",
           "-r", str(rate), "-m", str(total), "-l", str(limit), "-nostdin", "-recv_timeout", "10000",
           "-timeout", f"{int(budget)}s", "-timeout_error", "-trace_stat", "-stf", str(stat), "-fd", "1",
           "-buff_size", "8388608"]
    log = open(work / "sipp.log", "a")  # noqa: SIM115 (closed below, sipp writes to it meanwhile)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = sipx.metrics()
    # SIPx's SIP socket lives on; sipp's is new each run (so its count starts at 0).
    drops = udp_drops("127.0.0.1", sipx.sip_port)
    cpu0, t0 = sipx.threads(), time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=log)
    try:
        peak = watch(proc, t0) if watch else None
        proc.wait(timeout=budget + 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    elapsed = time.monotonic() - t0
    cpu = cpu_of(cpu0, sipx.threads(), elapsed)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    sipp_cpu = 100 * (used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime) / elapsed
    s = read_stat(stat)
    problems = []
    if proc.returncode != 0:
        problems.append(f"sipp exited {proc.returncode}")
    if s["ok"] != total:
        problems.append(f"{total - s['ok']} calls did not succeed")
    for key, what in (("FailedUnexpectedMessage(C)", "unexpected messages"),
                      ("FailedMaxUDPRetrans(C)", "retransmission timeouts"), ("FailedCallRejected(C)", "rejected"),
                      ("FailedTimeoutOnRecv(C)", "answers that never came")):
        if s["raw"].get(key, 0):
            problems.append(f"{s['raw'][key]} {what}")
    # Not failures: SIPx's answers that came late enough for retransmissions cross them (a 200
    # retransmitted after sipp's call ended lands outside any call).
    notes = [f"{s['raw'][k]} {what}" for k, what in (("OutOfCallMsgs(C)", "messages outside any call"),
                                                       ("DeadCallMsgs(C)", "messages for ended calls"))
             if s["raw"].get(k, 0)]
    drops = udp_drops("127.0.0.1", sipx.sip_port) - drops
    if drops:
        notes.append(f"{drops} datagrams dropped on SIPx's full SIP socket")
    return dict(s, cpu=cpu, sipp_cpu=sipp_cpu, elapsed=elapsed, problems=problems, notes=notes, peak=peak,
                before=before)


def read_stat(path):
    """sipp's -trace_stat CSV (a row a second): cumulative counters, the mean INVITE->200 time
    and the rate at which sipp created calls: up to the last row before it had created them all
    (its last second is partial: sipp creates a second's calls early in that second)."""
    rows = [r.rstrip(";").split(";") for r in path.read_text().splitlines() if r.strip()] if path.exists() else []
    if len(rows) < 2:
        return {"created": 0, "ok": 0, "failed": 0, "retrans": 0, "setup_ms": 0.0, "offered": 0.0, "raw": {}}
    head = rows[0]
    table = [dict(zip(head, r, strict=False)) for r in rows[1:]]
    last = table[-1]

    def num(row, key):
        try:
            return int(row.get(key, "0"))
        except ValueError:
            return 0

    created = num(last, "TotalCallCreated")
    offered = 0.0
    prev_t, prev_n = 0.0, 0
    start = epoch_of(table[0].get("StartTime", ""))
    for row in table:
        t, n = epoch_of(row.get("CurrentTime", "")) - start, num(row, "TotalCallCreated")
        if n >= created:
            # All created within the first second: the rate is not measurable, take it as kept.
            offered = prev_n / prev_t if prev_t >= 1 else float("inf")
            break
        prev_t, prev_n = t, n
    raw = {k: num(last, k) for k in head if k.endswith("(C)") and num(last, k)}
    return {"created": created, "ok": num(last, "SuccessfulCall(C)"), "failed": num(last, "FailedCall(C)"),
            "retrans": num(last, "Retransmissions(C)"), "setup_ms": 1000 * seconds_of(last.get("ResponseTime1(C)", "")),
            "offered": offered, "raw": raw}


def epoch_of(text):
    """The Unix time at the end of sipp's "date<TAB>time<TAB>epoch" stamps."""
    try:
        return float(text.split("\t")[-1])
    except ValueError:
        return 0.0


def seconds_of(text):
    """sipp's hh:mm:ss:usec (or hh:mm:ss) as seconds."""
    parts = text.split(":")
    try:
        h, m, s = int(parts[0]), int(parts[1]), int(parts[2])
        return h * 3600 + m * 60 + s + (int(parts[3]) / 1e6 if len(parts) > 3 else 0)
    except (IndexError, ValueError):
        return 0.0


def cpu_of(before, after, seconds):
    """SIPx's CPU between two thread readings, as % of one core: all, media threads, rooms thread."""
    def group(prefix):
        return sum(v - before.get(k, 0) for k, v in after.items() if k.startswith(prefix))

    return {"process": 100 * (after["(process)"] - before["(process)"]) / seconds,
            "media": 100 * group("sipx-media") / seconds, "rooms": 100 * group("sipx-rooms") / seconds}


def cpu_text(cpu):
    return f"{cpu['process']:.0f} % (media threads {cpu['media']:.0f} %, rooms {cpu['rooms']:.0f} %)"


def settle(sipx, step, total):
    """After a sipp run: waits until SIPx holds nothing, then checks the run from SIPx's side:
    each call was one INVITE and one BYE there. sipp matches responses by Call-ID alone, so under
    load a retransmitted 200 to the INVITE can pass for the BYE's answer in sipp's count.
    Returns the metrics then and the problems found."""
    left = wait_idle(sipx)
    after = sipx.metrics()
    problems = [f"{v:.0f} {k} left in SIPx" for k, v in left.items() if v]
    for method in ("INVITE", "BYE"):
        key = f'sipx_sip_requests_total{{method="{method}"}}'
        seen = after.get(key, 0) - step["before"].get(key, 0)
        if seen != total:
            problems.append(f"SIPx saw {seen:.0f} {method}s for {total} calls")
    return after, problems


def udp_drops(ip, port):
    """Datagrams the kernel dropped for the UDP socket bound to ip:port (its receive buffer was
    full), from /proc/net/udp; 0 when there is no such socket."""
    want = f"{socket.htonl(int(ipaddress.IPv4Address(ip))):08X}:{port:04X}"
    for line in pathlib.Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) > 12 and fields[1] == want:
            return int(fields[-1])
    return 0


def wait_idle(sipx):
    """Polls /metrics (bounded) until SIPx holds no call, media leg or room participant; returns
    what is left. A count that stays above 0 once sipp's calls all ended is a leak."""
    keys = ("sipx_calls", "sipx_media_legs", "sipx_rooms_participants")
    deadline = time.monotonic() + IDLE_TIMEOUT
    while True:
        m = sipx.metrics()
        left = {k: m.get(k, 0) for k in keys}
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


# ---- the summary ----

def summary(args, best, stop, media, long_hold):
    print()
    print("Summary (shared 2-core machine: figures are noisy)")
    if args.only != "media":
        verdict = "meets" if (best or 0) >= TARGET_CPS else "misses"
        print(f"  signalling only: highest rate with 0 failures {best or 0} calls/s "
              f"(target >= {TARGET_CPS}: {verdict}); ladder {[r for r in LADDER if r <= args.max_rate]}, "
              f"{args.seconds} s per step, {args.hold_ms} ms hold" + (f"; stopped at {stop}" if stop else ""))
        if long_hold:
            long_best, long_stop = long_hold
            print(f"  signalling only, calls held {args.long_hold_ms} ms (context, not judged): highest rate with "
                  f"0 failures {long_best or 0} calls/s" + (f"; stopped at {long_stop}" if long_stop else ""))
    if args.only != "signalling" and media:
        s = media["step"]
        w = f", SIPx CPU with all up {media['window']['process']:.0f} %" if media["window"] else ""
        print(f"  with media: {args.media_calls} calls at {args.media_rate}/s, {s['peak']:.0f} up at once, "
              f"{s['ok']} succeeded, {s['failed']} failed{w} (target {TARGET_MEDIA_CALLS} concurrent at "
              f"{TARGET_MEDIA_RATE} calls/s, 0 failures: {'meets' if media['ok'] else 'misses'}); "
              f"{100 * media['from'] / media['heard']:.1f} % of the RTP played while others listened reached the rooms "
              f"({'ok' if media['media_ok'] else 'FAIL: under 95 %'}), {media['skips']:.0f} media clock skips")


if __name__ == "__main__":
    sys.exit(main())
