#!/usr/bin/env python3
"""SIP registrar benchmark: SIPx against Kamailio, in the same run, on this machine.

Measures, for each server, the highest REGISTER-with-digest rate (one REGISTER, its 401, the
authenticated REGISTER and its 200 = one "call" in sipp's terms) that sipp completes with zero
failures and at no less than 95 % of the offered rate (a server that answers late makes sipp
fall behind without failing: that rate was not served), stepping up a rate ladder; and the same
for OPTIONS. Prints the figures and the
SIPx/Kamailio ratios. The two take turns at each rate of the ladder, so other load on the
machine weighs on both alike. Not a test: it prints, it does not judge.

  .venv/bin/python bench/sip_register.py [--seconds 5] [--users 2000] [--max-rate 20000]

SIPX_BINARY picks another SIPx binary than target/release/sipx (a build to compare with).

Both servers get the same work: digest (MD5, qop=auth) checked against a per-user password,
bindings kept. Kamailio keeps them in memory only; SIPx commits them to SQLite (grouped)
before answering 200. SIPx logs at warn level here, Kamailio at errors only.
"""

import argparse
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from common import free_port, signed

ROOT = pathlib.Path(__file__).resolve().parents[1]
PEERS = ROOT / "tests" / "e2e" / "peers"
SIPX = pathlib.Path(os.environ.get("SIPX_BINARY", ROOT / "target" / "release" / "sipx"))
PASSWORD = "benchpw-123"
# A step counts only if sipp kept at least this share of the offered rate.
KEPT_UP = 0.95
LADDER = [500, 1000, 2000, 3000, 4000, 5000, 6000, 6500, 7000, 7500, 8000, 9000, 10000, 11000, 12000, 13000, 14000, 15000,
          17500, 20000]


