"""SKELETON, skipped: the demo page in real rooms. It needs the built-in rooms (the `/v1/rtc`
signalling socket, `POST /v1/rooms/{room}/tokens`, the str0m SFU) and call control
(`POST /v1/calls`, `DELETE /v1/rooms/{room}/participants/{identity}`), which are not in the
server yet. Whoever lands the SFU removes the skip, checks the first test against the real
server and fills in the second. Nothing here fakes a server."""

import time

import pytest

from browser import chromium
from rooms import ROOM_ARGS
from conftest import create_app



def join(browser, server, creds, room, name):
    """A demo page that joined `room` as `name`; returns the page."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(server.url("/") + f"#api_key={creds[0]}&api_secret={creds[1]}")
    page.fill("[data-testid=room-input]", room)
    page.fill("[data-testid=name-input]", name)
    page.click("[data-testid=join-button]")
    page.locator("[data-testid=room-title]").wait_for(state="visible", timeout=15_000)
    return page


def inbound_bytes(page, kind):
    """Bytes received so far on `kind` (from the joined SipxRoom's RTCPeerConnection stats)."""
    return page.evaluate("""(kind) => import('/demo.js').then(async (m) => {
        const stats = await m.currentRoom().peerConnection.getStats();
        let total = 0;
        stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === kind) total += s.bytesReceived; });
        return total;
    })""", kind)


def test_two_browsers_in_a_room_see_and_hear_each_other(server):
    creds = create_app(server)[:2]
    with chromium(ROOM_ARGS) as browser:
        ada = join(browser, server, creds, "standup", "Ada")
        bob = join(browser, server, creds, "standup", "Bob")
        for page, other in [(ada, "Bob"), (bob, "Ada")]:
            tile = page.locator("[data-testid=tile][data-kind=browser]", has_text=other)
            tile.wait_for(state="visible", timeout=15_000)
            # The other's camera (Chromium's fake device) plays in the tile.
            page.wait_for_function(
                "(name) => [...document.querySelectorAll('.tile.has-video')].some("
                "(t) => t.textContent.includes(name) && t.querySelector('video').videoWidth > 0)",
                arg=other, timeout=15_000)
        # Audio flows both ways: received bytes grow (stats have no event: a bounded poll).
        for page in (ada, bob):
            first = inbound_bytes(page, "audio")
            deadline = time.monotonic() + 15
            while inbound_bytes(page, "audio") < first + 1000:
                assert time.monotonic() < deadline, "no audio received"
                page.wait_for_timeout(200)
        bob.click("[data-testid=leave-button]")
        ada.locator("[data-testid=tile]", has_text="Bob").wait_for(state="detached", timeout=10_000)


@pytest.mark.skip(reason="skeleton until a phone can be put into a room")
def test_phone_dialled_into_the_room_shows_a_level_and_hangs_up(server):
    # To fill in once call control routes calls into rooms:
    # 1. a SIP peer that answers and plays a tone (media.Baresip, or sipp with an RTP stream),
    #    reachable through a trunk created with the API;
    # 2. a demo page joins "support" and submits the dial form ([data-testid=dial-form]) with
    #    the peer's number: POST /v1/calls {to, room: {connector: "builtin", name: "support"}};
    # 3. a tile [data-kind=phone] appears; its [data-testid=level] aria-valuenow rises above 0
    #    while the tone plays (the page measures the phone's track with WebAudio) and the
    #    page's own voice reaches the peer (tone detected on the wire, as in test_media_echo);
    # 4. [data-testid=hangup] → DELETE /v1/rooms/support/participants/{identity}: the peer
    #    gets a BYE, the tile goes, participant_left says `removed` or `hangup`.
    raise NotImplementedError("skeleton: see the steps above")
