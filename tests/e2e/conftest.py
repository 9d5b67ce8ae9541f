"""End-to-end harness: runs the real `sipx` binary on loopback with a throwaway data directory.

Waits are on events (the server's own "listening" log line, process exit), each bounded by a
deadline; nothing sleeps to synchronise.
"""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import queue
import signal
import subprocess
import threading
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIPX = pathlib.Path(os.environ.get("E2E_SIPX_BINARY", ROOT / "target" / "debug" / "sipx"))
ARTIFACTS = ROOT / "tests" / "e2e" / ".artifacts"
ADMIN_KEY = "operator-key"
ADMIN_SECRET = "operator-secret-for-tests"


def sign(key: str, secret: str, expire_at: int) -> str:
    mac = hmac.new(secret.encode(), (key + str(expire_at)).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def auth_header(key: str, secret: str, ttl: int = 3600) -> dict:
    exp = int(time.time()) + ttl
    return {"Authorization": f"Sipx api_key={key}, expire_at={exp}, signature={sign(key, secret, exp)}"}


def auth_query(key: str, secret: str, ttl: int = 600) -> dict:
    exp = int(time.time()) + ttl
    return {"api_key": key, "expire_at": str(exp), "signature": sign(key, secret, exp)}


class Server:
    """One `sipx serve` process. Its stderr (JSON logs) is collected line by line."""

    def __init__(self, data_dir, *args, env=None):
        self.data_dir = pathlib.Path(data_dir)
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update({"SIPX_ADMIN__API_KEY": ADMIN_KEY, "SIPX_ADMIN__API_SECRET": ADMIN_SECRET})
        self.env.pop("RUST_LOG", None)
        self.env.update({"SIPX_SIP__UDP": '["127.0.0.1:0"]', "SIPX_SIP__TCP": '["127.0.0.1:0"]',
                         "SIPX_ROOMS__UDP": "127.0.0.1:0",
                         # A stop waits for the calls still up (the drain) at most this long; a
                         # test that ends with a call up need not wait the default 30 s.
                         "SIPX_SHUTDOWN__DRAIN_TIMEOUT_SECS": "3"})
        self.env.update(env or {})
        self.proc = None
        self.lines = []
        self._new_line = threading.Condition()
        self.base = None
        # The command that runs `sipx serve`; the README's run command takes the same arguments.
        self.start_command = None

    def start(self, timeout=30):
        if self.start_command:
            cmd = [*self.start_command, "--data-dir", str(self.data_dir), "--log-format", "json"]
        else:
            cmd = [str(SIPX), "--data-dir", str(self.data_dir), "--log-format", "json", "serve"]
        if not any(a.startswith("--listen") for a in self.args):
            cmd += ["--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(cmd + self.args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        event = self.wait_log(lambda e: e.get("message") == "HTTP API listening", timeout)
        self.base = event["url"].rstrip("/")
        return self

    def _read(self):
        for line in self.proc.stderr:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def events(self):
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line})
        return out

    def wait_log(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                for e in self.events():
                    if predicate(e):
                        return e
                if self.proc.poll() is not None and not any(predicate(e) for e in self.events()):
                    # Let the reader drain what is left, then give up.
                    self._new_line.wait(0.2)
                    if not any(predicate(e) for e in self.events()):
                        raise AssertionError(f"sipx exited ({self.proc.returncode}):\n" + "\n".join(self.lines))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for a log line:\n" + "\n".join(self.lines[-30:]))
                self._new_line.wait(left)

    def url(self, path):
        return self.base + path

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def server(data_dir):
    s = Server(data_dir).start()
    yield s
    s.stop(signal.SIGKILL)


def create_app(server, name="test-app"):
    r = requests.post(server.url("/v1/apps"), json={"name": name},
                      headers=auth_header(ADMIN_KEY, ADMIN_SECRET), timeout=10)
    assert r.status_code == 201, r.text
    body = r.json()
    return body["app"]["api_key"], body["api_secret"], body["app"]["id"]


def run_cli(data_dir, *args, env=None, check=True):
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run([str(SIPX), "--data-dir", str(data_dir), *args], capture_output=True, text=True,
                       timeout=60, env=full_env)
    if check:
        assert p.returncode == 0, p.stderr
    return p


PEERS = ROOT / "tests" / "e2e" / "peers"


def sip_addr(server, transport="udp"):
    """The address a running server's SIP listener got (it logs each one)."""
    want = f"SIP listening on {transport.upper()}"
    event = server.wait_log(lambda e: e.get("message") == want, 10)
    host, port = event["addr"].rsplit(":", 1)
    return host, int(port)


def run_sipp(scenario, target, local_ip, *args, timeout=30, cwd=None):
    """Runs sipp once against `target` from `local_ip` (each test uses its own 127.0.0.x, so
    ports never clash and a ban in one test cannot touch another)."""
    cmd = ["sipp", f"{target[0]}:{target[1]}", "-sf", str(PEERS / "sipp" / scenario), "-i", local_ip,
           "-p", "5060", "-m", "1", "-nostdin", "-recv_timeout", "3000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)


SIP_ENV = {"SIPX_SIP__UDP": '["127.0.0.1:0"]', "SIPX_SIP__TCP": '["127.0.0.1:0"]'}


class Kamailio:
    """A Kamailio with one of tests/e2e/peers/kamailio/*.cfg, on a loopback address."""

    def __init__(self, cfg, listen, rundir, **defines):
        self.listen, self.rundir = listen, pathlib.Path(rundir)
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.ctl = f"unix:{self.rundir}/ctl"
        args = ["kamailio", "-f", str(PEERS / "kamailio" / cfg), "-A", f"LISTEN=udp:{listen[0]}:{listen[1]}",
                "-A", f'CTLSOCK="{self.ctl}"', "-DD", "-E", "-m", "32", "-M", "8", "-Y", str(self.rundir)]
        for k, v in defines.items():
            args += ["-A", f"{k}={v}"]
        self.log = open(self.rundir / "kamailio.log", "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self._await_answer()

    def _await_answer(self, timeout=10):
        """Ready once it answers an OPTIONS (whatever the status)."""
        import socket
        probe = (f"OPTIONS sip:{self.listen[0]} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKprobe\r\n"
                 "Max-Forwards: 70\r\nTo: <sip:probe@x>\r\nFrom: <sip:probe@x>;tag=1\r\nCall-ID: probe\r\n"
                 "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            s.settimeout(0.2)
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, (self.rundir / "kamailio.log").read_text()
                s.sendto(probe.replace(b"127.0.0.1:1", f"127.0.0.1:{s.getsockname()[1]}".encode()), self.listen)
                try:
                    s.recvfrom(4096)
                    return
                except OSError:
                    continue
        raise AssertionError("kamailio did not answer:\n" + (self.rundir / "kamailio.log").read_text())

    def rpc(self, *args):
        return subprocess.run(["kamcmd", "-s", self.ctl, *args], capture_output=True, text=True, timeout=10).stdout

    def log_text(self):
        self.log.flush()
        return (self.rundir / "kamailio.log").read_text()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def sip_transaction(target, local_ip, method, *, ua="sipx-tests", extra_headers="", user="1000", to_user=None,
                    from_user="caller"):
    """Sends one request for `user` (To: `to_user`, by default the same) from `from_user` over
    UDP from `local_ip` and returns the final status (or None when nothing final arrives within
    3 s); ACKs a non-2xx final answer to an INVITE."""
    import random
    import socket
    branch = f"z9hG4bK{random.getrandbits(48):x}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((local_ip, 0))
        port = s.getsockname()[1]
        head = (f"{method} sip:{user}@{target[0]}:{target[1]} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local_ip}:{port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\nTo: <sip:{to_user or user}@{target[0]}>\r\n"
                f"From: <sip:{from_user}@{local_ip}>;tag=t{branch[-6:]}\r\nCall-ID: {branch}@{local_ip}\r\n"
                f"CSeq: 1 {method}\r\nContact: <sip:caller@{local_ip}:{port}>\r\nUser-Agent: {ua}\r\n"
                f"{extra_headers}Content-Length: 0\r\n\r\n")
        s.sendto(head.encode(), target)
        s.settimeout(3)
        try:
            while True:
                data = s.recv(65535).decode(errors="replace")
                status = int(data.split(" ", 2)[1])
                if status >= 200:
                    if method == "INVITE" and status >= 300:
                        to = next(l for l in data.split("\r\n") if l.lower().startswith("to:"))
                        ack = head.replace(f"{method} sip:", "ACK sip:", 1).replace(f"CSeq: 1 {method}", "CSeq: 1 ACK")
                        ack = "\r\n".join(to if l.lower().startswith("to:") else l for l in ack.split("\r\n"))
                        s.sendto(ack.encode(), target)
                    return status
        except socket.timeout:
            return None
