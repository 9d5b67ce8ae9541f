"""A transfer the phone asks for (RFC 3515 blind transfer): a phone in a room sends SIPx a REFER,
SIPx calls the Refer-To's number back through the phone's trunk (with `sip.accept_refer: all`;
as shipped, only to the application's accounts or back through an account) into the same room, reports the
progress in NOTIFYs (message/sipfrag), and ends the phone's call `transferred` once the new call
is answered. An attended transfer (Refer-To with Replaces, RFC 5589 §7) does the same with an
INVITE that carries the Replaces and requires it. A failed new call leaves the phone's call as it
was. Refusals: a malformed Replaces (400), two Refer-To (400), a call in no room (403), a REFER
outside a dialog (403). The referring phone is a small UDP user agent (it must see every NOTIFY);
the phone the transfer reaches is sipp behind the trunk's outbound host. Addresses
127.0.0.210-220 belong here."""

import json
import random
import re
import socket

import pytest

import media
import rooms
from conftest import SIP_ENV, Server, create_app, sip_addr
from test_calls_dialout import sipp_uas
from test_calls_inbound import api, called, phones_in, wait_call
from test_calls_replaces import Phone, header, ok_for
from test_webhooks import EventStream


@pytest.fixture
def server(data_dir):
    """SIPx taking transfers back through trunks too (`sip.accept_refer: all`)."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__ACCEPT_REFER": "all"}).start()
    yield s
    s.stop()


@pytest.fixture
def cautious(data_dir):
    """SIPx as shipped: transfers to accounts, or back through an account, only."""
    s = Server(data_dir, env=SIP_ENV).start()
    yield s
    s.stop()


def trunk_with_way_back(server, phone_ip, provider_ip, room, number="300"):
    """An application whose trunk takes calls from `phone_ip` (routed to `room`) and places
    calls at sipp on `provider_ip`."""
    creds = create_app(server)
    trunk = api(server, creds, "POST", "/v1/trunks", {
        "name": "pbx", "inbound": {"allowed_cidrs": [f"{phone_ip}/32"]},
        "outbound": {"host": provider_ip, "port": 5060}}, expect=201).json()
    rule = called(number, room)
    api(server, creds, "POST", "/v1/routing-rules",
        {**rule, "match": {"trunk_id": trunk["id"], **rule["match"]}}, expect=201)
    return creds, trunk["id"]


def all_calls(server, creds):
    return api(server, creds, "GET", "/v1/calls?limit=100", expect=200).json()["items"]


def wait_any_call(server, creds, pred, what):
    return rooms.wait_until(lambda: next((c for c in all_calls(server, creds) if pred(c)), None),
                            timeout=20, what=what)


def send_in_dialog(phone, method, dialog, answer, extra, cseq):
    """Sends a request in `dialog` (as `Phone.invite` returned it, with its 200 `answer`) with
    `extra` headers; returns its branch."""
    call_id, tag, their_tag = dialog
    target = re.search(r"<([^>]+)>", header(answer, "Contact")).group(1)
    to = re.sub(r";tag=[^;>\s]+", "", header(answer, "To"))
    branch = f"z9hG4bK{random.getrandbits(48):x}"
    request = phone.head(method, target, branch, tag, f"{to};tag={their_tag}", call_id, cseq, extra)
    phone.sock.sendto((request + "Content-Length: 0\r\n\r\n").encode(), phone.target)
    return branch


def send_refer(phone, dialog, answer, extra, cseq):
    return send_in_dialog(phone, "REFER", dialog, answer, extra, cseq)


def serve_until(sock, answer, done, what):
    """Every message on `sock` as (text, source), requests handed to `answer`, until
    `done(texts)`; bounded by the socket's timeout and a message count."""
    seen = []
    for _ in range(200):
        try:
            text, source = sock.recvfrom(65535)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; seen: {seen}") from None
        text = text.decode(errors="replace")
        if not text.startswith("SIP/2.0"):
            answer(text, source)
        seen.append((text, source))
        if done([t for t, _ in seen]):
            return seen
    raise AssertionError(f"no end to {what}; seen: {seen}")


def read_until(phone, done, what):
    """Every message SIPx sends the phone (requests answered 200), until `done(messages)`."""
    seen = serve_until(phone.sock, lambda text, source: phone.sock.sendto(ok_for(text), source), done, what)
    return [t for t, _ in seen]


