"""Bad input over real HTTP: a 4xx problem document every time, never a 500."""

import json
import re
import socket

import pytest
import requests

from conftest import auth_header, create_app

CASES = [
    ("malformed json", b'{"username": ', "application/json", 400),
    ("wrong type", b'{"username": 1, "password": "password-1"}', "application/json", 422),
    ("unknown field", b'{"username": "u", "password": "password-1", "extra": 1}', "application/json", 422),
    ("null body", b"null", "application/json", 422),
    ("not json content type", b'{"username": "u", "password": "password-1"}', "text/plain", 415),
    ("oversize", b'{"username": "u", "password": "' + b"p" * (1 << 20) + b'"}', "application/json", 413),
    ("binary", bytes(range(256)), "application/json", 400),
]


@pytest.mark.parametrize("what,body,ctype,status", CASES, ids=[c[0] for c in CASES])
def test_bad_bodies(server, what, body, ctype, status):
    key, secret, _ = create_app(server, what)
    headers = {**auth_header(key, secret), "Content-Type": ctype}
    r = requests.post(server.url("/v1/sip-accounts"), data=body, headers=headers, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status


def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent(server):
    """Headers that announce a body over the limit get 413 at once: waiting for a body that
    may never come would hold the connection for the whole body timeout (30 s)."""
    key, secret, _ = create_app(server, "declared-oversize")
    host, port = server.base.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in auth_header(key, secret).items())
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((f"POST /v1/sip-accounts HTTP/1.1\r\nHost: x\r\n{head}"
                   "Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n").encode())
        reply = b""  # each read within the socket's 5 s, or the test fails
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < int(
                re.search(rb"(?i)\r\ncontent-length: (\d+)", reply).group(1)):
            reply += s.recv(65536)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), reply[:300]
    assert json.loads(body)["status"] == 413


def test_garbage_http_gets_a_problem_document_and_does_not_hurt_the_server(server):
    """What hyper cannot parse never reaches a handler; it is still answered with a problem."""
    host, port = server.base.removeprefix("http://").split(":")
    cases = [
        (b"\x00\x01\x02garbage\r\n\r\n", 400, "bad-request"),
        (b"GET / HTTP/9.9\r\n\r\n", 400, "bad-request"),
        (b"GET /v1/calls HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", 400, "bad-request"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414, "uri-too-long"),
        (b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: y\r\n" * 300 + b"\r\n", 431, "headers-too-large"),
    ]
    for junk, status, slug in cases:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]
        assert b"\r\ncontent-type: application/problem+json" in head, head
        problem = json.loads(body)
        assert (problem["status"], problem["type"]) == (status, f"urn:sipx:problem:{slug}"), problem
        assert head.count(b"\r\nx-request-id: ") == 1, head
        assert head.lower().count(b"\r\nconnection: close") == 1, head
    assert requests.get(server.url("/healthz"), timeout=5).status_code == 200
    metrics = requests.get(server.url("/metrics"), timeout=5).text
    for status, count in [(400, 3), (414, 1), (431, 1)]:
        assert f'sipx_http_unparsable_requests_total{{status="{status}"}} {count}' in metrics, metrics


def test_a_room_token_name_with_a_control_character_is_refused(server):
    key, secret, _ = create_app(server, "tokens")
    for name, status in [("\u0000", 422), ("Alice\r\nX: y", 422), ("Zoë", 201)]:
        r = requests.post(server.url("/v1/rooms/lobby/tokens"), json={"identity": "alice", "name": name},
                          headers=auth_header(key, secret), timeout=10)
        assert r.status_code == status, (name, r.text)
        if status == 422:
            assert r.headers["content-type"] == "application/problem+json"
            assert [e["field"] for e in r.json()["errors"]] == ["name"], r.text
