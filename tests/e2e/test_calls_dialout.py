"""Dial-out through the API (`POST /v1/calls`): a phone is called and joins a built-in room.

Real peers: baresip registered to SIPx as a gateway account answers and plays a tone while a
Chromium page in the room plays another; each must hear the other. sipp UASes refuse, ring
forever, or are not there at all, and every call must end DISCONNECTED with the right code,
reason and cause, with no participant left in the room. Addresses 127.0.0.150-169 belong here."""

import contextlib
import datetime
import json
import pathlib
import re
import subprocess
import threading

import pytest
import requests

import media
import rooms
from browser import static_server
from conftest import PEERS, SIP_ENV, Kamailio, Server, auth_header, create_app, sip_addr


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


@pytest.fixture
def pages():
    with static_server() as base:
        yield base


@pytest.fixture
def fast_server(data_dir):
    """A server whose SIP timers run fast (T1 = 50 ms: Timer B is 3.2 s), so an unreachable
    phone is given up quickly."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__T1_MS": "50", "SIPX_ROOMS__UDP": "127.0.0.1:0"})
    s.start()
    yield s
    s.stop()


def api(server, creds, method, path, body=None, expect=None):
    r = requests.request(method, server.url(path), json=body, headers=auth_header(*creds), timeout=10)
    if expect is not None:
        assert r.status_code == expect, (r.status_code, r.text)
    return r


def call_state(server, creds, call_id):
    return api(server, creds, "GET", f"/v1/calls/{call_id}", expect=200).json()


def wait_state(server, creds, call_id, state, timeout=30):
    """The call once it reached `state` (polled: the API is the observable)."""
    try:
        return rooms.wait_until(lambda: (c := call_state(server, creds, call_id))["state"] == state and c,
                                timeout=timeout, what=f"call {call_id} in {state}")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{call_state(server, creds, call_id)}\n" + "\n".join([x for x in server.lines if '"request"' not in x][-25:])) from None


def states(call):
    return [(h["state"], h["code"]) for h in call["history"]]


def participants(server, creds, room):
    r = api(server, creds, "GET", f"/v1/rooms/{room}")
    if r.status_code == 404:
        return []
    return [p["identity"] for p in r.json()["participants"]]


@contextlib.contextmanager
def sipp_uas(tmp_path, ip, scenario, calls=1, args=(), **fill):
    """A sipp UAS on ip:5060 answering `calls` calls as `scenario` says (words of `fill`
    replaced; `args` added to sipp's, e.g. `-t t1` for TCP); every message it sees is in
    tmp_path/sipp-<ip>-messages.log."""
    # One file per sipp: two filled in differently must not overwrite each other's before
    # their sipp has read it.
    path = tmp_path / f"{ip}-{scenario}"
    text = (PEERS / "sipp" / scenario).read_text()
    for word, value in fill.items():
        text = text.replace(word, value)
    path.write_text(text)
    log = open(tmp_path / f"sipp-{ip}.log", "w")
    proc = subprocess.Popen(["sipp", "-sf", str(path), "-i", ip, "-p", "5060",
                             "-m", str(calls), "-nostdin", "-recv_timeout", "60000", "-trace_err",
                             "-error_file", str(tmp_path / f"sipp-{ip}-errors.log"), "-trace_msg",
                             "-message_file", str(tmp_path / f"sipp-{ip}-messages.log"), *args],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()


def gateway(tmp_path, server, user, password, ip, tone, proxy=True):
    """baresip registered to SIPx as `user`: the SIM gateway of these tests. With `proxy`, all
    its requests go through SIPx (outbound proxy); without, only its registrations do (its AOR
    is at SIPx) and it calls other addresses directly."""
    host, port = sip_addr(server, "udp")
    if proxy:
        line = (f"<sip:{user}@{ip}>;auth_pass={password};outbound=\"sip:{host}:{port};transport=udp\";"
                "regint=300;audio_codecs=pcmu;answermode=auto")
    else:
        line = f"<sip:{user}@{host}:{port}>;auth_pass={password};regint=300;audio_codecs=pcmu;answermode=auto"
    return media.Baresip(tmp_path / user, ip, tone, account=line, rtp_ports=(33000, 33099))


def test_a_registered_gateway_takes_the_call_into_a_room_and_both_sides_hear(server, pages, audio, tmp_path):
    creds = create_app(server)[:2]
    # baresip answers only its own contact: the number goes in To (RFC 3261 retargeting).
    account = api(server, creds, "POST", "/v1/sip-accounts",
                  {"username": "simgw", "password": "simgw-pass-1", "dial_request_uri": "contact"},
                  expect=201).json()
    with rooms.peer_browsers(audio.tone1000_48k) as (b,), \
            gateway(tmp_path, server, "simgw", "simgw-pass-1", "127.0.0.150", audio.tone400_8k) as gw:
        server.wait_log(lambda e: e.get("message") == "registration" and e.get("username") == "simgw", 10)
        page = rooms.open_peer(b, pages)
        api(server, creds, "POST", "/v1/rooms", {"name": "sales"}, expect=201)
        rooms.join(page, server, rooms.token(server, *creds, "sales", "agent"))

        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4930123456", "route": {"sip_account_id": account["id"]},
            "room": {"name": "sales", "identity": "customer", "display_name": "Customer"}}, expect=201).json()
        assert created["state"] == "CALLING" and created["direction"] == "outbound", created
        assert created["route"] == f"sip_account:{account['id']}", created
        call_id = created["id"]

        gw.wait_event("CALL_ESTABLISHED", 15)
        confirmed = wait_state(server, creds, call_id, "CONFIRMED")
        assert confirmed["codec"] == "PCMU", confirmed
        sent = next(e for e in server.events() if e.get("message") == "INVITE sent")
        assert sent["to"].startswith("sip:simgw") and sent["peer"].startswith("127.0.0.150:"), sent

        heard = rooms.heard(page, "customer", 3, tmp_path / "page-hears-phone.wav")
        check = media.tone_check(heard, 400)
        assert check.band_ratio > 0.7, check

        api(server, creds, "DELETE", f"/v1/calls/{call_id}", expect=202)
        gw.wait_event("CALL_CLOSED", 15)
        ended = wait_state(server, creds, call_id, "DISCONNECTED")
        got = media.tone_check(gw.recording("dec"), 1000, skip_s=1.0)
        assert got.band_ratio > 0.7 and got.active_s >= 1.5, got

    assert states(ended)[0] == ("CALLING", 0), ended
    assert ("CONFIRMED", 200) in states(ended), ended
    # The leg's last statistics reach the record once the leg is gone.
    stats = rooms.wait_until(lambda: call_state(server, creds, call_id).get("media"), timeout=10,
                             what="media statistics")
    assert stats["packets_received"] > 100 and stats["packets_sent"] > 100, stats
    assert 1.0 <= stats["mos"] <= 4.5 and stats["packets_lost"] == 0, stats
    assert states(ended)[-1] == ("DISCONNECTED", 200), ended
    assert ended["end"]["cause"] == "local_hangup" and ended["done"], ended
    assert "customer" not in participants(server, creds, "sales")
    cdrs = api(server, creds, "GET", "/v1/cdrs", expect=200).json()["items"]
    assert [c["call_id"] for c in cdrs] == [call_id], cdrs
    csv = api(server, creds, "GET", "/v1/cdrs?format=csv", expect=200)
    assert csv.headers["content-type"].startswith("text/csv") and call_id in csv.text, csv.text


@pytest.mark.parametrize("code,reason,cause", [
    ("486", "Busy Here", "rejected"),
    ("404", "Not Found", "rejected"),
    ("503", "Service Unavailable", "rejected"),
])
def test_a_refusal_ends_the_call_with_its_code_and_leaves_the_room(server, tmp_path, code, reason, cause):
    creds = create_app(server)[:2]
    with sipp_uas(tmp_path, "127.0.0.151", "uas_reject.xml", CODE=code, REASON=reason) as uas:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:+4930111@127.0.0.151:5060", "room": {"name": "refusals"}}, expect=201).json()
        ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=20)
        assert uas.wait(10) == 0
    assert states(ended)[-1] == ("DISCONNECTED", int(code)), ended
    assert ended["history"][-1]["reason"] == reason and ended["end"]["cause"] == cause, ended
    assert participants(server, creds, "refusals") == []


def test_a_route_that_fails_gives_way_to_the_next_and_the_row_names_the_one_that_carried_it(server, tmp_path):
    """Automatic routing tries the trunks by name: `a-down` answers 503, so `b-up` carries the
    call; the call's `route`, while up and in its CDR, is `b-up`'s (billing goes by it)."""
    creds = create_app(server)[:2]
    down = api(server, creds, "POST", "/v1/trunks", {"name": "a-down", "outbound": {"host": "127.0.0.163"}},
               expect=201).json()
    up = api(server, creds, "POST", "/v1/trunks", {"name": "b-up", "outbound": {"host": "127.0.0.164"}},
             expect=201).json()
    with sipp_uas(tmp_path, "127.0.0.163", "uas_reject.xml", CODE="503", REASON="Service Unavailable") as failing, \
            sipp_uas(tmp_path, "127.0.0.164", "uas_answer.xml") as answering:
        created = api(server, creds, "POST", "/v1/calls", {"to": "+4930123", "room": {"name": "fallback"}},
                      expect=201).json()
        assert created["route"] == f"trunk:{down['id']}", created
        answered = wait_state(server, creds, created["id"], "CONFIRMED", timeout=20)
        assert failing.wait(10) == 0
        assert answered["route"] == f"trunk:{up['id']}", answered
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        wait_state(server, creds, created["id"], "DISCONNECTED")
        assert answering.wait(10) == 0
    cdrs = api(server, creds, "GET", "/v1/cdrs", expect=200).json()["items"]
    assert [c["route"] for c in cdrs if c["call_id"] == created["id"]] == [f"trunk:{up['id']}"], cdrs


def test_no_answer_within_the_ring_timeout_cancels_with_408(fast_server, tmp_path):
    """The phone rings until the call's ring timeout, which cancels it. Timer B (64·T1: 3.2 s
    on this server, 32 s by default) stops at the phone's 180 (RFC 3261 §17.1.1.2), so a ring
    timeout longer than it (5 s) is what ends the call."""
    server = fast_server
    creds = create_app(server)[:2]
    with sipp_uas(tmp_path, "127.0.0.152", "uas_ring_until_cancel.xml") as uas:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:+4930222@127.0.0.152:5060", "room": {"name": "ringing"}, "ring_timeout": 5},
            expect=201).json()
        early = wait_state(server, creds, created["id"], "EARLY", timeout=10)
        assert ("EARLY", 180) in states(early), early
        assert participants(server, creds, "ringing") == [early["room"]["identity"]]
        ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=20)
        # The phone got the CANCEL and answered it (sipp exits 0 only if its scenario ran).
        assert uas.wait(10) == 0
    assert states(ended) == [("CALLING", 0), ("EARLY", 180), ("DISCONNECTED", 408)], ended
    assert ended["end"]["cause"] == "no_answer", ended
    at = [datetime.datetime.fromisoformat(h["at"].replace("Z", "+00:00")) for h in ended["history"]]
    rang = (at[-1] - at[1]).total_seconds()
    assert rang >= 4.5, f"rang {rang} s: the ring timeout ended it, not Timer B"
    assert participants(server, creds, "ringing") == []


def test_hanging_up_while_it_rings_cancels_with_487(server, tmp_path):
    creds = create_app(server)[:2]
    with sipp_uas(tmp_path, "127.0.0.153", "uas_ring_until_cancel.xml") as uas:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:+4930333@127.0.0.153:5060", "room": {"name": "ringing"}}, expect=201).json()
        wait_state(server, creds, created["id"], "EARLY", timeout=10)
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=15)
        assert uas.wait(10) == 0
    assert states(ended)[-1] == ("DISCONNECTED", 487), ended
    assert ended["end"]["cause"] == "local_hangup", ended
    assert participants(server, creds, "ringing") == []


def test_an_unreachable_phone_times_out_with_408(fast_server, tmp_path):
    creds = create_app(fast_server)[:2]
    created = api(fast_server, creds, "POST", "/v1/calls", {
        "to": "sip:+4930444@127.0.0.154:5999", "room": {"name": "nowhere"}}, expect=201).json()
    # In the room while it is dialled, and the room says so (it joined after CALLING began).
    rooms.wait_until(lambda: [p["call_state"] for p in api(fast_server, creds, "GET", "/v1/rooms/nowhere").json()
                              .get("participants", [])] == ["CALLING"], timeout=10, what="the phone CALLING in the room")
    ended = wait_state(fast_server, creds, created["id"], "DISCONNECTED", timeout=20)
    assert states(ended) == [("CALLING", 0), ("DISCONNECTED", 408)], ended
    assert ended["end"]["cause"] == "unreachable", ended
    assert participants(fast_server, creds, "nowhere") == []


def test_a_phone_sending_another_codec_its_answer_listed_is_heard(data_dir, audio, tmp_path):
    """RFC 3264 §5.1: an answer listing several codecs lets the phone send with any of them, as
    PBXs do after a transfer or a bridge. This phone (sipp) answers PCMA first, then PCMU, and
    sends PCMU: SIPx sends PCMA and takes the PCMU as the call's audio, so the call outlives
    its 2 s media timeout and counts what came."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_MEDIA__MEDIA_TIMEOUT_SECS": "2",
                              "SIPX_ROOMS__UDP": "127.0.0.1:0"}).start()
    try:
        creds = create_app(s)[:2]
        ip = "127.0.0.166"
        (tmp_path / "uac_audio.ulaw").write_bytes(pathlib.Path(audio["tone1000_8k.ulaw"]).read_bytes())
        fill = {"m=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000":
                "m=audio [media_port] RTP/AVP 8 0\na=rtpmap:8 PCMA/8000\na=rtpmap:0 PCMU/8000",
                '<recv request="ACK" />':
                '<recv request="ACK" />\n  <nop><action><exec rtp_stream="uac_audio.ulaw,-1,0"/></action></nop>'}
        with sipp_uas(tmp_path, ip, "uas_answer.xml", **fill):
            created = api(s, creds, "POST", "/v1/calls", {
                "to": f"sip:phone@{ip}:5060", "room": {"name": "codecs"}}, expect=201).json()
            wait_state(s, creds, created["id"], "CONFIRMED")
            # Twice the media timeout with only PCMU coming: the call must not end by itself.
            with pytest.raises(AssertionError):
                s.wait_log(lambda e: "media timeout" in json.dumps(e).lower().replace("_", " "), 4)
            # A live call shows its media statistics (refreshed every 5 s) before it ends.
            live = rooms.wait_until(
                lambda: (c := api(s, creds, "GET", f"/v1/calls/{created['id']}").json()).get("media") and c,
                timeout=10, what="the live call's media statistics")
            assert live["state"] == "CONFIRMED" and not live["done"], live
            assert live["media"]["packets_received"] > 50 and live["media"]["packets_sent"] > 50, live
            api(s, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
            ended = wait_state(s, creds, created["id"], "DISCONNECTED")
        assert ended["end"]["cause"] == "local_hangup", ended
        # The last statistics replace the live ones once the leg is gone.
        stats = rooms.wait_until(
            lambda: (m := api(s, creds, "GET", f"/v1/calls/{created['id']}").json()["media"])["packets_received"]
            > live["media"]["packets_received"] and m,
            what="the ended call's last media statistics")
        assert stats["packets_received"] >= 150, stats
    finally:
        s.stop()

def test_keys_for_a_phone_that_holds_the_call_are_refused(server, tmp_path):
    """A phone that answers `sendonly` holds the call: it takes no media, so keys sent to it
    would go nowhere. The API says so (409) rather than accepting them."""
    creds = create_app(server)[:2]
    ip = "127.0.0.167"
    fill = {"a=rtpmap:0 PCMU/8000": "a=rtpmap:0 PCMU/8000\na=sendonly"}
    with sipp_uas(tmp_path, ip, "uas_answer.xml", **fill):
        created = api(server, creds, "POST", "/v1/calls", {
            "to": f"sip:phone@{ip}:5060", "room": {"name": "held"}}, expect=201).json()
        wait_state(server, creds, created["id"], "CONFIRMED")
        r = api(server, creds, "POST", f"/v1/calls/{created['id']}/dtmf", {"digits": "12"})
        assert r.status_code == 409 and "holds the call" in r.json()["detail"], r.text
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        wait_state(server, creds, created["id"], "DISCONNECTED")

def test_an_account_with_no_registered_device_ends_480(server):
    creds = create_app(server)[:2]
    account = api(server, creds, "POST", "/v1/sip-accounts",
                  {"username": "offlinegw", "password": "offline-pass-1"}, expect=201).json()
    created = api(server, creds, "POST", "/v1/calls", {
        "to": "+4930555", "route": {"sip_account_id": account["id"]}, "room": {"name": "empty"}},
        expect=201).json()
    ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=10)
    assert states(ended)[-1] == ("DISCONNECTED", 480), ended
    assert ended["history"][-1]["reason"] == "Not registered", ended
    # No phone was reached: unreachable, not refused by one.
    assert ended["end"]["cause"] == "unreachable", ended


