"""Inbound calls routed by the routing rules (docs/routing.md) through an inbound trunk, against
the real binary with real peers: baresip calls into a fixed room, a room per caller and a room
named by the called number; sipp is refused by a `reject` rule and by no rule; a Python
webhook receiver (checking the signature) picks the room, or answers too late and the rule's
fallback room is taken; sipp types a wrong PIN (RFC 4733 from sip-tester's pcaps), hears the
retry prompt and stays out of the room, then types the right one and is let in. Every call is a
row of `GET /v1/calls` with direction `inbound`. Addresses 127.0.0.170-189 belong here."""

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time

import numpy as np
import pytest
import requests

import media
import rooms
from conftest import Server, auth_header, create_app, run_sipp, sip_addr, sip_transaction


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


def api(server, creds, method, path, body=None, expect=None):
    key, secret, _ = creds
    r = requests.request(method, server.url(path), json=body, headers=auth_header(key, secret), timeout=10)
    if expect is not None:
        assert r.status_code == expect, (r.status_code, r.text)
    return r


def setup(server, ip, *rules):
    """An application, an inbound trunk for `ip`, and `rules` (each limited to that trunk). Each
    write's answer comes once the SIP core has loaded it: no waiting here."""
    creds = create_app(server)
    trunk = api(server, creds, "POST", "/v1/trunks",
                {"name": "carrier", "inbound": {"allowed_cidrs": [f"{ip}/32"]}}, expect=201).json()
    for rule in rules:
        body = {**rule, "match": {"trunk_id": trunk["id"], **rule.get("match", {})}}
        api(server, creds, "POST", "/v1/routing-rules", body, expect=201)
    return creds, trunk["id"]


def called(number, room=None, **action):
    rule = {"match": {"called": {"kind": "exact", "value": number}}}
    if room is not None:
        rule["action"] = {"type": "fixed_room", "room": room, **action}
    else:
        rule["action"] = action
    return rule


def inbound_calls(server, creds):
    return api(server, creds, "GET", "/v1/calls?direction=inbound&limit=100", expect=200).json()["items"]


def wait_call(server, creds, pred, what):
    return rooms.wait_until(lambda: next((c for c in inbound_calls(server, creds) if pred(c)), None),
                            timeout=15, what=what)


def phones_in(server, creds, room):
    r = api(server, creds, "GET", f"/v1/rooms/{room}")
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    return [p for p in r.json()["participants"] if p["kind"] == "phone"]


def baresip(tmp_path, ip, audio, name="phone"):
    return media.Baresip(tmp_path / name, ip, audio.tone400_8k, user="4915100", codecs=("pcmu",),
                         rtp_ports=(32100, 32199))


def dial(ua, server, user):
    host, port = sip_addr(server)
    return ua.dial(f"sip:{user}@{host}:{port}")


def test_fixed_room_reject_and_no_rule(server, tmp_path, audio):
    ip = "127.0.0.170"
    creds, trunk = setup(server, ip, called("100", "lobby"),
                         called("486", None, type="reject", sip_code=486, reason="Busy Here"))
    target = sip_addr(server)
    assert sip_transaction(target, ip, "INVITE", user="486") == 486
    assert sip_transaction(target, ip, "INVITE", user="999") == 404, "no rule: routing.no_rule_status"

    with baresip(tmp_path, ip, audio) as ua:
        dial(ua, server, "100")
        # Its call state follows the join as a second step: wait for both.
        rooms.wait_until(lambda: (p := phones_in(server, creds, "lobby")) and p[0]["call_state"] == "CONFIRMED",
                         what="the phone in lobby, CONFIRMED")
        call = wait_call(server, creds, lambda c: c["state"] == "CONFIRMED", "a confirmed inbound call")
        assert call["direction"] == "inbound" and call["room"]["name"] == "lobby", call
        assert call["route"] == f"trunk:{trunk}" and call["codec"] == "PCMU", call
        assert [h["state"] for h in call["history"]] == ["INCOMING", "CONNECTING", "CONFIRMED"], call
        ua.hangup()
    ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the call ended")
    assert ended["end"]["cause"] == "remote_hangup", ended
    rooms.wait_until(lambda: not phones_in(server, creds, "lobby"), what="the phone leaving")

    refused = {c["end"]["code"]: c for c in inbound_calls(server, creds) if c["end"]["cause"] == "rejected"}
    assert set(refused) == {486, 404}, refused
    assert refused[486]["end"]["reason"] == "Busy Here"
    assert [h["state"] for h in refused[404]["history"]] == ["INCOMING", "DISCONNECTED"]


