"""The harness of bench/rooms.py: the sipx process and its threads' CPU, the load-generator
processes (bench/rooms_webrtc.py, bench/rooms_phone.py) and measurement windows."""

import json
import os
import pathlib
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from common import free_port

BENCH = pathlib.Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")
OP_KEY, OP_SECRET = "benchop", "benchop-secret"


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

    def __init__(self, binary, work, extra_env=None):
        self.http, self.rooms_port, self.sip_port = free_port(), free_port(socket.SOCK_DGRAM), free_port(
            socket.SOCK_DGRAM)
        env = dict(os.environ, SIPX_ADMIN__API_KEY=OP_KEY, SIPX_ADMIN__API_SECRET=OP_SECRET,
                   SIPX_SIP__UDP=f'["127.0.0.1:{self.sip_port}"]', SIPX_SIP__TCP="[]",
                   SIPX_ROOMS__UDP=f"127.0.0.1:{self.rooms_port}", SIPX_ROOMS__MAX_PARTICIPANTS="200",
                   # Warnings only, but the line that says a new trunk is in force.
                   SIPX_LOG__FILTER="warn,sipx_server::app=info,sipx_server::sip::core::trunks=info")
        env.update(extra_env or {})
        env.pop("RUST_LOG", None)
        self.proc = subprocess.Popen([str(binary), "--data-dir", str(work / "data"), "--log-format", "json", "serve",
                                      "--listen", f"127.0.0.1:{self.http}"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.log = open(work / "sipx.log", "w")  # noqa: SIM115 (written until sipx exits)
        threading.Thread(target=self._read, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.http}"
        try:
            self.wait_log("HTTP API listening", 30)
        except SystemExit:
            self.stop()
            raise

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

    def metrics(self):
        """GET /metrics as {"name{labels}": value} (Prometheus text; the API serves it unsigned)."""
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    continue
        return out

    def mute(self, tenant, room, identity, muted):
        """Mutes (or unmutes) a participant's audio through the API: the rooms thread has
        applied it when this returns."""
        self.api("POST", f"/v1/rooms/{room}/participants/{identity}/mute", tenant, {"muted": muted})

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


def window(sipx, workers, seconds):
    """One measurement window: CPU seconds per group of sipx threads and of the load generators,
    the rooms thread's wake-ups, and the workers' reports (packets, decoding) for the window."""
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

    def group(prefix):
        return sum(v for k, v in cpu.items() if k.startswith(prefix))

    return {"elapsed": elapsed, "rooms": group("sipx-rooms"), "media": group("sipx-media"),
            "process": cpu["(process)"], "wakeups": cpu["(rooms wake-ups)"],
            "workers": sum(r["cpu"] for r in reports) - sum(marks), "reports": reports}


def summary(windows):
    """The windows and, per figure, the median over them as a rate (CPU as a fraction of one
    core, wake-ups per second): other work on the machine comes and goes, and the median of a
    few windows moves less than one long window."""
    m = {"windows": windows}
    for key in ("rooms", "media", "process", "wakeups", "workers"):
        m[key] = statistics.median(w[key] / w["elapsed"] for w in windows)
    return m


def measure(sipx, workers, seconds, repeat):
    """`repeat` windows in a row, summarised."""
    return summary([window(sipx, workers, seconds) for _ in range(repeat)])


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


class Checks:
    def __init__(self):
        self.failed = []

    def check(self, ok, what):
        if not ok:
            self.failed.append(what)
            print(f"  FAIL {what}", flush=True)


def token_url(sipx, tenant, room, identity, **extra):
    """A join token for `identity` in `room`, as the signalling WebSocket's URL."""
    t = sipx.api("POST", f"/v1/rooms/{room}/tokens", tenant, {"identity": identity, **extra})
    return sipx.base.replace("http://", "ws://", 1) + t["url"] + "?token=" + t["token"]


def load():
    return "load average " + " ".join(pathlib.Path("/proc/loadavg").read_text().split()[:3])