def test_bad_dial_requests_get_problem_bodies(server):
    creds = create_app(server)[:2]
    other = create_app(server, "other")[:2]
    foreign = api(server, other, "POST", "/v1/trunks", {"name": "theirs", "outbound": {"host": "127.0.0.9"}},
                  expect=201).json()
    plain = api(server, creds, "POST", "/v1/trunks", {"name": "plain", "outbound": {"host": "127.0.0.9"}},
                expect=201).json()
    cases = [
        # A sips: URI travels over TLS on every hop (RFC 3261 §26.2.2): not through a UDP trunk.
        ({"to": "sips:1@127.0.0.9", "room": {"name": "r"}, "route": {"trunk_id": plain["id"]}}, "to"),
        ({"to": "not a number", "room": {"name": "r"}}, "to"),
        # A Request-URI carries no headers part (RFC 3261 §19.1.1), and port 0 reaches nobody.
        ({"to": "sip:1@127.0.0.233:5060?X-Inj=1", "room": {"name": "r"}}, "to"),
        ({"to": "sip:1@127.0.0.233:0", "room": {"name": "r"}}, "to"),
        ({"to": "+49301", "room": {"name": "bad room!"}}, "room.name"),
        ({"to": "+49301", "room": {"name": "r"}, "ring_timeout": 0}, "ring_timeout"),
        ({"to": "+49301", "room": {"name": "r"}, "dtmf_after_answer": "12x"}, "dtmf_after_answer"),
        ({"to": "+49301", "room": {"name": "r"}, "webhook_url": "ftp://x"}, "webhook_url"),
        ({"to": "+49301", "room": {"name": "r"}, "route": {"trunk_id": foreign["id"]}}, "route.trunk_id"),
    ]
    for body, field in cases:
        r = api(server, creds, "POST", "/v1/calls", body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert field in [e["field"] for e in r.json()["errors"]], (body, r.json())
    r = api(server, creds, "GET", "/v1/calls/call_nope")
    assert r.status_code == 404 and r.json()["type"].endswith("not-found"), r.text


def test_a_trunk_with_digest_carries_the_call_to_a_phone_and_both_sides_hear(server, pages, audio, tmp_path):
    """The trunk's provider (Kamailio) challenges the INVITE (407); SIPx answers with the
    trunk's credentials on the exact Request-URI, the provider routes the number to a phone
    (baresip) that answers; the page and the phone hear each other."""
    creds = create_app(server)[:2]
    kam = Kamailio("provider.cfg", ("127.0.0.160", 5060), tmp_path / "kam", UAS='"sip:peer@127.0.0.161:5070"')
    try:
        trunk = api(server, creds, "POST", "/v1/trunks", {
            "name": "provider", "outbound": {"host": "127.0.0.160", "port": 5060, "username": "trunkuser",
                                             "password": "trunkpw-123"}}, expect=201).json()
        phone = media.Baresip(tmp_path / "phone", "127.0.0.161", audio.tone400_8k, rtp_ports=(33100, 33199))
        with rooms.peer_browsers(audio.tone1000_48k) as (b,), phone:
            page = rooms.open_peer(b, pages)
            rooms.join(page, server, rooms.token(server, *creds, "support", "agent"))
            created = api(server, creds, "POST", "/v1/calls", {
                "to": "+4930123456", "route": {"trunk_id": trunk["id"]},
                "room": {"name": "support", "identity": "callee"}}, expect=201).json()
            assert created["route"] == f"trunk:{trunk['id']}", created
            phone.wait_event("CALL_ESTABLISHED", 15)
            wait_state(server, creds, created["id"], "CONFIRMED")
            heard = rooms.heard(page, "callee", 3, tmp_path / "page-hears-phone.wav")
            check = media.tone_check(heard, 400)
            assert check.band_ratio > 0.7, check
            phone.hangup()
            ended = wait_state(server, creds, created["id"], "DISCONNECTED")
        got = media.tone_check(phone.recording("dec"), 1000, skip_s=1.0)
        assert got.band_ratio > 0.7 and got.active_s >= 1.5, got
        log = kam.log_text()
        # One challenge, one authorised INVITE whose digest uri is the Request-URI as sent.
        assert log.count("INVITE challenged") == 1 and "AUTHORIZED INVITE sip:+4930123456@127.0.0.160:5060" in log, log[-3000:]
    finally:
        kam.stop()
    assert [s for s, _ in states(ended)] == ["CALLING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED"], ended
    assert ("EARLY", 180) in states(ended) and ("CONFIRMED", 200) in states(ended), ended
    assert states(ended)[-1] == ("DISCONNECTED", 200) and ended["end"]["cause"] == "remote_hangup", ended
    assert "callee" not in participants(server, creds, "support")


def test_dtmf_goes_both_ways(server, audio, tmp_path):
    """Keys pressed on the phone reach the call (RFC 4733) and come out as `call.dtmf` events;
    keys sent through the API, and the dial string after the answer, reach the phone as the
    right digits."""
    from test_webhooks import EventStream

    creds = create_app(server)[:2]
    stream = EventStream(server, creds, types="call.dtmf")
    account = api(server, creds, "POST", "/v1/sip-accounts",
                  {"username": "dtmfgw", "password": "dtmfgw-pass-1", "dial_request_uri": "contact"},
                  expect=201).json()
    with gateway(tmp_path, server, "dtmfgw", "dtmfgw-pass-1", "127.0.0.155", audio.tone400_8k) as gw:
        server.wait_log(lambda e: e.get("message") == "registration" and e.get("username") == "dtmfgw", 10)
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4930777", "route": {"sip_account_id": account["id"]}, "room": {"name": "ivr"},
            "dtmf_after_answer": ",1,2"}, expect=201).json()
        gw.wait_event("CALL_ESTABLISHED", 15)
        wait_state(server, creds, created["id"], "CONFIRMED")
        api(server, creds, "POST", f"/v1/calls/{created['id']}/dtmf", {"digits": "9#"}, expect=202)
        got = rooms.wait_until(lambda: (d := [e.get("param") for e in gw.events
                                              if e.get("type") == "CALL_DTMF_START"]) and len(d) >= 4 and d,
                               timeout=15, what="four digits at the phone")
        assert got == ["1", "2", "9", "#"], got
        gw.send_dtmf("47")
        pressed = [json.loads(stream.next_event()["data"]) for _ in range(2)]
        assert [p["data"]["digit"] for p in pressed] == ["4", "7"], pressed
        assert all(p["type"] == "call.dtmf" and p["call_id"] == created["id"] for p in pressed), pressed
        stream.close()
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        gw.wait_event("CALL_CLOSED", 15)
    r = api(server, creds, "POST", f"/v1/calls/{created['id']}/dtmf", {"digits": "1"})
    assert r.status_code == 409, r.text