def hang_up(phone, dialog, answer, cseq):
    """The phone's BYE in `dialog`, answered 200."""
    branch = send_in_dialog(phone, "BYE", dialog, answer, "", cseq)
    messages = read_until(phone, lambda seen: status_of(branch, seen), "the answer to the BYE")
    assert status_of(branch, messages) == 200, messages


def status_of(branch, messages):
    return next((int(m.split(" ", 2)[1]) for m in messages
                 if m.startswith("SIP/2.0 ") and f"branch={branch}" in m and int(m.split(" ", 2)[1]) >= 200), None)


def notifies(messages):
    return [m for m in messages if m.startswith("NOTIFY ")]


def sipfrag_status(notify):
    return int(notify.split("\r\n\r\n", 1)[1].split(" ", 2)[1])


def test_a_phone_transfers_its_call_back_through_its_trunk_into_the_room(server, tmp_path):
    phone_ip, provider_ip = "127.0.0.210", "127.0.0.211"
    creds, trunk_id = trunk_with_way_back(server, phone_ip, provider_ip, "desk")
    phone = Phone(phone_ip, sip_addr(server))
    stream = EventStream(server, creds, types="call.transfer")
    try:
        with sipp_uas(tmp_path, provider_ip, "uas_answer.xml") as colleague:
            status, dialog, answer = phone.invite("300")
            assert status == 200, answer
            assert "REFER" in (header(answer, "Allow") or ""), answer
            call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                             "the phone's call confirmed")

            branch = send_refer(phone, dialog, answer,
                                "Refer-To: \"Colleague\" <sip:4930555@pbx.example;user=phone>\r\n"
                                f"Referred-By: <sip:4915100@{phone_ip}>\r\n", cseq=2)
            messages = read_until(phone, lambda seen: any(m.startswith("BYE ") for m in seen),
                                  "the NOTIFYs and the BYE")
            assert status_of(branch, messages) == 202, messages
            reports = notifies(messages)
            statuses = [sipfrag_status(n) for n in reports]
            # 100 at once (RFC 3515 §2.4.4), the ringing, then the answer.
            assert statuses[0] == 100 and statuses[-1] == 200 and 180 in statuses, statuses
            for n in reports:
                assert header(n, "Event") == "refer;id=2", n
                assert header(n, "Content-Type").startswith("message/sipfrag"), n
                assert header(n, "Call-ID") == dialog[0], n
            assert header(reports[-1], "Subscription-State").startswith("terminated"), reports[-1]
            assert all(header(n, "Subscription-State").startswith("active") for n in reports[:-1]), reports
            # SIPx ends the phone's call only once the phone has the news.
            bye = next(m for m in messages if m.startswith("BYE "))
            assert messages.index(bye) > messages.index(reports[-1]), messages
            assert "Transferred" in (header(bye, "Reason") or ""), bye

            ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the phone's call ended")
            assert ended["end"]["cause"] == "transferred", ended
            new = wait_any_call(server, creds, lambda c: c["direction"] == "outbound" and c["state"] == "CONFIRMED",
                                "the transfer's call answered")
            assert new["to"] == "4930555" and new["route"] == f"trunk:{trunk_id}", new
            assert new["room"]["name"] == "desk", new
            phones = rooms.wait_until(
                lambda: (p := phones_in(server, creds, "desk")) and [x["call_id"] for x in p] == [new["id"]] and p,
                what="only the new call's phone in the room")
            assert phones[0]["name"] == "Colleague", phones
            api(server, creds, "DELETE", f"/v1/calls/{new['id']}", expect=202)
            colleague.wait(20)
            log = (tmp_path / f"sipp-{provider_ip}-messages.log").read_text()
            assert re.search(r"INVITE sip:4930555@127\.0\.0\.211", log), log[:2000]
            assert "BYE sip:" in log, log[-2000:]
        # The application heard it all, on the phone's call.
        steps = []
        while not steps or steps[-1]["state"] not in ("completed", "failed"):
            steps.append(json.loads(stream.next_event()["data"])["data"])
        assert [s["state"] for s in steps][0] == "requested" and steps[-1]["state"] == "completed", steps
        assert {s["call_id"] for s in steps} == {call["id"]}, steps
        assert all(s["by"] == "phone" and "4930555" in s["to"] for s in steps), steps
        assert steps[-1]["new_call_id"] == new["id"] and steps[-1]["status"] == 200, steps
    finally:
        stream.close()
        phone.close()


