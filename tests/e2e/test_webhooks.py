"""Webhooks and the event stream against the real binary: a real HTTP receiver on loopback checks
every signature with the application's secret; deliveries are retried while it is down and
succeed when it returns; the delivery log shows each attempt; `GET /v1/events` streams the
caller's events only.

Waits are bounded: on the receiver's queue, on the stream's queue, or polling the delivery log
(the state an attempt leaves is only visible there).
"""

import hashlib
import hmac
import http.server
import json
import queue
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import Server, auth_header, auth_query, create_app

# Retries in tenths of a second, so a test runs in seconds.
FAST = {"SIPX_WEBHOOKS__INITIAL_BACKOFF_MS": "100", "SIPX_WEBHOOKS__MAX_BACKOFF_MS": "300"}
REPLAY_WINDOW = 300


def verify(secret: str, header: str, body: bytes) -> bool:
    """What docs/webhooks.md tells receivers to do."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    if abs(time.time() - t) > REPLAY_WINDOW:
        return False
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, parts["v1"])


class Receiver:
    """A webhook receiver: http.server on 127.0.0.1 that checks each request's signature."""

    def __init__(self, secret, port=0):
        self.secret = secret
        self.requests = queue.Queue()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.put({
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "valid": verify(outer.secret, self.headers.get("SIPx-Signature", ""), body),
                })
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def next(self, timeout=10):
        try:
            return self.requests.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the receiver got nothing within {timeout} s") from None

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port():
    """A loopback port nothing listens on (until a receiver takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fast_server(data_dir):
    s = Server(data_dir, env=FAST).start()
    yield s
    s.stop()


def api(server, creds, method, path, **kw):
    return requests.request(method, server.url(path), headers=auth_header(*creds[:2]), timeout=10, **kw)


def delivery(server, creds, delivery_id):
    r = api(server, creds, "GET", f"/v1/webhook-deliveries/{delivery_id}")
    assert r.status_code == 200, r.text
    return r.json()


def await_delivery(server, creds, delivery_id, predicate, what, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        d = delivery(server, creds, delivery_id)
        if predicate(d):
            return d
        if time.monotonic() > deadline:
            raise AssertionError(f"delivery never {what}: {json.dumps(d, indent=1)}")
        time.sleep(0.05)


def send_test_event(server, creds, **body):
    r = api(server, creds, "POST", "/v1/webhooks/test", json=body)
    assert r.status_code == 202, r.text
    return r.json()


def test_test_event_reaches_the_receiver_signed_and_is_logged(fast_server):
    a = create_app(fast_server, "a")
    receiver = Receiver(a[1])
    try:
        r = api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": receiver.url})
        assert r.status_code == 200 and r.json()["webhook_url"] == receiver.url, r.text
        sent = send_test_event(fast_server, a)
        got = receiver.next()
        assert got["valid"], got["headers"]
        event = json.loads(got["body"])
        assert event["id"] == sent["event_id"]
        assert event["type"] == "app.test" and event["app_id"] == a[2] and event["call_id"] is None
        assert set(event) == {"id", "type", "created_at", "app_id", "call_id", "data"}
        assert got["headers"]["sipx-event-id"] == sent["event_id"]
        assert got["headers"]["sipx-delivery-id"] == sent["delivery_id"]
        assert got["headers"]["user-agent"].startswith("sipx/")
        assert got["headers"]["content-type"] == "application/json"

        d = await_delivery(fast_server, a, sent["delivery_id"], lambda d: d["status"] != "pending", "settled")
        assert d["status"] == "delivered" and d["attempt_count"] == 1, d
        assert d["attempts"][0]["http_status"] == 200 and d["attempts"][0]["error"] is None
        assert d["event"] == event
        listed = api(fast_server, a, "GET", "/v1/webhook-deliveries", params={"status": "delivered"}).json()
        assert [x["id"] for x in listed["items"]] == [sent["delivery_id"]]
        # A tampered body would not verify.
        assert not verify(a[1], got["headers"]["sipx-signature"], got["body"] + b" ")
    finally:
        receiver.close()


def test_deliveries_are_retried_while_the_receiver_is_down(fast_server):
    a = create_app(fast_server, "a")
    b = create_app(fast_server, "b")
    port = closed_port()
    url = f"http://127.0.0.1:{port}/hook"
    assert api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": url}).status_code == 200
    sent = send_test_event(fast_server, a)

    d = await_delivery(fast_server, a, sent["delivery_id"], lambda d: d["attempt_count"] >= 2, "retried")
    assert d["status"] == "pending" and d["next_attempt_at"], d
    for attempt in d["attempts"]:
        assert attempt["http_status"] is None and "refused" in attempt["error"].lower(), attempt

    receiver = Receiver(a[1], port)
    try:
        got = receiver.next()
        assert got["valid"] and json.loads(got["body"])["id"] == sent["event_id"]
        d = await_delivery(fast_server, a, sent["delivery_id"], lambda d: d["status"] == "delivered", "delivered")
        assert d["attempt_count"] >= 3 and len(d["attempts"]) == d["attempt_count"], d
        assert [x["n"] for x in d["attempts"]] == list(range(1, d["attempt_count"] + 1))
        assert d["attempts"][-1]["http_status"] == 200
        assert d["next_attempt_at"] is None
    finally:
        receiver.close()

    # Another application sees neither the delivery nor it in its log.
    r = api(fast_server, b, "GET", f"/v1/webhook-deliveries/{sent['delivery_id']}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "urn:sipx:problem:not-found"
    assert api(fast_server, b, "GET", "/v1/webhook-deliveries").json()["items"] == []


def test_bad_webhook_urls_are_422_problems(fast_server):
    a = create_app(fast_server, "a")
    for bad in ["ftp://example.com/x", "https://user:pw@example.com/", "not a url",
                "https://example.com/" + "a" * 2048]:
        r = api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["type"] == "urn:sipx:problem:invalid-body" and body["errors"][0]["field"] == "webhook_url"
    r = api(fast_server, a, "POST", "/v1/webhooks/test", json={})
    assert r.status_code == 422 and "webhook_url" in r.json()["errors"][0]["message"]


def test_pending_deliveries_resume_after_a_restart(data_dir):
    server = Server(data_dir, env=FAST).start()
    try:
        a = create_app(server, "a")
        port = closed_port()
        assert api(server, a, "PATCH", "/v1/app",
                   json={"webhook_url": f"http://127.0.0.1:{port}/hook"}).status_code == 200
        sent = send_test_event(server, a)
        await_delivery(server, a, sent["delivery_id"], lambda d: d["attempt_count"] >= 1, "attempted")
    finally:
        server.kill9()
    receiver = Receiver(a[1], port)
    server = Server(data_dir, env=FAST).start()
    try:
        got = receiver.next()
        assert got["valid"] and got["headers"]["sipx-delivery-id"] == sent["delivery_id"]
        d = await_delivery(server, a, sent["delivery_id"], lambda d: d["status"] == "delivered", "delivered")
        assert d["attempt_count"] >= 2
    finally:
        server.stop()
        receiver.close()


class EventStream:
    """`GET /v1/events`, read by a thread into a queue of frames ({"id", "event", "data"} or
    {"comment"})."""

    def __init__(self, server, creds, **params):
        self.frames = queue.Queue()
        self.response = requests.get(server.url("/v1/events"), params={**auth_query(*creds[:2]), **params},
                                     stream=True, timeout=(5, 60))
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["content-type"] == "text/event-stream"
        # Kept to unblock the reader on close: closing the response alone waits for its read.
        self.sock = self.response.raw.connection.sock
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next() == {"comment": "stream open"}

    def _read(self):
        frame = {}
        try:
            for line in self.response.iter_lines(decode_unicode=True):
                if line == "":
                    if frame:
                        self.frames.put(frame)
                    frame = {}
                elif line.startswith(":"):
                    frame["comment"] = line[1:].strip()
                else:
                    field, _, value = line.partition(":")
                    frame[field] = value.removeprefix(" ")
        except (requests.exceptions.RequestException, AttributeError, ValueError):
            pass  # the test closed the stream under the reader
        self.frames.put({"end": True})

    def next(self, timeout=10):
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no frame within {timeout} s") from None

    def next_event(self, timeout=10):
        while True:
            frame = self.next(timeout)
            if "event" in frame:
                return frame

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.response.close()


def test_event_stream_carries_the_callers_events_only(fast_server):
    a = create_app(fast_server, "a")
    b = create_app(fast_server, "b")
    receiver = Receiver(a[1])
    streams = []
    try:
        a_stream = EventStream(fast_server, a)
        b_stream = EventStream(fast_server, b)
        a_filtered = EventStream(fast_server, a, types="call.state")
        streams += [a_stream, b_stream, a_filtered]

        sent_a = send_test_event(fast_server, a, url=receiver.url)
        frame = a_stream.next_event()
        assert frame["event"] == "app.test" and frame["id"] == sent_a["event_id"]
        envelope = json.loads(frame["data"])
        assert envelope["id"] == sent_a["event_id"] and envelope["app_id"] == a[2]
        # The stream and the webhook carry the same envelope.
        assert json.loads(receiver.next()["body"]) == envelope

        # B's next event is its own: A's never reached it.
        sent_b = send_test_event(fast_server, b, url=receiver.url)
        frame = b_stream.next_event()
        assert frame["id"] == sent_b["event_id"], frame
        assert json.loads(frame["data"])["app_id"] == b[2]
        # The filtered stream skipped app.test.
        assert a_filtered.frames.empty()
    finally:
        for s in streams:
            s.close()
        receiver.close()


def test_event_stream_is_signed(fast_server):
    r = requests.get(fast_server.url("/v1/events"), timeout=5)
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_a_drain_ends_open_streams(data_dir):
    # A long drain timeout: the stream must end because SIPx closes it, not because time ran out.
    server = Server(data_dir, env={**FAST, "SIPX_SHUTDOWN__DRAIN_TIMEOUT_SECS": "120"}).start()
    try:
        a = create_app(server, "a")
        stream = EventStream(server, a)
        server.proc.send_signal(signal.SIGTERM)
        frame = stream.next(timeout=15)
        while "end" not in frame:
            frame = stream.next(timeout=15)
        assert server.proc.wait(15) == 0
    finally:
        server.stop(signal.SIGKILL)


def test_one_applications_dead_receiver_does_not_hold_back_another_ones_events(data_dir):
    """A's receiver accepts connections and never answers: each attempt holds a slot until the
    request times out. A may hold only its share of the slots, so B's event goes at once."""
    s = Server(data_dir, env={**FAST, "SIPX_WEBHOOKS__MAX_IN_FLIGHT": "4",
                              "SIPX_WEBHOOKS__MAX_IN_FLIGHT_PER_APP": "2",
                              "SIPX_WEBHOOKS__REQUEST_TIMEOUT_MS": "8000"}).start()
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)  # never accepted: connections complete, requests get no answer
    a, b = create_app(s, "a"), create_app(s, "b")
    receiver = Receiver(b[1])
    try:
        for _ in range(6):
            send_test_event(s, a, url=f"http://127.0.0.1:{dead.getsockname()[1]}/hook")
        sent = send_test_event(s, b, url=receiver.url)
        started = time.monotonic()
        got = receiver.next(timeout=6)
        assert json.loads(got["body"])["id"] == sent["event_id"]
        assert time.monotonic() - started < 4, "B's event waited for A's attempts to time out"
    finally:
        receiver.close()
        dead.close()
        s.stop()