def test_a_blind_transfer_moves_the_phone_and_ends_our_side(server, audio, tmp_path):
    """REFER to a second phone (a sipp UAS): the first phone calls it, reports the answer by
    NOTIFY, and SIPx's side ends `DISCONNECTED 200 Transferred`."""
    creds = create_app(server)[:2]
    account = api(server, creds, "POST", "/v1/sip-accounts",
                  {"username": "xfergw", "password": "xfergw-pass-1", "dial_request_uri": "contact"},
                  expect=201).json()
    with gateway(tmp_path, server, "xfergw", "xfergw-pass-1", "127.0.0.156", audio.tone400_8k,
                    proxy=False) as gw, \
            sipp_uas(tmp_path, "127.0.0.157", "uas_answer.xml") as target:
        server.wait_log(lambda e: e.get("message") == "registration" and e.get("username") == "xfergw", 10)
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4930888", "route": {"sip_account_id": account["id"]}, "room": {"name": "desk"}},
            expect=201).json()
        gw.wait_event("CALL_ESTABLISHED", 15)
        wait_state(server, creds, created["id"], "CONFIRMED")
        r = api(server, creds, "POST", f"/v1/calls/{created['id']}/transfer", {"to": "sip:desk2@127.0.0.157:5060"})
        assert r.status_code == 202, r.text
        ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=20)
        # The new call is up between the two phones; hang it up to let sipp finish.
        gw.command("hangup")
        assert target.wait(15) == 0
    assert ended["history"][-1]["reason"] == "Transferred" and ended["end"]["cause"] == "transferred", ended
    progress = [(e["state"], e.get("status")) for e in server.events() if e.get("message") == "call transfer"]
    assert progress[0] == ("requested", None) and ("accepted", 202) in progress, progress
    assert progress[-1] == ("completed", 200), progress
    assert participants(server, creds, "desk") == []
    r = api(server, creds, "POST", f"/v1/calls/{created['id']}/transfer", {"to": "+1"})
    assert r.status_code == 409, r.text