def test_an_attended_transfer_invites_the_consulted_phone_to_replace_its_call(server, tmp_path):
    """The phone talked to 4930555 first (the consultation call, c2@pbx.example) and sends SIPx a
    REFER whose Refer-To carries that call's Replaces: SIPx's INVITE to 4930555 carries it, with
    `Require: replaces`, and none of the Refer-To's other headers; and the REFER's Referred-By."""
    phone_ip, provider_ip = "127.0.0.214", "127.0.0.220"
    creds, trunk_id = trunk_with_way_back(server, phone_ip, provider_ip, "attended-desk")
    phone = Phone(phone_ip, sip_addr(server))
    try:
        with sipp_uas(tmp_path, provider_ip, "uas_answer.xml") as colleague:
            status, dialog, answer = phone.invite("300")
            assert status == 200, answer
            call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                             "the phone's call confirmed")
            branch = send_refer(phone, dialog, answer,
                                "Refer-To: <sip:4930555@pbx.example?Replaces=c2%40pbx.example%3Bto-tag%3Dcol-1"
                                "%3Bfrom-tag%3Dph-2&Subject=injected>\r\n"
                                'Referred-By: "Desk 12" <sip:desk12@pbx.example>;cid="token@pbx.example"\r\n',
                                cseq=2)
            messages = read_until(phone, lambda seen: any(m.startswith("BYE ") for m in seen),
                                  "the NOTIFYs and the BYE")
            assert status_of(branch, messages) == 202, messages
            assert [sipfrag_status(n) for n in notifies(messages)][-1] == 200, messages
            ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the phone's call ended")
            assert ended["end"]["cause"] == "transferred", ended
            new = wait_any_call(server, creds, lambda c: c["direction"] == "outbound" and c["state"] == "CONFIRMED",
                                "the transfer's call answered")
            assert new["to"] == "4930555" and new["route"] == f"trunk:{trunk_id}", new
            rooms.wait_until(lambda: [p["call_id"] for p in phones_in(server, creds, "attended-desk")] == [new["id"]],
                             what="the new call's phone in the room")
            api(server, creds, "DELETE", f"/v1/calls/{new['id']}", expect=202)
            colleague.wait(20)
        log = (tmp_path / f"sipp-{provider_ip}-messages.log").read_text()
        invite = log[log.index("INVITE sip:4930555@"):]
        invite = invite[:invite.index("\r\n\r\n") if "\r\n\r\n" in invite else len(invite)]
        assert re.search(r"^Replaces: c2@pbx\.example;to-tag=col-1;from-tag=ph-2\r?$", invite, re.M), invite
        assert re.search(r"^Require: replaces\r?$", invite, re.M), invite
        assert "injected" not in invite and "Subject" not in invite, invite
        # Who transferred the call, for the colleague's display (RFC 3892), without the token
        # reference (its body is not carried over).
        assert re.search(r'^Referred-By: "Desk 12" <sip:desk12@pbx\.example>\r?$', invite, re.M), invite
    finally:
        phone.close()


