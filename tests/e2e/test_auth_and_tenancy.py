"""Signatures and tenant isolation over real HTTP."""

import time

import requests

from conftest import auth_header, auth_query, create_app, sign


def test_signed_requests_in_query_and_header(server):
    key, secret, app_id = create_app(server)
    r = requests.get(server.url("/v1/app"), params=auth_query(key, secret), timeout=5)
    assert r.status_code == 200 and r.json()["id"] == app_id
    r = requests.get(server.url("/v1/app"), headers=auth_header(key, secret), timeout=5)
    assert r.status_code == 200


def test_bad_signatures_are_401_problems(server):
    key, secret, _ = create_app(server)
    now = int(time.time())
    exp = now + 300
    good = sign(key, secret, exp)
    cases = {
        "missing": {},
        "wrong": {"api_key": key, "expire_at": exp, "signature": sign(key, "x", exp)},
        "expired": {"api_key": key, "expire_at": now - 5, "signature": sign(key, secret, now - 5)},
        "far future": {"api_key": key, "expire_at": now + 2 * 86400,
                       "signature": sign(key, secret, now + 2 * 86400)},
        "wrong key": {"api_key": "nosuchkey", "expire_at": exp, "signature": sign("nosuchkey", secret, exp)},
        "tampered expire_at": {"api_key": key, "expire_at": exp + 1, "signature": good},
    }
    for what, params in cases.items():
        r = requests.get(server.url("/v1/app"), params=params, timeout=5)
        assert r.status_code == 401, what
        assert r.headers["content-type"] == "application/problem+json", what
        assert r.json()["type"] == "urn:sipx:problem:unauthorized", what


def test_application_b_cannot_see_application_a_objects(server):
    a = create_app(server, "a")
    b = create_app(server, "b")
    r = requests.post(server.url("/v1/sip-accounts"), headers=auth_header(*a[:2]),
                      json={"username": "gw-a1", "password": "password-123"}, timeout=5)
    assert r.status_code == 201, r.text
    acct = r.json()["id"]
    hb = auth_header(*b[:2])
    assert requests.get(server.url(f"/v1/sip-accounts/{acct}"), headers=hb, timeout=5).status_code == 404
    assert requests.patch(server.url(f"/v1/sip-accounts/{acct}"), headers=hb, json={"enabled": False},
                          timeout=5).status_code == 404
    assert requests.delete(server.url(f"/v1/sip-accounts/{acct}"), headers=hb, timeout=5).status_code == 404
    assert requests.get(server.url("/v1/sip-accounts"), headers=hb, timeout=5).json()["items"] == []
    mine = requests.get(server.url(f"/v1/sip-accounts/{acct}"), headers=auth_header(*a[:2]), timeout=5)
    assert mine.status_code == 200 and mine.json()["enabled"] is True
