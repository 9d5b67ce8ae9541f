"""The API's connections are bounded: clients that open connections and send nothing, or never
finish their headers, cannot take the file descriptors every other client needs. Addresses
127.0.0.236 (the silent client) and 127.0.0.1 (everyone else)."""

import json
import signal
import socket
import time

import requests

from conftest import Server, auth_header, create_app
from test_webhooks import EventStream, Receiver, send_test_event

SILENT = "127.0.0.236"


def half_request(addr):
    """A connection from SILENT that starts a request and never finishes its headers."""
    s = socket.create_connection(addr, timeout=10, source_address=(SILENT, 0))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    return s


def closed_by_server(s, timeout):
    """Reads until the server closes the connection; False if it is still open at `timeout`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        s.settimeout(left)
        try:
            if not s.recv(4096):
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_silent_api_connections_are_bounded_per_source_and_timed_out(tmp_path):
    s = Server(tmp_path / "data", env={"SIPX_HTTP__MAX_CONNECTIONS_PER_SOURCE": "4",
                                       "SIPX_HTTP__HEADER_TIMEOUT_SECS": "4"}).start()
    held = []
    try:
        creds = create_app(s)
        # An event stream outlives the header timeout: it is a response, not a wait for headers.
        stream = EventStream(s, creds)
        opened = time.monotonic()
        host, port = s.base.removeprefix("http://").rsplit(":", 1)
        addr = (host, int(port))
        # Three that start a request and never finish it, one that never says anything.
        held = [half_request(addr) for _ in range(3)]
        held.append(socket.create_connection(addr, timeout=10, source_address=(SILENT, 0)))
        # The fifth from the same address is closed at once, long before the header timeout.
        extra = half_request(addr)
        held.append(extra)
        assert closed_by_server(extra, 2.5), "a connection past the per-source bound stayed open"
        # Other clients are served meanwhile.
        assert requests.get(s.url("/healthz"), timeout=5).status_code == 200
        # The four that never finished their headers (or never began) are closed once the
        # timeout is up.
        for conn in held[:4]:
            assert closed_by_server(conn, 8), "a connection that never finished its headers stayed open"
        assert time.monotonic() - opened > 4
        # The address may connect again, and the stream still carries events.
        fresh = socket.create_connection(addr, timeout=5, source_address=(SILENT, 0))
        held.append(fresh)
        fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert fresh.recv(64).startswith(b"HTTP/1.1 200"), "the address was not served again"
        receiver = Receiver(creds[1])
        try:
            sent = send_test_event(s, creds, url=receiver.url)
            assert stream.next_event()["id"] == sent["event_id"]
        finally:
            receiver.close()
            stream.close()
        metrics = requests.get(s.url("/metrics"), timeout=5).text
        assert "sipx_http_connections_refused_total 1" in metrics, metrics[:3000]
    finally:
        for conn in held:
            conn.close()
        s.stop()


def test_unknown_methods_share_one_metric_series(server):
    """Any token is a valid HTTP method: each must not become a series of its own on /metrics."""
    for n in range(3):
        r = requests.request(f"PROBE{n}XYZ", server.url("/v1/rooms"), timeout=5)
        assert 400 <= r.status_code < 500, r.status_code
    metrics = requests.get(server.url("/metrics"), timeout=5).text
    assert "PROBE0XYZ" not in metrics and 'method="other"' in metrics, metrics[:3000]


def test_open_websockets_count_against_the_bound(tmp_path):
    """A WebSocket keeps its connection's place for as long as it is open: hyper hands the
    socket over at the upgrade, the place must go with it."""
    import asyncio
    import websockets

    s = Server(tmp_path / "data", env={"SIPX_HTTP__MAX_CONNECTIONS_PER_SOURCE": "3"}).start()
    try:
        creds = create_app(s)
        host, port = s.base.removeprefix("http://").rsplit(":", 1)
        addr = (host, int(port))
        tokens = []
        for n in range(3):
            r = requests.post(s.url("/v1/rooms/bounded/tokens"), headers=auth_header(*creds[:2]),
                              json={"identity": f"web-{n}"}, timeout=5)
            assert r.status_code == 201, r.text
            tokens.append(r.json()["token"])

        async def run():
            sockets = []
            try:
                for token in tokens:
                    raw = socket.create_connection(addr, timeout=5, source_address=(SILENT, 0))
                    ws = await websockets.connect(f"ws://{host}:{port}/v1/rtc?token={token}", sock=raw,
                                                  open_timeout=5)
                    sockets.append(ws)
                    assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "welcome"
                # Three sockets open: a fourth connection from the address is closed at once.
                extra = socket.create_connection(addr, timeout=5, source_address=(SILENT, 0))
                try:
                    return closed_by_server(extra, 2.5)
                finally:
                    extra.close()
            finally:
                for ws in sockets:
                    await ws.close()
        assert asyncio.run(run()), "open WebSockets did not count"
    finally:
        s.stop()


def test_a_stop_does_not_wait_for_connections_that_said_nothing(tmp_path):
    """With nothing live, SIGTERM stops at once although a client holds a connection that has
    sent nothing, over HTTP and over HTTPS (one still in its TLS handshake): such a connection
    has no request to finish."""
    for tls in (False, True):
        args = ("--dev-tls",) if tls else ()
        s = Server(tmp_path / f"data-{tls}", *args, env={"SIPX_SHUTDOWN__DRAIN_TIMEOUT_SECS": "10"}).start()
        host, port = s.base.split("://", 1)[1].rsplit(":", 1)
        silent = socket.create_connection((host, int(port)), timeout=5, source_address=(SILENT, 0))
        try:
            # The server has accepted it: the health check after it is answered.
            requests.get(s.url("/healthz"), timeout=5, verify=False)
            started = time.monotonic()
            assert s.stop(timeout=15) == 0
            took = time.monotonic() - started
            assert took < 3, f"the stop waited {took:.1f} s for a silent connection (tls={tls})"
        finally:
            silent.close()


def test_room_sockets_are_told_when_the_server_stops(tmp_path):
    """At the stop (no call live, so the drain ends at once) a browser's signalling socket gets
    the `closed` message with reason `stopping` and a going-away close frame (1001), instead of
    a connection that just drops; the stop does not wait for the client."""
    import asyncio
    import websockets

    s = Server(tmp_path / "data", env={"SIPX_SHUTDOWN__DRAIN_TIMEOUT_SECS": "10"}).start()
    try:
        creds = create_app(s)
        r = requests.post(s.url("/v1/rooms/stopping/tokens"), headers=auth_header(*creds[:2]),
                          json={"identity": "web-1"}, timeout=5)
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        ws_url = s.base.replace("http://", "ws://") + f"/v1/rtc?token={token}"

        async def run():
            async with websockets.connect(ws_url, open_timeout=5) as ws:
                assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "welcome"
                started = time.monotonic()
                s.proc.send_signal(signal.SIGTERM)
                last = json.loads(await asyncio.wait_for(ws.recv(), 10))
                await asyncio.wait_for(ws.wait_closed(), 10)
                return last, ws.close_code, ws.close_reason, time.monotonic() - started

        last, code, reason, took = asyncio.run(run())
        assert last == {"type": "closed", "reason": "stopping"}, last
        assert (code, reason) == (1001, "server stopping")
        assert took < 5, f"the socket was closed {took:.1f} s after SIGTERM"
        assert s.proc.wait(10) == 0
    finally:
        s.stop()