def test_a_failed_transfer_leaves_the_call_and_refusals_change_nothing(server, tmp_path):
    phone_ip, provider_ip = "127.0.0.212", "127.0.0.213"
    creds, _ = trunk_with_way_back(server, phone_ip, provider_ip, "busy-desk")
    phone = Phone(phone_ip, sip_addr(server))
    try:
        status, dialog, answer = phone.invite("300")
        assert status == 200, answer
        call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                         "the phone's call confirmed")

        with sipp_uas(tmp_path, provider_ip, "uas_reject.xml", calls=2, CODE="486", REASON="Busy Here"):
            branch = send_refer(phone, dialog, answer, "Refer-To: <sip:4930666@pbx.example>\r\n", cseq=2)
            messages = read_until(
                phone, lambda seen: any(sipfrag_status(n) >= 200 for n in notifies(seen)), "the final NOTIFY")
            assert status_of(branch, messages) == 202, messages
            assert [sipfrag_status(n) for n in notifies(messages)][-1] == 486, messages
            # Without a subscription (RFC 4488) the 202 says so, and no NOTIFY comes.
            branch = send_refer(phone, dialog, answer,
                                "Refer-To: <sip:4930666@pbx.example>\r\nRefer-Sub: false\r\n", cseq=3)
            messages = read_until(phone, lambda seen: status_of(branch, seen), "the 202")
            assert status_of(branch, messages) == 202, messages
            accepted = next(m for m in messages if f"branch={branch}" in m)
            assert header(accepted, "Refer-Sub") == "false", accepted
            rooms.wait_until(lambda: len([c for c in all_calls(server, creds)
                                          if c["direction"] == "outbound" and c["done"]]) == 2,
                             timeout=20, what="both transfer calls refused")
            phone.sock.settimeout(1)
            try:
                late = phone.sock.recv(65535).decode(errors="replace")
                raise AssertionError(f"a message after a REFER without subscription: {late}")
            except TimeoutError:
                pass
            phone.sock.settimeout(10)
        busy = [c for c in all_calls(server, creds) if c["direction"] == "outbound"]
        assert {c["end"]["code"] for c in busy} == {486}, busy

        refusals = [
            # A Replaces that would smuggle a header line into SIPx's INVITE.
            ("Refer-To: <sip:4930666@x?Replaces=abc%0D%0AContact%3A%20x%3Bto-tag%3D1%3Bfrom-tag%3D2>\r\n", 400),
            ("Refer-To: <sip:1@x>\r\nRefer-To: <sip:2@x>\r\n", 400),
            ("Refer-To: <sip:pbx.example>\r\n", 403),
        ]
        for cseq, (extra, expected) in enumerate(refusals, start=4):
            branch = send_refer(phone, dialog, answer, extra, cseq=cseq)
            messages = read_until(phone, lambda seen: status_of(branch, seen), f"the answer to {extra!r}")
            assert status_of(branch, messages) == expected, messages
        # The call is as it was: up, in its room.
        still = wait_call(server, creds, lambda c: c["id"] == call["id"], "the phone's call")
        assert not still["done"] and still["state"] == "CONFIRMED", still
        assert [p["call_id"] for p in phones_in(server, creds, "busy-desk")] == [call["id"]]

        # The echo test has no room to call anyone into; a REFER outside a dialog has no call.
        status, echo_dialog, echo_answer = phone.invite("echo")
        assert status == 200, echo_answer
        branch = send_refer(phone, echo_dialog, echo_answer, "Refer-To: <sip:4930777@x>\r\n", cseq=2)
        messages = read_until(phone, lambda seen: status_of(branch, seen), "the echo call's REFER answer")
        assert status_of(branch, messages) == 403, messages
        hang_up(phone, echo_dialog, echo_answer, cseq=3)
        host, port = phone.target
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        stray = phone.head("REFER", f"sip:300@{host}:{port}", branch, "t1", f"<sip:300@{host}>",
                           f"{random.getrandbits(64):x}", 1, "Refer-To: <sip:4930777@x>\r\n")
        phone.sock.sendto((stray + "Content-Length: 0\r\n\r\n").encode(), phone.target)
        messages = read_until(phone, lambda seen: status_of(branch, seen), "the stray REFER's answer")
        assert status_of(branch, messages) == 403, messages
        assert not [c for c in all_calls(server, creds) if c["to"] == "4930777"]
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        phone.wait_bye(dialog[0])
    finally:
        phone.close()


def test_a_real_phone_transfers_its_call(server, tmp_path):
    """linphonec calls into the room over the trunk, then transfers its call (its `transfer`
    command sends the REFER); SIPx calls the number back through the trunk and linphonec's
    call ends `transferred`."""
    from linphone import linphonec

    provider_ip = "127.0.0.215"
    # linphonec sends from 127.0.0.1.
    creds, trunk_id = trunk_with_way_back(server, "127.0.0.1", provider_ip, "lobby")
    host, port = sip_addr(server)
    audio = media.make_audio()
    with linphonec(tmp_path, audio.tone400_8k) as lin, \
            sipp_uas(tmp_path, provider_ip, "uas_answer.xml") as colleague:
        lin.generic("ipv6 disable")
        lin.generic(f"call sip:300@{host}:{port}")
        call = wait_call(server, creds, lambda c: c["state"] == "CONFIRMED", "linphonec's call confirmed")
        lin.wait_output("calls", lambda out: "StreamsRunning" in out or "Connected" in out,
                        what="linphonec's call running")
        lin.generic(f"transfer sip:4930999@{host}")
        ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "linphonec's call ended")
        assert ended["end"]["cause"] == "transferred", ended
        new = wait_any_call(server, creds, lambda c: c["direction"] == "outbound" and c["state"] == "CONFIRMED",
                            "the transfer's call answered")
        assert new["to"] == "4930999" and new["route"] == f"trunk:{trunk_id}", new
        rooms.wait_until(lambda: [p["call_id"] for p in phones_in(server, creds, "lobby")] == [new["id"]],
                         what="only the new call's phone in the room")
        api(server, creds, "DELETE", f"/v1/calls/{new['id']}", expect=202)
        colleague.wait(20)