def test_an_attended_transfer_connects_the_two_phones_and_ends_both_calls(server, audio, tmp_path):
    """Two answered calls; transferring the first with `replaces` = the second sends the first
    phone (linphonec) a REFER whose Refer-To carries a Replaces of the second call's dialog
    (RFC 3891). The first phone calls the second (sipp) with it, the calls to SIPx end
    `DISCONNECTED 200 Transferred`, and the two phones stay connected to each other."""
    from linphone import linphonec

    creds = create_app(server)[:2]
    other_app = create_app(server)[:2]
    with linphonec(tmp_path, audio.tone400_8k) as lin, \
            sipp_uas(tmp_path, "127.0.0.159", "uas_answer.xml", calls=2) as target:
        first = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:lin@127.0.0.1:5111", "room": {"name": "desk"}}, expect=201).json()
        wait_state(server, creds, first["id"], "CONFIRMED")
        second = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:colleague@127.0.0.159:5060", "room": {"name": "desk"}}, expect=201).json()
        answered = wait_state(server, creds, second["id"], "CONFIRMED")

        # Neither a call of another application nor the call itself can be the one replaced;
        # `to` and `replaces` together, or neither, are refused.
        path = f"/v1/calls/{first['id']}/transfer"
        for body in ({"replaces": first["id"]}, {"to": "+1", "replaces": second["id"]}, {}):
            r = api(server, creds, "POST", path, body)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
        r = api(server, other_app, "POST", f"/v1/calls/{second['id']}/transfer", {"replaces": first["id"]})
        assert r.status_code == 404, r.text
        r = api(server, creds, "POST", f"/v1/calls/{second['id']}/transfer",
                {"replaces": "call_00000000000000000000"})
        assert r.status_code == 422, r.text

        r = api(server, creds, "POST", path, {"replaces": second["id"]})
        assert r.status_code == 202, r.text
        ended_first = wait_state(server, creds, first["id"], "DISCONNECTED", timeout=20)
        ended_second = wait_state(server, creds, second["id"], "DISCONNECTED", timeout=20)
        # The phones now talk to each other: linphonec has one call, to sipp.
        lin.wait_output("calls", lambda out: "127.0.0.159" in out, what="linphonec's call to sipp")
        lin.generic("terminate")
        assert target.wait(15) == 0
    for ended in (ended_first, ended_second):
        assert ended["history"][-1]["reason"] == "Transferred" and ended["end"]["cause"] == "transferred", ended
    # The second phone got an INVITE from the first one naming the dialog it had with SIPx.
    messages = (tmp_path / "sipp-127.0.0.159-messages.log").read_text()
    replaces = [line.split(":", 1)[1].strip() for line in messages.splitlines()
                if line.lower().startswith("replaces:")]
    assert len(replaces) == 1, replaces
    call_id, *params = [p.strip() for p in replaces[0].split(";")]
    tags = dict(p.split("=", 1) for p in params)
    assert call_id == answered["sip_call_id"], (replaces, answered["sip_call_id"])
    # to-tag is the second phone's own tag (sipp's), from-tag SIPx's.
    assert "SIPpTag01" in tags["to-tag"] and "SIPpTag" not in tags["from-tag"], tags
    progress = [(e["state"], e.get("status")) for e in server.events() if e.get("message") == "call transfer"]
    assert progress[0] == ("requested", None) and progress[-1] == ("completed", 200), progress
    assert participants(server, creds, "desk") == []