def test_room_per_caller_and_room_by_called_number(server, tmp_path, audio):
    ip = "127.0.0.171"
    creds, _ = setup(server, ip,
                     {"match": {"called": {"kind": "prefix", "value": "7"}},
                      "action": {"type": "room_per_caller", "prefix": "conf-"}},
                     {"match": {"called": {"kind": "pattern", "value": r"49[0-9]+"}},
                      "action": {"type": "room_by_called_number", "prefix": "did-"}})
    seen = []
    with baresip(tmp_path, ip, audio) as ua:
        for _ in range(2):
            dial(ua, server, "700")
            call = wait_call(server, creds, lambda c: c["state"] == "CONFIRMED", "a confirmed call")
            room = call["room"]["name"]
            assert room.startswith("conf-") and room not in seen, (room, seen)
            assert phones_in(server, creds, room), room
            seen.append(room)
            ua.hangup()
            wait_call(server, creds, lambda c, i=call["id"]: c["id"] == i and c["done"], "the call ended")

        dial(ua, server, "4930123")
        rooms.wait_until(lambda: phones_in(server, creds, "did-4930123"), what="the phone in did-4930123")
        ua.hangup()


class Receiver:
    """A webhook receiver: checks each request's signature under the application's secret and
    answers `answer` (a dict), or nothing until the question has timed out."""

    def __init__(self, ip, secret, answer):
        self.secret, self.answer = secret, answer
        self.questions = []
        self.release = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                sig = dict(p.split("=", 1) for p in self.headers["SIPx-Signature"].split(","))
                mac = hmac.new(outer.secret.encode(), sig["t"].encode() + b"." + body, hashlib.sha256)
                outer.questions.append({"body": json.loads(body), "valid": hmac.compare_digest(
                    mac.hexdigest(), sig["v1"]), "skew": abs(time.time() - int(sig["t"]))})
                if outer.answer is None:
                    # Too late: the rule's timeout passes before any answer.
                    outer.release.wait(5)
                reply = json.dumps(outer.answer or {"room": "too-late"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((ip, 0), Handler)
        self.url = f"http://{ip}:{self.httpd.server_address[1]}/route"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()


def webhook_routed(server, creds, ip, url, timeout_ms, fallback_room):
    """A trunk taking calls from `ip`, each routed by asking `url`; returns the trunk."""
    trunk = api(server, creds, "POST", "/v1/trunks",
                {"name": "carrier", "inbound": {"allowed_cidrs": [f"{ip}/32"]}}, expect=201).json()
    api(server, creds, "POST", "/v1/routing-rules", {
        "match": {"trunk_id": trunk["id"]},
        "action": {"type": "webhook", "url": url, "timeout_ms": timeout_ms, "fallback_room": fallback_room},
    }, expect=201)
    return trunk


def test_webhook_picks_the_room_or_the_fallback_is_taken(server, tmp_path, audio):
    ip, hook_ip = "127.0.0.172", "127.0.0.173"
    key, secret, _ = creds = create_app(server, "hooked")
    receiver = Receiver(hook_ip, secret, {"room": "picked"})
    try:
        trunk = webhook_routed(server, creds, ip, receiver.url, 1000, "fallback")
        with baresip(tmp_path, ip, audio) as ua:
            dial(ua, server, "800")
            rooms.wait_until(lambda: phones_in(server, creds, "picked"), what="the phone in the picked room")
            ua.hangup()
            q = receiver.questions[0]
            assert q["valid"] and q["skew"] < 60, q
            assert q["body"] == {"call": {"from": "4915100", "to": "800", "trunk_id": trunk["id"],
                                          "sip_account_id": None}}, q

            receiver.answer = None
            mark = len(ua.events)
            ua.command("dial", f"sip:801@{sip_addr(server)[0]}:{sip_addr(server)[1]}")
            # Ringing while the webhook is asked, then the fallback room.
            ua.wait_event("CALL_RINGING", 10, since=mark)
            ua.wait_event("CALL_ESTABLISHED", 10, since=mark)
            rooms.wait_until(lambda: phones_in(server, creds, "fallback"), what="the phone in the fallback room")
            assert not phones_in(server, creds, "too-late")
            ua.hangup()
    finally:
        receiver.close()


def frame_rms(payloads):
    """RMS of each 20 ms PCMU payload."""
    table = media.G711_TABLES[0]
    return [float(np.sqrt(np.mean(table[np.frombuffer(p, dtype=np.uint8)].astype(np.float64) ** 2)))
            for p in payloads]


def test_pin_refuses_a_wrong_pin_with_a_prompt_and_admits_the_right_one(server, tmp_path, audio):
    ip = "127.0.0.174"
    creds, _ = setup(server, ip, called("555", "vault", pin="1234"))
    target = sip_addr(server)
    result = {}
    with media.Capture(tmp_path / "pin.pcap", f"host {ip}") as cap:
        sipp = threading.Thread(target=lambda: result.update(run=media.run_sipp_call(
            "uac_pin.xml", tmp_path / "uac", ip, target, "-s", "555", "-d", "6000",
            audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]}, timeout=60)))
        sipp.start()
        server.wait_log(lambda e: e.get("message") == "PIN prompt" and e.get("prompt") == "WrongPin", 20)
        assert not phones_in(server, creds, "vault"), "a wrong PIN keeps the caller out"
        server.wait_log(lambda e: e.get("message") == "PIN accepted: joining the room", 20)
        # Its call state follows the join as a second step: wait for both.
        rooms.wait_until(lambda: (p := phones_in(server, creds, "vault")) and p[0]["call_state"] == "CONFIRMED",
                         what="the phone in vault, CONFIRMED")
        sipp.join(60)
    run = result["run"]
    assert run.returncode == 0, run.errors + run.stderr
    # The PIN is never logged.
    assert not any(e.get("digit") for e in server.events() if e.get("message", "").startswith("DTMF")), \
        [e for e in server.events() if e.get("message", "").startswith("DTMF")]

    # What SIPx sent: the retry prompt's speech right after the wrong PIN's "#", and the quiet
    # of an empty room once the right one was taken.
    sent = media.tshark_fields(cap.pcap, f"rtp && ip.dst=={ip} && udp.dstport==6000 && rtp.p_type==0",
                               ["frame.time_relative", "rtp.payload"])
    events = media.tshark_fields(cap.pcap, f"rtpevent && ip.src=={ip}", ["frame.time_relative", "rtpevent.event_id"],
                                 "-o", "rtpevent.event_payload_type_value:101")
    hashes = sorted(float(t) for t, ev in events if ev == "11")
    assert hashes, events
    wrong_at, right_at = hashes[0], hashes[-1]
    assert right_at - wrong_at > 3, hashes

    def window(start, end):
        return frame_rms([bytes.fromhex(p.replace(":", "")) for t, p in sent if start <= float(t) < end])

    retry = window(wrong_at + 0.2, wrong_at + 3.2)
    in_room = window(right_at + 1.0, right_at + 4.0)
    assert len(retry) > 100 and len(in_room) > 100, (len(retry), len(in_room))
    speech = sum(r > 330 for r in retry) / len(retry)  # -40 dBFS
    quiet = sum(r > 330 for r in in_room) / len(in_room)
    assert speech > 0.4, f"the retry prompt should be heard: {speech:.2f} of its frames active"
    assert quiet < 0.05, f"an empty room is quiet: {quiet:.2f}"

    call = wait_call(server, creds, lambda c: c["done"], "the PIN call ended")
    assert [h["state"] for h in call["history"]] == ["INCOMING", "CONNECTING", "CONFIRMED", "DISCONNECTED"], call
    assert call["room"]["name"] == "vault" and call["end"]["cause"] == "remote_hangup", call