def test_webhooks_never_reach_a_denied_network(data_dir):
    """Cloud metadata (169.254.169.254) is denied by default; an operator may deny loopback too.
    A URL naming a denied address, or a host name resolving only to denied addresses, fails at
    once, with nothing sent; the receiver on that address gets nothing."""
    s = Server(data_dir, env={**FAST, "SIPX_WEBHOOKS__DENY_NETWORKS":
                              '["169.254.0.0/16", "127.0.0.0/8", "::1/128"]'}).start()
    a = create_app(s, "a")
    receiver = Receiver(a[1])
    try:
        for url in ("http://169.254.169.254/latest/meta-data/", receiver.url,
                    f"http://localhost:{receiver.port}/hook"):
            sent = send_test_event(s, a, url=url)
            d = await_delivery(s, a, sent["delivery_id"], lambda d: d["status"] != "pending", "settled")
            assert d["status"] == "failed" and d["attempt_count"] == 1, d
            assert "deny_networks" in d["attempts"][0]["error"], d
        with pytest.raises(AssertionError):
            receiver.next(timeout=0.5)
    finally:
        receiver.close()
        s.stop()


def test_pending_deliveries_follow_the_application_url_when_it_changes(fast_server):
    """The usual reason to change a webhook URL is that the old one is broken: what is still
    pending for the application's URL goes to the new one, and ends when the URL is removed.
    A delivery made to a URL of its own (a call's, a test's) keeps it."""
    a = create_app(fast_server, "a")
    broken = f"http://127.0.0.1:{closed_port()}/hook"
    assert api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": broken}).status_code == 200
    first = send_test_event(fast_server, a)
    own = send_test_event(fast_server, a, url=broken)
    for sent in (first, own):
        await_delivery(fast_server, a, sent["delivery_id"], lambda d: d["attempt_count"] >= 1, "attempted")
    receiver = Receiver(a[1])
    try:
        assert api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": receiver.url}).status_code == 200
        got = receiver.next()
        assert json.loads(got["body"])["id"] == first["event_id"] and got["valid"]
        d = await_delivery(fast_server, a, first["delivery_id"], lambda d: d["status"] == "delivered", "delivered")
        assert d["url"] == receiver.url, d
        still = delivery(fast_server, a, own["delivery_id"])
        assert still["status"] == "pending" and still["url"] == broken, still

        assert api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": broken}).status_code == 200
        second = send_test_event(fast_server, a)
        await_delivery(fast_server, a, second["delivery_id"], lambda d: d["attempt_count"] >= 1, "attempted")
        assert api(fast_server, a, "PATCH", "/v1/app", json={"webhook_url": None}).status_code == 200
        d = await_delivery(fast_server, a, second["delivery_id"], lambda d: d["status"] != "pending", "settled")
        assert d["status"] == "failed" and "removed" in d["attempts"][-1]["error"], d
    finally:
        receiver.close()
