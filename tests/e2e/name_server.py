"""A real name server for the tests: dnsmasq (Debian's dnsmasq-base) on a loopback address,
answering only for the records a test gives it (no upstream, no /etc/hosts), so SIPx's RFC 3263
lookups (SRV, then the targets' A records) meet real DNS."""

import contextlib
import socket
import struct
import subprocess

import rooms


def _query(name, qtype):
    """A minimal DNS query for `name` (recursion desired)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", 0x5150, 0x0100, 1, 0, 0, 0) + labels + struct.pack(">HH", qtype, 1)


def answers(addr, name, qtype=33):
    """The number of answer records `addr` gives for `name` (33: SRV); None without a reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        try:
            s.sendto(_query(name, qtype), addr)
            reply = s.recv(4096)
        except OSError:
            return None
    return struct.unpack(">H", reply[6:8])[0] if len(reply) >= 12 else None


@contextlib.contextmanager
def dnsmasq(ip, port, srv=(), hosts=(), log=None):
    """dnsmasq on ip:port. `srv`: (name, target, port, priority, weight) records; `hosts`:
    (name, ip) A records; `log`: a file for the queries it answered. Returns once it answers
    the first SRV name (or the first host)."""
    cmd = ["dnsmasq", "--keep-in-foreground", "--no-daemon", "--no-resolv", "--no-hosts", "--no-poll",
           "--bind-interfaces", f"--listen-address={ip}", f"--port={port}", "--pid-file=",
           "--conf-file=/dev/null", "--log-facility=-", "--log-queries", "--user=root"]
    cmd += [f"--srv-host={n},{t},{p},{prio},{w}" for n, t, p, prio, w in srv]
    cmd += [f"--host-record={n},{a}" for n, a in hosts]
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    probe = (srv[0][0], 33) if srv else (hosts[0][0], 1)
    try:
        rooms.wait_until(lambda: proc.poll() is None and answers((ip, port), *probe), timeout=10,
                         what=f"dnsmasq answering on {ip}:{port}")
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        if log:
            out.close()