def test_the_api_hangs_up_presses_keys_mutes_and_transfers_an_inbound_call(server, tmp_path, audio):
    """An answered inbound call takes the same commands as a dial-out: keys reach the phone
    (RFC 4733), mute silences it in the room, a blind transfer moves it to a sipp UAS
    (`DISCONNECTED 200 Transferred`), and DELETE hangs up (BYE, `local_hangup`). The keys the
    phone presses are `call.dtmf` events, and the ended call keeps its media statistics."""
    from test_calls_dialout import sipp_uas
    from test_webhooks import EventStream

    ip = "127.0.0.180"
    creds, _ = setup(server, ip, called("100", "desk"))
    events = EventStream(server, creds)
    with baresip(tmp_path, ip, audio) as ua:
        dial(ua, server, "100")
        call = wait_call(server, creds, lambda c: c["state"] == "CONFIRMED", "a confirmed inbound call")
        phone = rooms.wait_until(lambda: phones_in(server, creds, "desk"), what="the phone in desk")
        assert phone[0]["call_id"] == call["id"], (phone, call["id"])

        api(server, creds, "POST", f"/v1/calls/{call['id']}/dtmf", {"digits": "5,#"}, expect=202)
        got = rooms.wait_until(lambda: (d := [e.get("param") for e in ua.events
                                              if e.get("type") == "CALL_DTMF_START"]) and len(d) >= 2 and d,
                               timeout=15, what="two digits at the phone")
        assert got == ["5", "#"], got

        ua.send_dtmf("7")
        while (event := events.next_event())["event"] != "call.dtmf":
            pass
        pressed = json.loads(event["data"])["data"]
        assert (pressed["call_id"], pressed["digit"]) == (call["id"], "7"), event

        api(server, creds, "POST", f"/v1/calls/{call['id']}/mute", {"muted": True}, expect=200)
        rooms.wait_until(lambda: phones_in(server, creds, "desk")[0]["muted"], what="the phone muted")
        api(server, creds, "POST", f"/v1/calls/{call['id']}/mute", {"muted": False}, expect=200)
        rooms.wait_until(lambda: not phones_in(server, creds, "desk")[0]["muted"], what="the phone unmuted")

        # The live call shows its media statistics (refreshed every 5 s while it lasts).
        live = rooms.wait_until(lambda: (c := api(server, creds, "GET", f"/v1/calls/{call['id']}").json()).get("media")
                                and not c["done"] and c, timeout=12, what="the live call's media statistics")
        assert live["media"]["packets_received"] > 50 and live["media"]["packets_sent"] > 50, live

        # Another application's key cannot touch the call.
        stranger = create_app(server)
        r = api(server, stranger, "DELETE", f"/v1/calls/{call['id']}")
        assert r.status_code == 404, r.text

        with sipp_uas(tmp_path, "127.0.0.181", "uas_answer.xml") as target:
            api(server, creds, "POST", f"/v1/calls/{call['id']}/transfer",
                {"to": "sip:desk2@127.0.0.181:5060"}, expect=202)
            ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the transfer")
            ua.hangup()
            assert target.wait(15) == 0
        assert ended["end"]["cause"] == "transferred" and ended["end"]["reason"] == "Transferred", ended
        rooms.wait_until(lambda: not phones_in(server, creds, "desk"), what="the phone leaving")
        stats = rooms.wait_until(lambda: api(server, creds, "GET", f"/v1/calls/{call['id']}").json()["media"],
                                 what="the ended call's media statistics")
        assert stats["packets_received"] > 50 and stats["packets_sent"] > 50, stats

        dial(ua, server, "100")
        second = wait_call(server, creds, lambda c: c["state"] == "CONFIRMED" and c["id"] != call["id"],
                           "a second confirmed call")
        mark = len(ua.events)
        api(server, creds, "DELETE", f"/v1/calls/{second['id']}", expect=202)
        ua.wait_event("CALL_CLOSED", 15, since=mark)
        ended = wait_call(server, creds, lambda c: c["id"] == second["id"] and c["done"], "the hang-up")
        assert ended["end"]["cause"] == "local_hangup", ended
        r = api(server, creds, "POST", f"/v1/calls/{second['id']}/dtmf", {"digits": "1"})
        assert r.status_code == 409, r.text