def test_max_duration_ends_an_answered_call(server, tmp_path):
    creds = create_app(server)[:2]
    with sipp_uas(tmp_path, "127.0.0.158", "uas_answer.xml") as uas:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:+4930999@127.0.0.158:5060", "room": {"name": "short"}, "max_duration": 2},
            expect=201).json()
        confirmed = wait_state(server, creds, created["id"], "CONFIRMED", timeout=10)
        ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=10)
        assert uas.wait(10) == 0  # it got our BYE
    answered = next(h["at"] for h in confirmed["history"] if h["state"] == "CONFIRMED")
    assert ended["history"][-1]["reason"] == "Max duration reached", ended
    assert ended["end"]["cause"] == "max_duration", ended
    cdr = api(server, creds, "GET", "/v1/cdrs", expect=200).json()["items"][0]
    assert cdr["answer"] == answered and cdr["duration_s"] == 2, cdr


def test_every_state_change_reaches_the_calls_webhook_signed_in_order_even_after_an_outage(data_dir, tmp_path):
    """The call's own webhook receiver is down while the call happens: deliveries are retried,
    and once it is up every state change arrives, signed, in order; the delivery log shows the
    attempts. The event stream carries the same events."""
    from test_webhooks import FAST, EventStream, Receiver, closed_port

    server = Server(data_dir, env=FAST).start()
    try:
        creds = create_app(server)[:2]
        port = closed_port()
        stream = EventStream(server, creds, types="call.state")
        with sipp_uas(tmp_path, "127.0.0.159", "uas_answer.xml") as uas:
            created = api(server, creds, "POST", "/v1/calls", {
                "to": "sip:+4930999@127.0.0.159:5060", "room": {"name": "hooks"}, "max_duration": 1,
                "webhook_url": f"http://127.0.0.1:{port}/hook"}, expect=201).json()
            wait_state(server, creds, created["id"], "DISCONNECTED", timeout=15)
            assert uas.wait(10) == 0
        streamed = [json.loads(stream.next_event()["data"])["data"]["state"] for _ in range(5)]
        stream.close()
        assert streamed == ["CALLING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED"], streamed

        def retried():
            items = api(server, creds, "GET", f"/v1/webhook-deliveries?call_id={created['id']}").json()["items"]
            return items if items and items[0]["attempt_count"] >= 2 else None
        rooms.wait_until(retried, timeout=15, what="the first delivery retried")

        receiver = Receiver(creds[1], port)
        try:
            got = [receiver.next(15) for _ in range(5)]
        finally:
            receiver.close()
        assert all(g["valid"] for g in got), got
        events = [json.loads(g["body"]) for g in got]
        assert [e["data"]["state"] for e in events] == ["CALLING", "EARLY", "CONNECTING", "CONFIRMED",
                                                        "DISCONNECTED"], events
        assert [e["data"]["seq"] for e in events] == [0, 1, 2, 3, 4]
        assert all(e["type"] == "call.state" and e["call_id"] == created["id"] for e in events), events
        assert events[1]["data"]["code"] == 180 and events[-1]["data"]["cause"] == "max_duration", events
        log = api(server, creds, "GET", f"/v1/webhook-deliveries?call_id={created['id']}").json()["items"]
        first = min(log, key=lambda d: d["id"])
        assert first["attempt_count"] >= 2, first
    finally:
        server.stop()