@pytest.fixture
def refusing(data_dir):
    """SIPx with `sip.accept_refer` off."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__ACCEPT_REFER": "off"}).start()
    yield s
    s.stop()


def test_with_refer_turned_off_a_refer_gets_405_and_allow_leaves_it_out(refusing):
    phone_ip = "127.0.0.216"
    creds, _ = trunk_with_way_back(refusing, phone_ip, "127.0.0.217", "quiet")
    phone = Phone(phone_ip, sip_addr(refusing))
    try:
        status, dialog, answer = phone.invite("300")
        assert status == 200, answer
        assert "REFER" not in header(answer, "Allow"), answer
        branch = send_refer(phone, dialog, answer, "Refer-To: <sip:4930555@x>\r\n", cseq=2)
        messages = read_until(phone, lambda seen: status_of(branch, seen), "the REFER's answer")
        assert status_of(branch, messages) == 405, messages
        refused = next(m for m in messages if f"branch={branch}" in m)
        assert "REFER" not in header(refused, "Allow"), refused
        hang_up(phone, dialog, answer, cseq=3)
        assert not [c for c in all_calls(refusing, creds) if c["direction"] == "outbound"]
    finally:
        phone.close()


class Answerer:
    """A UDP phone on ip:5060 behind a trunk: answers every INVITE (PCMU) and every other
    request 200, and can send a REFER in a dialog it answered."""

    def __init__(self, ip):
        self.ip = ip
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 5060))
        self.sock.settimeout(10)
        self.tag = f"{random.getrandbits(32):x}"
        # A Record-Route its 200s carry, as a proxy in front of it would add.
        self.record_route = None

    def close(self):
        self.sock.close()

    def answer(self, request, source):
        """200 to a request; an INVITE's carries our tag, Contact and SDP."""
        if request.startswith("ACK "):
            return
        response = ok_for(request).decode()
        if request.startswith("INVITE "):
            body = (f"v=0\r\no=- 1 1 IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\n"
                    "m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
            to = header(request, "To")
            response = response.replace(f"To: {to}\r\n", f"To: {to};tag={self.tag}\r\n")
            routes = f"Record-Route: {self.record_route}\r\n" if self.record_route else ""
            response = response.replace("Content-Length: 0\r\n\r\n",
                                        f"{routes}Contact: <sip:phone@{self.ip}:5060>\r\nContent-Type: application/sdp\r\n"
                                        f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.sock.sendto(response.encode(), source)

    def refer(self, invite, source, refer_to):
        """A REFER in the dialog `invite` opened; returns its branch."""
        contact = re.search(r"<([^>]+)>", header(invite, "Contact")).group(1)
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        request = (f"REFER {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {self.ip}:5060;branch={branch};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: {header(invite, 'To')};tag={self.tag}\r\n"
                   f"To: {header(invite, 'From')}\r\nCall-ID: {header(invite, 'Call-ID')}\r\nCSeq: 1 REFER\r\n"
                   f"Contact: <sip:phone@{self.ip}:5060>\r\nRefer-To: <{refer_to}>\r\nContent-Length: 0\r\n\r\n")
        self.sock.sendto(request.encode(), source)
        return branch

    def serve(self, done, what):
        """Answers everything until `done(messages)`; returns the messages and sources."""
        return serve_until(self.sock, self.answer, done, what)


def test_a_dialled_phone_transfers_the_call_back_through_the_trunk(server):
    """The phone SIPx dialled (through a trunk) answers, then transfers: SIPx calls the number
    back through that trunk into the room, and the first call ends `transferred`."""
    ip = "127.0.0.218"
    creds = create_app(server)
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "pbx", "outbound": {"host": ip, "port": 5060}},
                expect=201).json()
    phone = Answerer(ip)
    try:
        first = api(server, creds, "POST", "/v1/calls", {
            "to": "4930111", "room": {"name": "out-desk"}, "route": {"trunk_id": trunk["id"]}}, expect=201).json()
        seen = phone.serve(lambda ms: any(m.startswith("ACK ") for m in ms), "the dial-out's INVITE and ACK")
        invite, source = next((m, s) for m, s in seen if m.startswith("INVITE "))
        assert "REFER" in (header(invite, "Allow") or ""), invite
        wait_any_call(server, creds, lambda c: c["id"] == first["id"] and c["state"] == "CONFIRMED",
                      "the dial-out confirmed")

        branch = phone.refer(invite, source, f"sip:4930888@{ip}")
        first_call_id = header(invite, "Call-ID")
        seen = phone.serve(lambda ms: any(m.startswith("BYE ") and header(m, "Call-ID") == first_call_id
                                          for m in ms), "the transfer's INVITE, the NOTIFYs and the BYE")
        messages = [m for m, _ in seen]
        assert status_of(branch, messages) == 202, messages
        assert [sipfrag_status(n) for n in notifies(messages)][-1] == 200, messages
        second = next(m for m in messages if m.startswith("INVITE "))
        assert second.startswith(f"INVITE sip:4930888@{ip}"), second
        assert header(second, "Call-ID") != first_call_id, second

        ended = wait_any_call(server, creds, lambda c: c["id"] == first["id"] and c["done"], "the dial-out ended")
        assert ended["end"]["cause"] == "transferred" and ended["end"]["code"] == 200, ended
        new = wait_any_call(server, creds, lambda c: c["to"] == "4930888" and c["state"] == "CONFIRMED",
                            "the transfer's call answered")
        assert new["route"] == f"trunk:{trunk['id']}" and new["room"]["name"] == "out-desk", new
        api(server, creds, "DELETE", f"/v1/calls/{new['id']}", expect=202)
        phone.serve(lambda ms: any(m.startswith("BYE ") for m in ms), "the BYE of the transfer's call")
    finally:
        phone.close()


