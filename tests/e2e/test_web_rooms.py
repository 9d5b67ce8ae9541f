"""The demo page (web/) in real rooms, driven by headless Chromium against the real binary: two
pages see and hear each other; a real softphone (baresip) that calls into the room shows up as a
phone tile whose level follows its voice, and the tile's hang-up button ends its call.
Addresses 127.0.0.140-149 belong here and to scripts/screenshot-demo."""

import subprocess
import time

import pytest
import requests

import demo_page
import media
import rooms
from browser import chromium
from conftest import PEERS, auth_header, create_app

PHONE_IP = "127.0.0.140"


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


def metric(server, name):
    """A counter's value from /metrics (0 before its first increment)."""
    for line in requests.get(server.url("/metrics"), timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_two_browsers_in_a_room_see_and_hear_each_other(server):
    creds = create_app(server)[:2]
    with chromium(rooms.ROOM_ARGS) as browser:
        ada = demo_page.join(browser, server, creds, "standup", "Ada")
        bob = demo_page.join(browser, server, creds, "standup", "Bob")
        for page, other in [(ada, "Bob"), (bob, "Ada")]:
            tile = page.locator("[data-testid=tile][data-kind=browser]", has_text=other)
            tile.wait_for(state="visible", timeout=15_000)
            # The other's camera (Chromium's fake device) plays in the tile.
            demo_page.wait_for_video(page, other)
        # Audio flows both ways: received bytes grow (stats have no event: a bounded poll).
        for page in (ada, bob):
            first = demo_page.inbound_bytes(page, "audio")
            deadline = time.monotonic() + 15
            while demo_page.inbound_bytes(page, "audio") < first + 1000:
                assert time.monotonic() < deadline, "no audio received"
                page.wait_for_timeout(200)
        # Muted by the application through the API: Bob's own tile says so, as Ada's tile of him.
        identity = bob.evaluate("() => import('/demo.js').then((m) => m.currentRoom().self.identity)")
        r = requests.post(server.url(f"/v1/rooms/standup/participants/{identity}/mute"), json={"muted": True},
                          headers=auth_header(*creds), timeout=10)
        assert r.status_code == 200, r.text
        for page in (bob, ada):
            icon = page.locator("[data-testid=tile]", has_text="Bob").locator(".muted-icon")
            page.wait_for_function("(el) => !el.hasAttribute('hidden')", arg=icon.element_handle(),
                                   timeout=10_000)
        bob.click("[data-testid=leave-button]")
        ada.locator("[data-testid=tile]", has_text="Bob").wait_for(state="detached", timeout=10_000)


def test_phone_called_into_the_room_shows_a_level_and_hangs_up_from_its_tile(server, audio, tmp_path):
    key, secret, _ = create_app(server)
    rooms.trunk_for(server, key, secret, PHONE_IP)
    # The page's microphone plays a 1 kHz tone, the phone a 400 Hz one.
    page_args = [*rooms.ROOM_ARGS, f"--use-file-for-fake-audio-capture={audio.tone1000_48k}"]
    phone = media.Baresip(tmp_path / "phone", PHONE_IP, audio.tone400_8k, user="+15550100199",
                          display_name="Front Desk", codecs=("pcmu",), rtp_ports=(32100, 32199))
    reports_before = metric(server, "sipx_rooms_loss_reports_total")
    with chromium(page_args) as browser, phone as ua:
        page = demo_page.join(browser, server, (key, secret), "support", "Ada")
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        rooms.dial_in(ua, server, "support")

        tile = demo_page.phone_tile(page)
        # Its name is the caller's display name; its state says the call is up.
        assert tile.locator(".tile-name").inner_text() == "Front Desk"
        state = tile.locator("[data-testid=call-state]")
        page.wait_for_function("(el) => el.dataset.state === 'connected'", arg=state.element_handle(),
                               timeout=10_000)
        assert state.inner_text().lower().startswith("connected"), state.inner_text()
        assert tile.get_attribute("aria-label") == "Phone Front Desk"
        assert page.locator("#room-count").inner_text() == "2 in the room"

        # The level follows the phone's voice: up while its tone plays, down when it goes quiet
        # (baresip's mute sends silence).
        assert demo_page.wait_level(page, tile, above=40) > 40
        ua.command("mute")
        assert demo_page.wait_level(page, tile, below=5) < 5
        ua.command("mute")
        assert demo_page.wait_level(page, tile, above=40) > 40

        # The tile counts the call's time; a few seconds of it also give the phone time to hear
        # the page (checked below).
        page.wait_for_function(
            "(el) => /^0:(0[5-9]|[1-5][0-9])$/.test(el.textContent)",
            arg=tile.locator(".call-time").element_handle(), timeout=10_000)

        # The page's receiver reports on the phone's voice reach the SFU (they size the phone's
        # Opus FEC): Chromium sends them every 5 s or so (stats have no event: a bounded poll).
        deadline = time.monotonic() + 15
        while metric(server, "sipx_rooms_loss_reports_total") <= reports_before:
            assert time.monotonic() < deadline, "no loss report from the browser"
            page.wait_for_timeout(500)

        # The hang-up button: BYE reaches the phone, the tile goes.
        mark = len(ua.events)
        tile.locator("[data-testid=hangup]").click()
        ua.wait_event("CALL_CLOSED", 10, since=mark)
        tile.wait_for(state="detached", timeout=10_000)
        assert page.locator("[data-testid=tile][data-kind=phone]").count() == 0
        assert page.locator("#room-count").inner_text() == "Just you"
        assert page.locator("[data-testid=dial-result]").is_hidden(), "no error shown for the hang-up"
        assert errors == []

    # What the phone heard in the room: the page's microphone.
    got = media.tone_check(ua.recording("dec"), 1000, skip_s=0.5)
    assert got.band_ratio > 0.7 and got.active_s >= 1.5, got


def test_the_dial_form_calls_a_phone_into_the_room_and_its_tile_hangs_up(server, tmp_path):
    """The form dials (`POST /v1/calls`): a number typed with spaces is refused politely when
    the application has no route, a SIP URI reaches a phone (sipp) that answers; its tile shows
    up in the room, and the tile's hang-up button ends the call with a BYE."""
    creds = create_app(server)[:2]
    scenario = tmp_path / "uas_answer.xml"
    scenario.write_text((PEERS / "sipp" / "uas_answer.xml").read_text())
    with chromium(rooms.ROOM_ARGS) as browser:
        page = demo_page.join(browser, server, creds, "lobby", "Ada")
        page.fill("[data-testid=dial-input]", "+1 555 010 0199")
        with page.expect_response(lambda r: r.url.endswith("/v1/calls")) as asked:
            page.click("[data-testid=dial-button]")
        assert asked.value.request.post_data_json["to"] == "+15550100199"
        assert asked.value.status == 503, asked.value.text()
        result = page.locator("[data-testid=dial-result]")
        result.wait_for(state="visible", timeout=10_000)
        assert "could not be placed" in result.inner_text() and "trunk" in result.inner_text()

        sipp = subprocess.Popen(["sipp", "-sf", str(scenario), "-i", "127.0.0.145", "-p", "5060", "-m", "1",
                                 "-nostdin", "-recv_timeout", "60000"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=tmp_path)
        try:
            page.fill("[data-testid=dial-input]", "sip:+15550100199@127.0.0.145:5060")
            with page.expect_response(lambda r: r.url.endswith("/v1/calls")) as asked:
                page.click("[data-testid=dial-button]")
            assert asked.value.status == 201, asked.value.text()
            call_id = asked.value.json()["id"]
            assert call_id in result.inner_text()
            tile = page.locator("[data-testid=tile][data-kind=phone]")
            tile.wait_for(state="visible", timeout=15_000)
            rooms.wait_until(lambda: "Connected" in tile.locator("[data-testid=call-state]").inner_text()
                             or "connected" == tile.locator(".call-state").get_attribute("data-state"),
                             what="the phone's tile showing the call connected")
            tile.locator("[data-testid=hangup]").click()
            tile.wait_for(state="detached", timeout=15_000)
            assert sipp.wait(15) == 0  # it got its BYE
        finally:
            if sipp.poll() is None:
                sipp.kill()
    r = requests.get(server.url(f"/v1/calls/{call_id}"), headers=auth_header(*creds), timeout=10).json()
    assert r["state"] == "DISCONNECTED" and r["end"]["cause"] == "room_removed", r


# A page at SIPx's own origin driving the browser client: joins and records what it receives.
CLIENT_JOIN = """async ([url, token, video]) => {
  const { SipxRoom } = await import('/sipx-client.js');
  window.room = await SipxRoom.join({ url, token, publish: { audio: true, video } });
  window.ended = [];
  window.room.addEventListener('track-ended', (e) => window.ended.push([e.detail.identity, e.detail.kind]));
  return window.room.self.identity;
}"""

# Bytes received so far on the m-line of `identity`'s track of `kind`.
CLIENT_RECEIVED = """async ([identity, kind]) => {
  const track = window.room.tracks.find((t) => t.identity === identity && t.kind === kind);
  if (!track) return -1;
  let bytes = 0;
  (await window.room.peerConnection.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp' && s.mid === track.mid) bytes = s.bytesReceived;
  });
  return bytes;
}"""


def test_a_track_published_again_after_the_server_offered_meanwhile_reaches_the_others(server):
    """Ada and Bob are in a room; Bob stops his camera: Ada's client reports the track ended
    and the API lists Bob's audio only. Cy joins, so the server offers Bob her tracks while his
    camera is off, and Bob answers. Bob turns the camera back on: Ada and Cy see it again. The
    server offers Bob's stopped m-line `recvonly`: had it offered it `inactive`, as Bob left
    it, his answer could only be `inactive` and, by JSEP's rule for answers, his browser would
    never renegotiate: the camera would stay off for everyone."""
    key, secret, _ = create_app(server)
    url = server.url("/v1/rtc")

    def received(page, identity, kind):
        return page.evaluate(CLIENT_RECEIVED, [identity, kind])

    def grows(page, identity, kind, what):
        start = rooms.wait_until(lambda: received(page, identity, kind) >= 0, what=f"{what}: the track")
        rooms.wait_until(lambda: received(page, identity, kind) > start + 2000, what=what)

    with chromium(rooms.ROOM_ARGS) as browser:
        pages = {}
        for name in ("ada", "bob", "cy"):
            page = browser.new_context().new_page()
            page.goto(server.url("/"))
            pages[name] = page
        ada, bob, cy = pages["ada"], pages["bob"], pages["cy"]
        for name in ("ada", "bob"):
            tok = rooms.token(server, key, secret, "huddle", name)["token"]
            pages[name].evaluate(CLIENT_JOIN, [url, tok, True])
        grows(ada, "bob", "video", "Bob's camera at Ada")

        bob.evaluate("() => window.room.publish({ video: false })")
        stable = """() => window.room.peerConnection.signalingState === 'stable'
          && window.room.peerConnection.getTransceivers().every((t) => t.direction === t.currentDirection
            || t.currentDirection === null || t.currentDirection === 'stopped')"""
        rooms.wait_until(lambda: bob.evaluate(stable), what="Bob's camera stopped and negotiated")
        rooms.wait_until(lambda: ["bob", "video"] in ada.evaluate("() => window.ended"),
                         what="Ada told that Bob's camera ended")

        def bobs_tracks():
            r = requests.get(server.url("/v1/rooms/huddle"), headers=auth_header(key, secret), timeout=10)
            return sorted(t["kind"] for p in r.json()["participants"] if p["identity"] == "bob" for t in p["tracks"])
        rooms.wait_until(lambda: bobs_tracks() == ["audio"], what="the API listing Bob's audio only")

        cy.evaluate(CLIENT_JOIN, [url, rooms.token(server, key, secret, "huddle", "cy")["token"], False])
        rooms.wait_until(lambda: received(bob, "cy", "audio") >= 0, what="the server's offer of Cy to Bob")
        rooms.wait_until(lambda: bob.evaluate(stable), what="Bob's answer")

        bob.evaluate("() => window.room.publish({ video: true })")
        before = received(ada, "bob", "video")
        rooms.wait_until(lambda: received(ada, "bob", "video") > before + 2000, timeout=15,
                         what="Bob's camera at Ada again")
        grows(cy, "bob", "video", "Bob's camera at Cy")
        assert bobs_tracks() == ["audio", "video"]