def test_a_phone_answering_sdes_gets_aes_256_gcm_when_sipx_offers_only_that(data_dir, audio, tmp_path):
    """`media.srtp_suites` chooses what SIPx offers: AEAD_AES_256_GCM alone (RFC 7714), to an
    account whose policy requires SRTP. baresip (libre's SRTP) answers it, and the call's audio
    crosses encrypted both ways: no cleartext RTP on the wire, every packet of the phone taken
    by SIPx (authenticated and decrypted), and none of SIPx's refused by baresip."""
    server = Server(data_dir, env={"SIPX_MEDIA__SRTP_SUITES": '["AEAD_AES_256_GCM"]'}).start()
    try:
        creds = create_app(server)[:2]
        account = api(server, creds, "POST", "/v1/sip-accounts",
                      {"username": "gcmgw", "password": "gcmgw-pass-1", "dial_request_uri": "contact",
                       "srtp": "required"}, expect=201).json()
        host, port = sip_addr(server, "udp")
        line = (f"<sip:gcmgw@127.0.0.157>;auth_pass=gcmgw-pass-1;outbound=\"sip:{host}:{port};transport=udp\";"
                "regint=300;audio_codecs=pcmu;answermode=auto;mediaenc=srtp-mand")
        phone = media.Baresip(tmp_path / "gcmgw", "127.0.0.157", audio.tone400_8k, account=line,
                              rtp_ports=(33200, 33299))
        with media.Capture(tmp_path / "gcm.pcap", "udp portrange 33200-33299") as cap, phone:
            server.wait_log(lambda e: e.get("message") == "registration" and e.get("username") == "gcmgw", 10)
            created = api(server, creds, "POST", "/v1/calls", {
                "to": "+4930256", "route": {"sip_account_id": account["id"]}, "room": {"name": "vault"}},
                expect=201).json()
            phone.wait_event("CALL_ESTABLISHED", 15)
            wait_state(server, creds, created["id"], "CONFIRMED")
            negotiated = server.wait_log(lambda e: e.get("message") == "call media negotiated")
            assert negotiated["srtp"] == "AEAD_AES_256_GCM", negotiated
            threading.Event().wait(2.5)  # media time: nothing to wait for but the clock
            phone.hangup()
            wait_state(server, creds, created["id"], "DISCONNECTED")
            log = phone.log_text()
        media.assert_no_cleartext_rtp(cap.pcap, min_streams=2)
        stats = rooms.wait_until(lambda: call_state(server, creds, created["id"]).get("media"), timeout=10,
                                 what="media statistics")
        # Every packet from the phone authenticated and decrypted: none lost, none refused.
        assert stats["packets_received"] > 50 and stats["packets_lost"] == 0, stats
        # And baresip decrypted SIPx's: its call summary counts only packets its SRTP let through.
        assert "cryptosuite=AEAD_AES_256_GCM" in log, log
        received = re.search(r"packets:\s+\d+\s+(\d+)", log)
        assert received and int(received.group(1)) > 50, log[-1500:]
    finally:
        server.stop()


