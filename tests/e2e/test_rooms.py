"""Built-in rooms end to end: Chromium pages join a room over the signalling WebSocket and WebRTC
(ICE-lite, DTLS-SRTP, str0m) and hear and see each other; the rooms API shows them."""

import pytest
import requests

import media
import rooms
from browser import static_server
from conftest import auth_header, create_app


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


@pytest.fixture
def pages():
    with static_server() as base:
        yield base


def test_two_browsers_hear_and_see_each_other(server, pages, audio, tmp_path):
    key, secret, _ = create_app(server)
    with rooms.peer_browsers(audio.tone600_48k, audio.tone1000_48k) as (b1, b2):
        alice, bob = rooms.open_peer(b1, pages), rooms.open_peer(b2, pages)
        rooms.join(alice, server, rooms.token(server, key, secret, "standup", "alice"), video=True)
        rooms.join(bob, server, rooms.token(server, key, secret, "standup", "bob"), video=True)

        at_alice = rooms.heard(alice, "bob", 3, tmp_path / "alice-hears-bob.wav")
        at_bob = rooms.heard(bob, "alice", 3, tmp_path / "bob-hears-alice.wav")
        assert media.tone_check(at_alice, 1000).band_ratio > 0.8, media.tone_check(at_alice, 1000)
        assert media.tone_check(at_bob, 600).band_ratio > 0.8, media.tone_check(at_bob, 600)
        # Nobody receives their own tracks.
        assert "alice" not in alice.evaluate("() => window.heardSeconds()")
        assert "bob" not in bob.evaluate("() => window.heardSeconds()")

        # Video decodes both ways, and keeps decoding.
        for page in (alice, bob):
            first = rooms.wait_until(lambda: sum(page.evaluate("() => window.framesDecoded()").values()),
                                     what="decoded video frames")
            rooms.wait_until(lambda: sum(page.evaluate("() => window.framesDecoded()").values()) > first + 10,
                             what="more decoded video frames")

        # An ICE restart (a network change): both ends take new credentials, media keeps flowing.
        old_remote = alice.evaluate("() => window.remoteUfrag()")
        alice.evaluate("() => window.restartIce()")
        rooms.wait_until(lambda: alice.evaluate("() => window.remoteUfrag()") not in (None, old_remote),
                         what="the server's answer with new ICE credentials")
        before = alice.evaluate("() => window.heardSeconds()")["bob"]
        rooms.wait_until(lambda: alice.evaluate("() => window.heardSeconds()")["bob"] > before + 3,
                         what="3 s of playout after the ICE restart")
        after = rooms.heard(alice, "bob", 2, tmp_path / "after-restart.wav")
        assert media.tone_check(after, 1000).band_ratio > 0.8, media.tone_check(after, 1000)
        assert alice.evaluate("() => window.iceState()") in ("connected", "completed")

        r = requests.get(server.url("/v1/rooms/standup"), headers=auth_header(key, secret), timeout=10)
        assert r.status_code == 200, r.text
        people = {p["identity"]: p for p in r.json()["participants"]}
        assert set(people) == {"alice", "bob"}
        assert all(p["kind"] == "browser" for p in people.values())
        assert {t["kind"] for t in people["alice"]["tracks"]} == {"audio", "video"}

        # Leaving is seen by the other side, and the API.
        alice.evaluate("() => window.leaveRoom()")
        rooms.wait_until(lambda: any(e.get("type") == "participant_left" and e.get("identity") == "alice"
                                     for e in bob.evaluate("() => window.peerEvents()")),
                         what="bob sees alice leave")
        r = requests.get(server.url("/v1/rooms/standup"), headers=auth_header(key, secret), timeout=10)
        left = [e for e in server.events() if e.get("message") == "participant left"]
        assert [p["identity"] for p in r.json()["participants"]] == ["bob"], left


def test_join_tokens_are_checked_and_rooms_are_per_application(server, pages, audio):
    key, secret, _ = create_app(server, "one")
    key2, secret2, _ = create_app(server, "two")
    tok = rooms.token(server, key, secret, "board", "carol")
    with rooms.peer_browsers(audio.tone600_48k) as (b,):
        page = rooms.open_peer(b, pages)
        # A forged token (signed with another application's secret but naming the first).
        forged = dict(tok)
        other = rooms.token(server, key2, secret2, "board", "carol")
        forged["token"] = tok["token"].rsplit(".", 1)[0] + "." + other["token"].rsplit(".", 1)[1]
        with pytest.raises(Exception):
            rooms.join(page, server, forged)
        closed = rooms.wait_until(lambda: page.evaluate("() => window.peerClosed()"), what="close")
        assert closed["code"] == 4401, closed

        page = rooms.open_peer(b, pages)
        rooms.join(page, server, tok)
        mine = requests.get(server.url("/v1/rooms"), headers=auth_header(key, secret), timeout=10).json()
        theirs = requests.get(server.url("/v1/rooms"), headers=auth_header(key2, secret2), timeout=10).json()
        assert [r["name"] for r in mine["items"]] == ["board"]
        assert theirs["items"] == []
        r = requests.get(server.url("/v1/rooms/board"), headers=auth_header(key2, secret2), timeout=10)
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")

        # Closing the room through the API disconnects the browser.
        r = requests.delete(server.url("/v1/rooms/board"), headers=auth_header(key, secret), timeout=10)
        assert r.status_code == 204, r.text
        closed = rooms.wait_until(lambda: page.evaluate("() => window.peerClosed()"), what="close")
        events = page.evaluate("() => window.peerEvents()")
        assert {"type": "closed", "reason": "room_closed"} in events, events



def test_a_token_the_application_minted_itself_is_held_to_the_apis_rules(server):
    """docs/rooms-signalling.md: an application may sign its own join tokens (HS256 with its
    secret). One whose shown name the API would refuse (too long, control characters) is
    refused at the socket (4401) instead of showing that name to the room."""
    import asyncio
    import base64
    import hashlib
    import hmac
    import json
    import time

    import websockets

    key, secret, _ = create_app(server, "self-minted")

    def b64(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def mint(name):
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"iss": key, "sub": "guest", "room": "lobby", "exp": int(time.time()) + 300,
                               "name": name}).encode())
        mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}"

    async def close_of(token):
        url = server.url("/v1/rtc").replace("http://", "ws://", 1) + "?token=" + token
        async with websockets.connect(url, open_timeout=10) as ws:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code, closed.rcvd.reason

    for bad in ["x" * 129, "Mallory\x1b[2J"]:
        code, reason = asyncio.run(close_of(mint(bad)))
        assert (code, reason) == (4401, "the token's name is not valid"), (bad, code, reason)


def test_a_frame_over_the_limit_closes_the_socket_with_1009(server):
    """A signalling frame over 256 KiB is not read: the socket closes with 1009 (message too
    big, RFC 6455 §7.4.1), so the client can tell that from a network failure, and the
    participant is gone from the room."""
    import asyncio
    import json

    import websockets

    key, secret, _ = create_app(server, "big-frames")
    tok = rooms.token(server, key, secret, "lobby", "chatty")

    async def close_after_big_frame():
        async with websockets.connect(rooms.ws_url(server, tok), open_timeout=10) as ws:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert welcome["type"] == "welcome", welcome
            await ws.send(json.dumps({"type": "ping", "pad": "x" * 300_000}))
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None

    assert asyncio.run(close_after_big_frame()) == 1009
    people = rooms.wait_until(
        lambda: requests.get(server.url("/v1/rooms/lobby"), headers=auth_header(key, secret), timeout=10),
        what="the room")
    assert people.status_code == 404 or people.json()["participants"] == [], people.text
