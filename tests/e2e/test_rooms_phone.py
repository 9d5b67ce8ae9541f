"""Phone participants in built-in rooms: a real softphone (baresip) calls into a room
(`sip:room-<name>@sipx` through a trunk's inbound network, which names the application) where
Chromium pages are; each side hears the other (tone detection on what was really received), no
one hears themselves, and teardown works both ways; a phone that holds the call is not heard
while it plays its hold music. Addresses 127.0.0.130-139 belong here."""

import base64
import threading

import pytest
import requests

import media
import rooms
from browser import static_server
from conftest import auth_header, create_app, sip_addr

PHONE_IP = "127.0.0.130"


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


@pytest.fixture
def pages():
    with static_server() as base:
        yield base


def phone(tmp_path, tone):
    return media.Baresip(tmp_path / "phone", PHONE_IP, tone, user="caller", codecs=("pcmu",),
                         rtp_ports=(32000, 32099))


def events_of(page):
    return page.evaluate("() => window.peerEvents()")


def phone_identity(page):
    """The identity of the phone participant the page was told about."""
    def find():
        for e in events_of(page):
            p = e.get("participant") or {}
            if e.get("type") == "participant_joined" and p.get("kind") == "phone":
                return p["identity"]
        return None
    return rooms.wait_until(find, what="a phone participant joining")


def test_phone_and_browser_hear_each_other_and_hangup_removes_the_participant(server, pages, audio, tmp_path):
    key, secret, _ = create_app(server)
    rooms.trunk_for(server, key, secret, PHONE_IP)
    with rooms.peer_browsers(audio.tone1000_48k) as (b,), phone(tmp_path, audio.tone400_8k) as ua:
        page = rooms.open_peer(b, pages)
        rooms.join(page, server, rooms.token(server, key, secret, "support", "agent"))
        rooms.dial_in(ua, server, "support")
        who = phone_identity(page)

        heard = rooms.heard(page, who, 4, tmp_path / "page-hears-phone.wav")
        check = media.tone_check(heard, 400)
        assert check.band_ratio > 0.7, check

        r = requests.get(server.url("/v1/rooms/support"), headers=auth_header(key, secret), timeout=10)
        people = {p["identity"]: p for p in r.json()["participants"]}
        assert people[who]["kind"] == "phone" and people[who]["call_id"], people
        assert people[who]["call_state"] == "CONFIRMED", people

        ua.hangup()
        rooms.wait_until(lambda: {"type": "participant_left", "identity": who, "reason": "hangup"}
                         in events_of(page), what="the phone leaving the page's room")
        # What the phone heard: the page's tone, mixed by the media engine from the room's Opus.
        got = media.tone_check(ua.recording("dec"), 1000, skip_s=1.0)
        assert got.band_ratio > 0.7 and got.active_s >= 2, got


def test_two_pages_and_a_phone_each_hear_the_others_only(server, pages, audio, tmp_path):
    key, secret, _ = create_app(server)
    rooms.trunk_for(server, key, secret, PHONE_IP)
    with rooms.peer_browsers(audio.tone1000_48k, audio.tone600_48k) as (b1, b2), \
            phone(tmp_path, audio.tone400_8k) as ua:
        ann, ben = rooms.open_peer(b1, pages), rooms.open_peer(b2, pages)
        rooms.join(ann, server, rooms.token(server, key, secret, "weekly", "ann"))
        rooms.join(ben, server, rooms.token(server, key, secret, "weekly", "ben"))
        rooms.dial_in(ua, server, "weekly")
        who = phone_identity(ann)

        for page, other_tone in ((ann, 600), (ben, 1000)):
            at_page = rooms.heard(page, who, 3, tmp_path / "phone.wav")
            assert media.tone_check(at_page, 400).band_ratio > 0.7, media.tone_check(at_page, 400)
            other = "ben" if page is ann else "ann"
            from_other = rooms.heard(page, other, 3, tmp_path / "other.wav")
            assert media.tone_check(from_other, other_tone).band_ratio > 0.8
            assert set(page.evaluate("() => window.heardSeconds()")) == {who, other}

        # Removing the phone through the API hangs its call up (BYE reaches baresip).
        mark = len(ua.events)
        r = requests.delete(server.url(f"/v1/rooms/weekly/participants/{who}"),
                            headers=auth_header(key, secret), timeout=10)
        assert r.status_code == 204, r.text
        ua.wait_event("CALL_CLOSED", 10, since=mark)
        rooms.wait_until(lambda: {"type": "participant_left", "identity": who, "reason": "removed"}
                         in events_of(ann), what="ann seeing the phone removed")
        # The phone heard both pages' tones, and not its own.
        mix = ua.recording("dec")
        assert media.two_tones_present(mix, 600, 1000), media.tone_check(mix, 400)
        assert media.tone_check(mix, 400).band_ratio < 0.05