def tcp_accepts(addr):
    import socket
    try:
        socket.create_connection(addr, timeout=0.5).close()
        return True
    except OSError:
        return False


def test_a_tcp_trunk_that_does_not_register_connects_for_its_calls(server, tmp_path):
    """A trunk over TCP that SIPx does not register with (a provider that knows SIPx by its
    address or its digest answers) gets its connection when a call first needs it; calls placed
    meanwhile wait for it, and both go down that one connection. Address 127.0.0.234."""
    creds = create_app(server)[:2]
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "tcp-provider", "outbound": {
        "host": "127.0.0.234", "port": 5060, "transport": "tcp"}}, expect=201).json()
    connections = lambda: int(re.search(r"^sipx_sip_stream_connections (\d+)",  # noqa: E731
                                        requests.get(server.url("/metrics"), timeout=5).text, re.M).group(1))
    with sipp_uas(tmp_path, "127.0.0.234", "uas_answer.xml", calls=2, args=("-t", "t1")) as provider:
        # sipp listens once it has started: a refused connection would end the calls with 503.
        rooms.wait_until(lambda: tcp_accepts(("127.0.0.234", 5060)), timeout=10, what="sipp listening on TCP")
        calls = [api(server, creds, "POST", "/v1/calls", {"to": f"+4930{n}", "room": {"name": "tcp"},
                                                          "route": {"trunk_id": trunk["id"]}}, expect=201).json()
                 for n in (111, 222)]
        for call in calls:
            answered = wait_state(server, creds, call["id"], "CONFIRMED", timeout=15)
            assert answered["route"] == f"trunk:{trunk['id']}", answered
        assert connections() == 1
        for call in calls:
            api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        assert provider.wait(20) == 0
    log = (tmp_path / "sipp-127.0.0.234-messages.log").read_text()
    assert log.count("INVITE sip:+4930111@127.0.0.234:5060;transport=tcp") >= 1, log[:2000]
    assert re.search(r"^Via: SIP/2.0/TCP ", log, re.M), log[:2000]


def test_a_call_hung_up_while_its_trunk_connection_opens_never_reaches_the_provider(server):
    """The provider is slow to accept (its backlog is full, so SIPx's SYNs go unanswered): a
    call hung up meanwhile ends at once, and when the provider accepts at last no INVITE comes.
    Address 127.0.0.235."""
    import socket
    import time
    creds = create_app(server)[:2]
    provider = socket.socket()
    provider.bind(("127.0.0.235", 5060))
    provider.listen(0)
    # Connections the provider does not accept fill its backlog.
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(("127.0.0.235", 5060))
        fillers.append(f)
    try:
        trunk = api(server, creds, "POST", "/v1/trunks", {"name": "slow", "outbound": {
            "host": "127.0.0.235", "port": 5060, "transport": "tcp"}}, expect=201).json()
        call = api(server, creds, "POST", "/v1/calls", {"to": "+4930777", "room": {"name": "slow"},
                                                        "route": {"trunk_id": trunk["id"]}}, expect=201).json()
        server.wait_log(lambda e: e.get("message") == "connecting to the provider for a call")
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        ended = wait_state(server, creds, call["id"], "DISCONNECTED", timeout=3)
        assert ended["end"]["cause"] == "local_hangup", ended
        # The provider accepts everything now: SIPx's connection, if it opens, carries nothing.
        provider.settimeout(0.5)
        received = b""
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and b"INVITE" not in received:
            try:
                conn, _ = provider.accept()
            except TimeoutError:
                continue
            conn.settimeout(0.5)
            try:
                received += conn.recv(65535)
            except (TimeoutError, OSError):
                pass
            fillers.append(conn)
        assert b"INVITE" not in received, received[:500]
    finally:
        for f in fillers:
            f.close()
        provider.close()


def test_a_call_into_a_room_that_joins_cannot_create_is_refused_at_once(data_dir):
    """With rooms.auto_create off, a dial into a room that does not exist is a 404 at the
    request, not a phone rung and then hung up for want of a room. Once the room is created,
    the same request is a call. Address 127.0.0.238 (nothing answers there)."""
    s = Server(data_dir, env={"SIPX_ROOMS__AUTO_CREATE": "false"}).start()
    try:
        creds = create_app(s)[:2]
        body = {"to": "sip:+4930444@127.0.0.238:5060", "room": {"name": "not-yet"}}
        r = requests.post(s.url("/v1/calls"), headers=auth_header(*creds), json=body, timeout=5)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", r.text
        assert "POST /v1/rooms" in r.json()["detail"], r.text
        assert api(s, creds, "GET", "/v1/calls").json()["items"] == []
        api(s, creds, "POST", "/v1/rooms", {"name": "not-yet"}, expect=201)
        # Over TCP to an address nothing listens on: refused, so the call ends at once.
        body["to"] += ";transport=tcp"
        call = api(s, creds, "POST", "/v1/calls", body, expect=201).json()
        # The history the call's machine wrote starts when the answer said it did.
        ended = wait_state(s, creds, call["id"], "DISCONNECTED", timeout=10)
        assert ended["history"][0] == call["history"][0], (call["history"], ended["history"])
    finally:
        s.stop()