def test_a_full_room_refuses_the_call_instead_of_answering_it(data_dir):
    """Rooms of one: a second phone calling into the occupied room gets 486 Busy Here, not a 200
    and then a BYE (over a carrier that would be a billed call and no busy tone), and its row
    says so."""
    s = Server(data_dir, env={"SIPX_ROOMS__MAX_PARTICIPANTS": "1"}).start()
    try:
        ip = "127.0.0.175"
        creds, _ = setup(s, ip)
        target = sip_addr(s)
        # The first takes the seat (answered once it has it; its ACK never comes, which
        # leaves it seated for the 32 s SIPx waits for one).
        assert sip_transaction(target, ip, "INVITE", user="room-solo") == 200
        assert sip_transaction(target, ip, "INVITE", user="room-solo") == 486
        refused = wait_call(s, creds, lambda c: c["done"], "the refused call")
        assert refused["end"]["code"] == 486 and refused["end"]["cause"] == "room_failed", refused
        assert [h["state"] for h in refused["history"]] == ["INCOMING", "DISCONNECTED"], refused
        assert len(phones_in(s, creds, "solo")) == 1
    finally:
        s.stop()


def test_a_caller_that_never_acknowledges_the_200_ends_for_the_missing_ack(data_dir):
    """No ACK and no media: the media timeout (2 s here) comes first, but the call ends for
    what went wrong, the ACK that never came (`ack_timeout`), not as a media timeout."""
    s = Server(data_dir, env={"SIPX_MEDIA__MEDIA_TIMEOUT_SECS": "2"}).start()
    try:
        ip = "127.0.0.176"
        creds, _ = setup(s, ip)
        host, port = sip_addr(s)
        sdp = f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40260 RTP/AVP 0\r\n"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind((ip, 0))
            u.settimeout(10)
            local = u.getsockname()[1]
            u.sendto((f"INVITE sip:room-noack@{host}:{port} SIP/2.0\r\n"
                      f"Via: SIP/2.0/UDP {ip}:{local};branch=z9hG4bKnoack;rport\r\nMax-Forwards: 70\r\n"
                      f"From: <sip:caller@{ip}>;tag=noack\r\nTo: <sip:room-noack@{host}>\r\n"
                      f"Call-ID: noack@{ip}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{ip}:{local}>\r\n"
                      f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode(),
                     (host, port))
            answer = ""
            while not answer.startswith("SIP/2.0 200 "):
                answer = u.recv(65535).decode(errors="replace")
        ended = wait_call(s, creds, lambda c: c["done"], "the unacknowledged call ended")
        assert ended["end"]["cause"] == "ack_timeout", ended
    finally:
        s.stop()


def test_a_bye_on_the_early_dialog_ends_a_ringing_call_as_a_cancel(server):
    """RFC 3261 §15: a caller may hang up a ringing call by BYE on its early dialog. While the
    routing webhook is still asked, the BYE gets 200 and the INVITE 487, and nothing rings on.
    Before it, other requests in that early dialog are answered, not refused with 481 (an
    OPTIONS too); after it, an OPTIONS in that dialog gets 481."""
    import random
    import re
    import socket

    ip, hook_ip = "127.0.0.186", "127.0.0.187"
    key, secret, _ = creds = create_app(server, "early-bye")
    receiver = Receiver(hook_ip, secret, None)  # answers only after the test
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    try:
        webhook_routed(server, creds, ip, receiver.url, 5000, "late")
        host, sport = sip_addr(server)
        call_id, tag = f"{random.getrandbits(64):x}@{ip}", f"{random.getrandbits(32):x}"

        def request(method, cseq, branch, to, extra=""):
            return (f"{method} sip:802@{host}:{sport} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch={branch};rport\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:4915100@{ip}>;tag={tag}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n"
                    f"CSeq: {cseq} {method}\r\nContact: <sip:4915100@{ip}:{port}>\r\n{extra}").encode()

        body = f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
        sock.sendto(request("INVITE", 1, "z9hG4bKearly1", f"<sip:802@{host}>",
                            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"),
                    (host, sport))
        ringing = None
        while ringing is None:
            text = sock.recv(65535).decode(errors="replace")
            if text.startswith("SIP/2.0 180"):
                ringing = text
        to = re.search(r"^To: (.*)$", ringing, re.M).group(1).strip()
        assert ";tag=" in to, ringing
        rooms.wait_until(lambda: receiver.questions, what="the webhook asked")
        # The 180 opens the early dialog, so it says where requests inside it go (§12.1.1).
        assert re.search(r"^Contact: <sip:", ringing, re.M), ringing

        def answer_to(method, cseq, branch, extra):
            sock.sendto(request(method, cseq, branch, to, extra), (host, sport))
            while True:
                text = sock.recv(65535).decode(errors="replace")
                if text.startswith("SIP/2.0 ") and f"CSeq: {cseq} {method}" in text:
                    return text

        # Inside the early dialog: an UPDATE without an offer refreshes the target; one with an
        # offer waits for our answer to the INVITE's (RFC 3311 §5.2); an INFO with a key gets
        # 200 (there is no call to give it to yet); a PRACK acknowledges no reliable
        # provisional SIPx sent (RFC 3262 §3).
        update = answer_to("UPDATE", 2, "z9hG4bKearlyu1", "Content-Length: 0\r\n\r\n")
        assert update.startswith("SIP/2.0 200") and re.search(r"^Contact: <sip:", update, re.M), update
        offer = answer_to("UPDATE", 3, "z9hG4bKearlyu2",
                          f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        retry = re.search(r"^Retry-After: (\d+)", offer, re.M)
        assert offer.startswith("SIP/2.0 500") and retry and 1 <= int(retry.group(1)) <= 10, offer
        info = answer_to("INFO", 4, "z9hG4bKearlyi",
                         "Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\nSignal=5\r\nDuration=160\r\n")
        assert info.startswith("SIP/2.0 200"), info
        prack = answer_to("PRACK", 5, "z9hG4bKearlyp", "RAck: 1 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        assert prack.startswith("SIP/2.0 481"), prack
        # An OPTIONS inside the dialog asks whether it lives (a proxy's dialog keepalive).
        alive = answer_to("OPTIONS", 6, "z9hG4bKearlyo", "Content-Length: 0\r\n\r\n")
        assert alive.startswith("SIP/2.0 200"), alive
        sock.sendto(request("BYE", 7, "z9hG4bKearly2", to, "Content-Length: 0\r\n\r\n"), (host, sport))
        finals = {}
        while len(finals) < 2:
            text = sock.recv(65535).decode(errors="replace")
            status = int(text.split(" ", 2)[1]) if text.startswith("SIP/2.0 ") else 0
            if status >= 200:
                finals[re.search(r"CSeq: \d+ (\w+)", text).group(1)] = status
        assert finals == {"BYE": 200, "INVITE": 487}, finals
        sock.sendto(request("ACK", 1, "z9hG4bKearly1", to, "Content-Length: 0\r\n\r\n"), (host, sport))
        ended = wait_call(server, creds, lambda c: c["sip_call_id"] == call_id and c["done"], "the call ended")
        assert ended["end"]["code"] == 487, ended
        assert not phones_in(server, creds, "late")
        # Once it ended, the dialog is gone: 481, so the keepalive ends it there too (RFC 3261
        # §12.2.2), as for a tag that never was.
        gone = answer_to("OPTIONS", 8, "z9hG4bKearlyo2", "Content-Length: 0\r\n\r\n")
        assert gone.startswith("SIP/2.0 481"), gone
        to = re.sub(r";tag=[^;>]+", ";tag=never-issued", to)
        assert ";tag=never-issued" in to, to
        unknown = answer_to("OPTIONS", 9, "z9hG4bKearlyo3", "Content-Length: 0\r\n\r\n")
        assert unknown.startswith("SIP/2.0 481"), unknown
    finally:
        sock.close()
        receiver.close()


def test_a_trunk_listing_its_numbers_reaches_those_only(server):
    """A trunk's `inbound.numbers` (its DIDs) are all its callers may reach: another number with
    a rule of its own, a room by name and the echo test are refused with 404. Address
    127.0.0.239."""
    ip = "127.0.0.239"
    creds = create_app(server)
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "dids", "inbound": {
        "allowed_cidrs": [f"{ip}/32"], "numbers": ["+4930123456"]}}, expect=201).json()
    for number in ("+4930123456", "+4930999999"):
        rule = called(number, "main")
        api(server, creds, "POST", "/v1/routing-rules",
            {**rule, "match": {"trunk_id": trunk["id"], **rule["match"]}}, expect=201)
    target = sip_addr(server)
    assert sip_transaction(target, ip, "INVITE", user="+4930999999") == 404
    assert sip_transaction(target, ip, "INVITE", user="room-secret") == 404
    assert sip_transaction(target, ip, "INVITE", user="echo") == 404
    assert sip_transaction(target, ip, "INVITE", user="+4930123456") == 200
    refused = [e for e in server.events() if e.get("message") == "call refused: not a number of its trunk"]
    assert len(refused) == 3 and all(e["trunk"] == trunk["id"] for e in refused), refused
    # A provider sending to SIPx's registered contact names the number in To only; a room's
    # name in the Request-URI beside a listed To goes by the number, not into that room.
    assert sip_transaction(target, ip, "INVITE", user="room-secret", to_user="+4930123456") == 200
    # The user part's own parameters are not part of the number the rules see.
    assert sip_transaction(target, ip, "INVITE", user="+4930123456;phone-context=+49") == 200
    rooms.wait_until(lambda: len([c for c in inbound_calls(server, creds) if c["room"]]) == 3,
                     what="three calls with a room")
    assert {c["room"]["name"] for c in inbound_calls(server, creds) if c["room"]} == {"main"}


def test_a_trunks_number_rules_put_its_numbers_in_the_applications_form(server):
    """A German carrier writes numbers nationally (`030123456`) or with the international
    access code (`0044…`); the trunk's `inbound.number_rules` rewrite both into E.164 before
    its DIDs, the routing rules and the room see them: a caller from the UK asserted as
    `00441632960` meets the rule for `+44` callers, a national caller the room named by the
    called number, the routing webhook is asked with the rewritten numbers, and a number the
    rules make no DID of the trunk is refused. Addresses 127.0.0.177 (carrier), .178 (webhook)."""
    ip = "127.0.0.177"
    _, secret, _ = creds = create_app(server)
    receiver = Receiver("127.0.0.178", secret, {"room": "asked"})
    try:
        number_rules_routed(server, creds, ip, receiver)
    finally:
        receiver.close()


def number_rules_routed(server, creds, ip, receiver):
    rules = [{"prefix": "00", "replace_with": "+"}, {"prefix": "0", "replace_with": "+49"}]
    # Refused whole, naming the rule at fault, and nothing is stored.
    bad = api(server, creds, "POST", "/v1/trunks", {"name": "de", "inbound": {
        "allowed_cidrs": [f"{ip}/32"], "number_rules": [rules[0], {"prefix": "0x", "replace_with": "+49"}]}},
        expect=422).json()
    assert "inbound.number_rules[1]" in json.dumps(bad), bad
    assert api(server, creds, "GET", "/v1/trunks", expect=200).json()["items"] == []
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "de", "inbound": {
        "allowed_cidrs": [f"{ip}/32"], "numbers": ["+4930123456", "+4930777777"], "number_rules": rules}},
        expect=201).json()
    assert trunk["inbound"]["number_rules"] == rules, trunk
    assert api(server, creds, "GET", f"/v1/trunks/{trunk['id']}", expect=200).json()["inbound"]["number_rules"] == rules
    for rule in (
        {"priority": 10, "match": {"caller": {"kind": "prefix", "value": "+44"}},
         "action": {"type": "fixed_room", "room": "uk-desk"}},
        {"priority": 20, "match": {"called": {"kind": "exact", "value": "+4930123456"}},
         "action": {"type": "room_by_called_number", "prefix": "did-"}},
        {"priority": 30, "match": {"called": {"kind": "exact", "value": "+4930777777"}},
         "action": {"type": "webhook", "url": receiver.url, "timeout_ms": 3000}},
    ):
        api(server, creds, "POST", "/v1/routing-rules",
            {**rule, "match": {"trunk_id": trunk["id"], **rule["match"]}}, expect=201)
    target = sip_addr(server)
    uk = "P-Asserted-Identity: <sip:00441632960@carrier.example>\r\n"
    national = "P-Asserted-Identity: <tel:0301112223>\r\n"
    assert sip_transaction(target, ip, "INVITE", user="030123456", extra_headers=uk) == 200
    assert sip_transaction(target, ip, "INVITE", user="004930123456", extra_headers=national) == 200
    # 0301234560 is +49301234560 after the rules: not the trunk's DID.
    assert sip_transaction(target, ip, "INVITE", user="0301234560", extra_headers=national) == 404
    uk_phones = rooms.wait_until(lambda: phones_in(server, creds, "uk-desk"), what="the UK caller in its room")
    assert [p["name"] for p in uk_phones] == ["+441632960"], uk_phones
    did_phones = rooms.wait_until(lambda: phones_in(server, creds, "did-4930123456"),
                                  what="the national caller in the room of the called number")
    assert [p["name"] for p in did_phones] == ["+49301112223"], did_phones
    assert sip_transaction(target, ip, "INVITE", user="030777777", extra_headers=national) == 200
    assert [q["body"]["call"] for q in receiver.questions] == [{
        "from": "+49301112223", "to": "+4930777777", "trunk_id": trunk["id"], "sip_account_id": None}], \
        receiver.questions


