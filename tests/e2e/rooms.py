"""Helpers for the room tests: join tokens, Chromium pages in rooms (pages/room-peer.html, an
independent implementation of docs/rooms-signalling.md) and what they heard, and phones that
call into rooms."""

import base64
import time

import requests

import browser
from conftest import auth_header, sip_addr

# Chromium needs these for WebRTC over loopback with a fake microphone playing a file.
ROOM_ARGS = ["--allow-loopback-in-peer-connection", "--autoplay-policy=no-user-gesture-required",
             "--disable-features=WebRtcHideLocalIpsWithMdns"]


def token(server, key, secret, room, identity, **extra):
    r = requests.post(server.url(f"/v1/rooms/{room}/tokens"), json={"identity": identity, **extra},
                      headers=auth_header(key, secret), timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def trunk_for(server, key, secret, ip):
    """An inbound trunk for `ip`: calls from there belong to the application (and may pick its
    rooms). The API answers once the SIP core has loaded it."""
    r = requests.post(server.url("/v1/trunks"), headers=auth_header(key, secret), timeout=10,
                      json={"name": "office-gw", "inbound": {"allowed_cidrs": [f"{ip}/32"]}})
    assert r.status_code == 201, r.text


def dial_in(ua, server, room):
    """A phone (media.Baresip) calls into `room` (`sip:room-<name>@sipx`); returns once answered."""
    host, port = sip_addr(server)
    return ua.dial(f"sip:room-{room}@{host}:{port}")


def ws_url(server, tok):
    return server.url(tok["url"]).replace("http://", "ws://", 1) + "?token=" + tok["token"]


def peer_browsers(*tone_wavs):
    """Chromiums whose fake microphones play `tone_wavs` in a loop, one each."""
    return browser.chromiums([[*ROOM_ARGS, f"--use-file-for-fake-audio-capture={w}"] for w in tone_wavs])


def open_peer(b, pages_base):
    page = b.new_page()
    page.goto(pages_base + "/pages/room-peer.html")
    return page


def join(page, server, tok, audio=True, video=False):
    page.evaluate("a => window.joinRoom(a)", {"url": ws_url(server, tok), "publishAudio": audio,
                                              "publishVideo": video})


def wait_until(fn, timeout=20, step=0.1, what="condition"):
    """Polls `fn` (a read of page state: there is no event to await across the process
    boundary) until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {v!r}")
        time.sleep(step)


def heard(page, identity, seconds, path):
    """Waits until `seconds` of `identity`'s audio were heard, writes the last of it to `path`."""
    try:
        wait_until(lambda: page.evaluate("() => window.heardSeconds()").get(identity, 0) >= seconds + 1,
                   timeout=seconds + 20, what=f"{seconds}s of audio from {identity}")
    except AssertionError as e:
        raise AssertionError(f"{e}; heard {page.evaluate('() => window.heardSeconds()')}; "
                             f"events {page.evaluate('() => window.peerEvents()')}") from None
    data = page.evaluate("a => window.heardWav(a[0], a[1])", [identity, seconds])
    path.write_bytes(base64.b64decode(data))
    return path