def api(base, method, path, header, body=None):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": header,
                                 "Content-Type": "application/json"},
                                 data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def wait_udp(addr, timeout=15):
    probe = (f"OPTIONS sip:{addr[0]} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKwait\r\nMax-Forwards: 70\r\n"
             "To: <sip:w@x>\r\nFrom: <sip:w@x>;tag=1\r\nCall-ID: wait\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.2)
        probe = probe.replace("127.0.0.1:9", f"127.0.0.1:{s.getsockname()[1]}")
        while time.monotonic() < deadline:
            s.sendto(probe.encode(), addr)
            try:
                s.recvfrom(4096)
                return
            except OSError:
                pass
    raise SystemExit(f"nothing answers on {addr}")


def sipp(scenario, target, local_ip, rate, seconds, workdir, users_csv=None):
    """One sipp run at `rate` per second for `seconds`; returns (ok, successful, failed, elapsed)."""
    total = rate * seconds
    cmd = ["sipp", f"{target[0]}:{target[1]}", "-sf", str(PEERS / "sipp" / scenario), "-i", local_ip,
           "-p", "5060", "-r", str(rate), "-m", str(total), "-l", str(max(rate, 100)), "-nostdin",
           "-recv_timeout", "5000", "-timeout", f"{seconds * 4 + 20}s", "-timeout_error", "-trace_stat",
           "-stf", "stat.csv", "-fd", "600", "-buff_size", "8388608"]
    if users_csv:
        cmd += ["-inf", str(users_csv), "-set", "expires", "600"]
    stat = pathlib.Path(workdir) / "stat.csv"
    stat.unlink(missing_ok=True)
    start = time.monotonic()
    p = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    ok_calls = failed = 0
    if stat.exists():
        rows = [r.split(";") for r in stat.read_text().splitlines() if r.strip()]
        head, last = rows[0], rows[-1]
        ok_calls = int(last[head.index("SuccessfulCall(C)")])
        failed = int(last[head.index("FailedCall(C)")])
    return p.returncode == 0 and failed == 0 and ok_calls == total, ok_calls, failed, elapsed


def ladders(runs, scenario, seconds, max_rate, workdir, users_csv=None):
    """Steps both servers up the ladder in turns (SIPx at a rate, then Kamailio at the same
    rate), so that other load on the machine falls on both alike; each stops at its first
    failed step. `runs` maps a name to (target, local_ip). Returns {name: best rate}."""
    best = {name: None for name in runs}
    going = set(runs)
    for rate in [r for r in LADDER if r <= max_rate]:
        for name, (target, local_ip) in runs.items():
            if name not in going:
                continue
            ok, done, failed, elapsed = sipp(scenario, target, local_ip, rate, seconds, workdir, users_csv)
            achieved = done / elapsed if elapsed else 0
            kept_up = achieved >= KEPT_UP * rate
            ok = ok and kept_up
            print(f"  {name:9} {scenario:18} rate {rate:6}/s: {'ok  ' if ok else 'FAIL'} "
                  f"{done} done, {failed} failed, {achieved:7.0f}/s achieved over {elapsed:.1f} s"
                  + ("" if kept_up else f" (under {100 * KEPT_UP:.0f} % of the rate)"), flush=True)
            if ok:
                best[name] = rate
            else:
                going.discard(name)
        if not going:
            break
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--max-rate", type=int, default=20000)
    args = ap.parse_args()
    for tool in ("sipp", "kamailio"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run scripts/test once (it installs the peers)")
    if not SIPX.exists():
        raise SystemExit("build first: cargo build --release -p sipx")

    work = pathlib.Path(tempfile.mkdtemp(prefix="sipx-bench-"))
    users = work / "users.csv"
    users.write_text("SEQUENTIAL\n" + "".join(
        f"bench{i};sipx;[authentication username=bench{i} password={PASSWORD}]\n" for i in range(args.users)))

    # SIPx
    http = free_port()
    # SIPx reads every SIPX_ variable as configuration: the script's own one is not for it.
    env = {k: v for k, v in os.environ.items() if k != "SIPX_BINARY"}
    env.update(SIPX_ADMIN__API_KEY="benchop", SIPX_ADMIN__API_SECRET="benchop-secret",
               SIPX_SIP__UDP='["127.0.0.50:5060"]', SIPX_SIP__TCP="[]", SIPX_LOG__FILTER="warn",
               SIPX_SIP__MAX_AUTH_FAILURES="1000000", SIPX_SIP__RATE_LIMIT_PER_SEC="0")
    sipx = subprocess.Popen([str(SIPX), "--data-dir", str(work / "data"), "serve", "--listen", f"127.0.0.1:{http}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "sipx.log", "w"))
    kam = None
    try:
        wait_udp(("127.0.0.50", 5060))
        base = f"http://127.0.0.1:{http}"
        app = api(base, "POST", "/v1/apps", signed("benchop", "benchop-secret"), {"name": "bench"})
        tenant = signed(app["app"]["api_key"], app["api_secret"])
        t0 = time.monotonic()
        for i in range(args.users):
            api(base, "POST", "/v1/sip-accounts", tenant,
                {"username": f"bench{i}", "password": PASSWORD, "max_bindings": 10})
        print(f"created {args.users} SIP accounts in {time.monotonic() - t0:.1f} s", flush=True)

        rundir = work / "kam"
        rundir.mkdir()
        kam = subprocess.Popen(["kamailio", "-f", str(PEERS / "kamailio" / "bench-registrar.cfg"), "-A",
                                "LISTEN=udp:127.0.0.51:5060", "-A", f'CTLSOCK="unix:{rundir}/ctl"', "-DD", "-E",
                                "-m", "256", "-M", "16", "-Y", str(rundir)],
                               stdout=subprocess.DEVNULL, stderr=open(work / "kamailio.log", "w"))
        wait_udp(("127.0.0.51", 5060))

        print(f"REGISTER with digest, {args.seconds} s per step, {args.users} users "
              "(the servers take turns at each rate):", flush=True)
        reg = ladders({"SIPx": (("127.0.0.50", 5060), "127.0.0.52"),
                       "Kamailio": (("127.0.0.51", 5060), "127.0.0.53")},
                      "register_auth.xml", args.seconds, args.max_rate, work, users)
        print(f"OPTIONS, {args.seconds} s per step:", flush=True)
        opt = ladders({"SIPx": (("127.0.0.50", 5060), "127.0.0.54"),
                       "Kamailio": (("127.0.0.51", 5060), "127.0.0.55")},
                      "options.xml", args.seconds, args.max_rate, work)
        reg_sipx, reg_kam = reg["SIPx"], reg["Kamailio"]
        opt_sipx, opt_kam = opt["SIPx"], opt["Kamailio"]
    finally:
        sipx.terminate()
        if kam:
            kam.terminate()
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "n/a"  # noqa: E731
    print()
    print(f"REGISTER+digest at 0 failures: SIPx {reg_sipx}/s, Kamailio {reg_kam}/s, ratio {ratio(reg_sipx, reg_kam)}")
    print(f"OPTIONS at 0 failures:         SIPx {opt_sipx}/s, Kamailio {opt_kam}/s, ratio {ratio(opt_sipx, opt_kam)}")
    print(f"(ladder {LADDER}; sipp's own ceiling bounds both)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