def test_as_shipped_a_trunk_callers_refer_reaches_accounts_but_dials_nothing_through_the_trunk(cautious):
    """A caller through a trunk may be anyone: as shipped, its REFER to a number is refused in
    the NOTIFY (403) and nothing is dialled; to the application's account of that name, the
    new call goes to the account. The app hears every step, even after the phone hangs up."""
    server = cautious
    phone_ip = "127.0.0.219"
    creds, _ = trunk_with_way_back(server, phone_ip, "127.0.0.217", "front-desk")
    api(server, creds, "POST", "/v1/sip-accounts", {"username": "colleague7", "password": "password-123"},
        expect=201)
    phone = Phone(phone_ip, sip_addr(server))
    stream = EventStream(server, creds, types="call.transfer")
    try:
        status, dialog, answer = phone.invite("300")
        assert status == 200, answer
        branch = send_refer(phone, dialog, answer, "Refer-To: <sip:4930999@pbx.example>\r\n", cseq=2)
        messages = read_until(phone, lambda seen: any(sipfrag_status(n) >= 200 for n in notifies(seen)),
                              "the final NOTIFY")
        assert status_of(branch, messages) == 202, messages
        assert sipfrag_status(notifies(messages)[-1]) == 403, messages
        assert not [c for c in all_calls(server, creds) if c["direction"] == "outbound"]

        # To an account: the phone hangs up at once, as many do; the account has no device
        # registered, so the new call ends 480, and the app still hears how it went.
        branch = send_refer(phone, dialog, answer, "Refer-To: <sip:colleague7@pbx.example>\r\n", cseq=3)
        read_until(phone, lambda seen: status_of(branch, seen), "the 202")
        hang_up(phone, dialog, answer, cseq=4)
        new = wait_any_call(server, creds, lambda c: c["direction"] == "outbound" and c["done"],
                            "the call to the account ended")
        assert new["route"].startswith("sip_account:") and new["end"]["code"] == 480, new
        steps = []
        while not [s for s in steps if s["state"] == "failed" and s.get("new_call_id")]:
            steps.append(json.loads(stream.next_event()["data"])["data"])
        assert steps[-1]["status"] == 480 and steps[-1]["new_call_id"] == new["id"], steps
    finally:
        stream.close()
        phone.close()