def test_a_call_never_takes_an_identity_someone_has_in_the_room(server):
    """A second dial-out under the identity of a call already in the room is refused (409), not
    placed to hang the first one up once it is answered; a browser's join token cannot take a
    phone-… name. Address 127.0.0.238 (nothing answers there: the first call stays CALLING)."""
    creds = create_app(server)[:2]
    body = {"to": "sip:+4930555@127.0.0.238:5060", "room": {"name": "desk", "identity": "cust"}}
    first = api(server, creds, "POST", "/v1/calls", body, expect=201).json()
    rooms.wait_until(lambda: any(p["identity"] == "cust" for p in
                                 api(server, creds, "GET", "/v1/rooms/desk", expect=200).json()["participants"]),
                     what="the first call in the room")
    r = api(server, creds, "POST", "/v1/calls", body)
    assert r.status_code == 409 and "cust" in r.json()["detail"], r.text
    assert call_state(server, creds, first["id"])["state"] == "CALLING"
    r = api(server, creds, "POST", "/v1/rooms/desk/tokens", {"identity": "phone-7"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "identity", r.text
    r = api(server, creds, "POST", "/v1/calls", {**body, "room": {"name": "desk", "identity": "phone-1"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "room.identity", r.text
    # A browser whose token names the caller is turned away; the caller stays.
    token = api(server, creds, "POST", "/v1/rooms/desk/tokens", {"identity": "cust"}, expect=201).json()["token"]
    assert ws_close_code(server, token) == 4409
    assert call_state(server, creds, first["id"])["state"] == "CALLING"
    api(server, creds, "DELETE", f"/v1/calls/{first['id']}", expect=202)



def test_dial_outs_racing_for_one_identity_get_one_call(server, tmp_path):
    """Dial-outs sent at once under one identity: one call, the others refused (409), not
    recorded as calls that then end `room_failed` when the core finds the identity taken. Once
    that call has ended, the identity is free again."""
    import concurrent.futures

    creds = create_app(server)[:2]
    body = {"to": "sip:+4930556@127.0.0.239:5060", "room": {"name": "race", "identity": "racer"}}
    with sipp_uas(tmp_path, "127.0.0.239", "uas_ring_until_cancel.xml") as uas:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: api(server, creds, "POST", "/v1/calls", body), range(8)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [201] + [409] * 7, [(r.status_code, r.text) for r in answers]
        first = next(r.json() for r in answers if r.status_code == 201)
        refused = next(r for r in answers if r.status_code == 409)
        assert refused.headers["content-type"] == "application/problem+json"
        assert "racer" in refused.json()["detail"], refused.text
        live = api(server, creds, "GET", "/v1/calls?room=race&active=true", expect=200).json()["items"]
        assert [c["id"] for c in live] == [first["id"]], live
        wait_state(server, creds, first["id"], "EARLY", timeout=10)
        api(server, creds, "DELETE", f"/v1/calls/{first['id']}", expect=202)
        wait_state(server, creds, first["id"], "DISCONNECTED", timeout=15)
        assert uas.wait(10) == 0
    again = api(server, creds, "POST", "/v1/calls", body, expect=201).json()
    api(server, creds, "DELETE", f"/v1/calls/{again['id']}", expect=202)

def test_a_call_read_on_its_state_event_is_in_that_state_and_its_identity_free_on_disconnected(server, tmp_path):
    """An application reacting to `/v1/events` reads the call (`GET /v1/calls/{id}`) on each
    `call.state` event and finds it in that state; on `DISCONNECTED` it dials the same identity
    again at once, and gets its call (no 409 from a row not yet ended). Address 127.0.0.165."""
    from test_webhooks import EventStream

    creds = create_app(server)[:2]
    stream = EventStream(server, creds, types="call.state")
    order = ["CALLING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED"]
    body = {"to": "sip:+4930557@127.0.0.165:5060", "room": {"name": "events", "identity": "desk-1"}}
    try:
        with sipp_uas(tmp_path, "127.0.0.165", "uas_answer.xml", calls=2) as uas:
            call = api(server, creds, "POST", "/v1/calls", body, expect=201).json()
            seen = []
            while not seen or seen[-1] != "DISCONNECTED":
                event = json.loads(stream.next_event(timeout=20)["data"])["data"]
                if event["call_id"] != call["id"]:
                    continue
                if event["state"] == "DISCONNECTED":
                    again = api(server, creds, "POST", "/v1/calls", body)
                    assert again.status_code == 201, again.text
                now = api(server, creds, "GET", f"/v1/calls/{call['id']}", expect=200).json()
                assert order.index(now["state"]) >= order.index(event["state"]), (event, now["state"])
                if event["state"] == "CONFIRMED":
                    api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
                seen.append(event["state"])
            assert seen[-2:] == ["CONFIRMED", "DISCONNECTED"], seen
            second = again.json()
            wait_state(server, creds, second["id"], "CONFIRMED", timeout=15)
            api(server, creds, "DELETE", f"/v1/calls/{second['id']}", expect=202)
            wait_state(server, creds, second["id"], "DISCONNECTED")
            assert uas.wait(20) == 0
    finally:
        stream.close()


def ws_close_code(server, token):
    """Opens the room signalling socket with `token` and returns the code it is closed with."""
    import asyncio
    import websockets

    async def run():
        url = server.url("/v1/rtc").replace("http://", "ws://") + f"?token={token}"
        async with websockets.connect(url, open_timeout=5) as ws:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=5)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
    return asyncio.run(run())