def test_a_sim_gateways_number_rules_put_its_numbers_in_the_applications_form(server):
    """A SIM gateway registered as a SIP account passes on the national numbers of the mobile
    network; the account's `number_rules` make them E.164 before its calls are routed: the
    rule for caller +4915112345 calling +4930123456 takes a call from `015112345` to
    `030123456`, and the room shows the caller so. The rules are checked, replaced and
    removed by PATCH. Address 127.0.0.179."""
    from raw_ua import RawUa
    ip = "127.0.0.179"
    creds = create_app(server)
    rules = [{"prefix": "0", "replace_with": "+49"}]
    account = api(server, creds, "POST", "/v1/sip-accounts", {
        "username": "gsmgw", "password": "gsmgw-pass-1", "number_rules": rules}, expect=201).json()
    assert account["number_rules"] == rules, account
    bad = api(server, creds, "PATCH", f"/v1/sip-accounts/{account['id']}",
              {"number_rules": [{"prefix": "0", "replace_with": "+49 30"}]}, expect=422).json()
    assert "number_rules[0]" in json.dumps(bad), bad
    assert api(server, creds, "GET", f"/v1/sip-accounts/{account['id']}", expect=200).json()["number_rules"] == rules
    api(server, creds, "POST", "/v1/routing-rules", {"match": {
        "sip_account_id": account["id"], "caller": {"kind": "exact", "value": "+4915112345"},
        "called": {"kind": "exact", "value": "+4930123456"}},
        "action": {"type": "fixed_room", "room": "gsm"}}, expect=201)
    host, port = sip_addr(server)
    gw = RawUa(f"{host}:{port}", "gsmgw", (host, port), (ip, 5070), f"sip:gsmgw@{ip}:5070")
    try:
        first, _, _, text = gw.register_with_digest("gsmgw-pass-1")
        assert first.startswith("SIP/2.0 200"), text
    finally:
        gw.close()
    assert sip_transaction((host, port), ip, "INVITE", user="030123456", from_user="015112345") == 200
    phones = rooms.wait_until(lambda: phones_in(server, creds, "gsm"), what="the gateway's caller in the room")
    assert [p["name"] for p in phones] == ["+4915112345"], phones
    # Without its rules, the same call matches no rule.
    cleared = api(server, creds, "PATCH", f"/v1/sip-accounts/{account['id']}", {"number_rules": []}, expect=200)
    assert cleared.json()["number_rules"] == [], cleared.text
    assert sip_transaction((host, port), ip, "INVITE", user="030123456", from_user="015112345") == 404