def test_calls_into_rooms_need_an_application(server, tmp_path, audio):
    """A caller no trunk or account vouches for cannot pick a room (or an application)."""
    target = sip_addr(server)
    with media.Baresip(tmp_path / "stranger", "127.0.0.131", audio.tone400_8k, user="x") as ua:
        mark = len(ua.events)
        ua.command("dial", f"sip:room-any@{target[0]}:{target[1]}")
        closed = ua.wait_event("CALL_CLOSED", 10, since=mark)
        assert "403" in closed.get("param", ""), closed


def test_a_phone_that_holds_the_call_is_not_heard_in_the_room(server, pages, audio, tmp_path):
    """sipp calls into the room playing a 600 Hz tone, holds by re-INVITE `sendonly` and goes
    on playing it (hold music), then resumes. The page hears the tone before and after the
    hold, and not during it (it used to hear the hold music)."""
    key, secret, _ = create_app(server)
    ip = "127.0.0.132"
    rooms.trunk_for(server, key, secret, ip)
    done = []
    with rooms.peer_browsers(audio.tone1000_48k) as (b,):
        page = rooms.open_peer(b, pages)
        rooms.join(page, server, rooms.token(server, key, secret, "onhold", "agent"))

        def negotiations():
            return [e.get("direction") for e in server.events() if e.get("message") == "call media negotiated"]

        base = len(negotiations())  # this call's come after these
        sipp = threading.Thread(target=lambda: done.append(media.run_sipp_call(
            "uac_hold_music.xml", tmp_path / "uac", ip, sip_addr(server), "-s", "room-onhold", "-d", "5000",
            audio={"uac_audio.ulaw": audio["tone600_8k.ulaw"]})))
        sipp.start()
        try:
            who = phone_identity(page)
            talking = media.tone_check(rooms.heard(page, who, 1.5, tmp_path / "talking.wav"), 600)
            assert talking.band_ratio > 0.7, talking

            def heard_after(directions, name):
                """What the page heard of the phone once its negotiations read `directions`."""
                rooms.wait_until(lambda: negotiations()[base:] == directions, timeout=20,
                                 what=f"the phone's negotiations to read {directions}")
                # The last 1.5 s, once 2.5 s more were heard: all of it after the change.
                start = page.evaluate("() => window.heardSeconds()").get(who, 0)
                rooms.wait_until(lambda: page.evaluate("() => window.heardSeconds()").get(who, 0) >= start + 2.5,
                                 timeout=15, what=f"audio from {who} {name}")
                path = tmp_path / f"{name}.wav"
                path.write_bytes(base64.b64decode(page.evaluate("a => window.heardWav(a[0], a[1])", [who, 1.5])))
                return media.tone_check(path, 600)

            held = heard_after(["sendrecv", "recvonly"], "held")
            assert held.active_s < 0.2, held
            resumed = heard_after(["sendrecv", "recvonly", "sendrecv"], "resumed")
            assert resumed.band_ratio > 0.7, resumed
        finally:
            sipp.join(60)
    assert done and done[0].returncode == 0, done and (done[0].errors + done[0].stderr + done[0].logs)