def test_a_routing_webhook_never_reaches_a_denied_network(data_dir):
    """`webhooks.deny_networks` holds for routing webhooks too: with loopback denied, the
    receiver on 127.0.0.174 is never asked and the call takes its fallback room. Caller
    127.0.0.175."""
    ip, hook_ip = "127.0.0.175", "127.0.0.174"
    s = Server(data_dir, env={"SIPX_WEBHOOKS__DENY_NETWORKS": '["127.0.0.0/8", "::1/128"]'}).start()
    creds = create_app(s, "denied")
    receiver = Receiver(hook_ip, creds[1], {"room": "picked"})
    try:
        webhook_routed(s, creds, ip, receiver.url, 1000, "fallback")
        assert sip_transaction(sip_addr(s), ip, "INVITE", user="900") == 200
        assert not receiver.questions, receiver.questions
        call = wait_call(s, creds, lambda c: c["room"] is not None, "the call in a room")
        assert call["room"]["name"] == "fallback", call
        assert any("deny_networks" in (e.get("error") or "") for e in s.events()), "no reason logged"
    finally:
        receiver.close()
        s.stop()


def test_a_reoffer_that_changes_the_codec_is_what_the_call_record_names(server):
    """A phone in a room moves from PCMU to PCMA by re-INVITE: the call's record names PCMA.
    Address 127.0.0.176."""
    ip = "127.0.0.176"
    creds, _ = setup(server, ip, called("600", "codecs"))
    run = run_sipp("uac_codec_change.xml", sip_addr(server), ip, "-s", "600", "-d", "800")
    assert run.returncode == 0, run.stdout + run.stderr
    call = wait_call(server, creds, lambda c: c["done"], "the call ended")
    assert call["codec"] == "PCMA", call


def test_a_trunk_network_stored_wider_than_allowed_is_flagged_at_start(data_dir):
    """Networks wider than an IPv4 /16 are refused by the API now; one stored before (here
    written into the database directly) still loads, with a warning naming it."""
    import sqlite3
    s = Server(data_dir).start()
    creds = create_app(s)
    trunk = api(s, creds, "POST", "/v1/trunks", {"name": "old", "inbound": {
        "allowed_cidrs": ["10.1.0.0/16"]}}, expect=201).json()
    s.stop()
    with sqlite3.connect(data_dir / "sipx.db") as db:
        db.execute("UPDATE trunks SET inbound_cidrs = '10.0.0.0/8' WHERE id = ?", (trunk["id"],))
    s = Server(data_dir).start()
    try:
        warned = s.wait_log(lambda e: e.get("level") == "WARN" and e.get("trunk") == trunk["id"], 10)
        assert warned["network"] == "10.0.0.0/8" and "wider" in warned["message"], warned
    finally:
        s.stop()
