"""An INVITE with Replaces (RFC 3891) against the real binary: the end of an attended transfer
into a room. A phone on an inbound trunk calls into a room; a second phone of the same trunk
then sends SIPx an INVITE naming the first call's dialog, is answered, takes the first call's
place in the room, and the first call gets a BYE and ends `transferred`. Refusals: no such
dialog (481), `early-only` on an answered call (486), two Replaces headers (400), a phone of
another application (403). The transferring phone is a small UDP user agent here, so the test
knows the dialog's tags; the phone that takes the transfer is, once, a real one (linphonec,
which turns a REFER's Replaces into its INVITE). Addresses 127.0.0.200-209 belong here."""

import random
import re
import socket
import threading
import urllib.parse

import media
import rooms
from conftest import create_app, sip_addr
from test_calls_inbound import api, called, phones_in, setup, wait_call


def sdp(ip, port):
    return (f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")


class Phone:
    """One UDP user agent: INVITEs (with whatever extra headers), ACKs, answers a BYE."""

    def __init__(self, ip, target):
        self.ip, self.target = ip, target
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(10)

    def close(self):
        self.sock.close()

    def answer_requests(self):
        """Answers every request that arrives (a transfer's NOTIFYs, a BYE) with 200, in a
        thread, until the socket closes."""
        def run():
            while True:
                try:
                    text, source = self.sock.recvfrom(65535)
                except OSError:
                    return
                text = text.decode(errors="replace")
                if not text.startswith("SIP/2.0"):
                    self.sock.sendto(ok_for(text), source)
        threading.Thread(target=run, daemon=True).start()

    def refer(self, dialog, answer, refer_to):
        """Sends a REFER in `dialog` (the one `invite` returned, with its 200 `answer`) and
        returns the status of its final response."""
        call_id, tag, their_tag = dialog
        target = re.search(r"<([^>]+)>", header(answer, "Contact")).group(1)
        to = re.sub(r";tag=[^;>\s]+", "", header(answer, "To"))
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        refer = self.head("REFER", target, branch, tag, f"{to};tag={their_tag}", call_id, 2,
                          f"Refer-To: <{refer_to}>\r\nReferred-By: <sip:4915100@{self.ip}>\r\n")
        self.sock.sendto((refer + "Content-Length: 0\r\n\r\n").encode(), self.target)
        while True:
            text = self.sock.recv(65535).decode(errors="replace")
            if text.startswith("SIP/2.0 ") and f"branch={branch}" in text:
                status = int(text.split(" ", 2)[1])
                if status >= 200:
                    return status
            elif not text.startswith("SIP/2.0"):
                self.sock.sendto(ok_for(text), self.target)

    def head(self, method, uri, branch, tag, to, call_id, cseq, extra):
        """A request's start line and headers, up to its body's headers."""
        return (f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:4915100@{self.ip}>;tag={tag}\r\n"
                f"To: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:4915100@{self.ip}:{self.port}>\r\n{extra}")

    def invite(self, user, extra="", body=None):
        """Sends an INVITE (with `body`, else PCMU on our port + 2) and waits for its final
        response; ACKs it. Returns (status, the dialog as (Call-ID, our tag, SIPx's tag), the
        response text)."""
        call_id = f"{random.getrandbits(64):x}@{self.ip}"
        tag = f"{random.getrandbits(32):x}"
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        body = body or sdp(self.ip, self.port + 2)
        host, port = self.target
        head = self.head("INVITE", f"sip:{user}@{host}:{port}", branch, tag, f"<sip:{user}@{host}>", call_id, 1,
                         extra) + f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        self.sock.sendto(head.encode(), self.target)
        while True:
            text = self.sock.recv(65535).decode(errors="replace")
            if not text.startswith("SIP/2.0 ") or f"branch={branch}" not in text:
                continue
            status = int(text.split(" ", 2)[1])
            if status < 200:
                continue
            to = header(text, "To")
            their_tag = re.search(r";tag=([^;>\s]+)", to).group(1)
            # A 2xx is ACKed in a new transaction, a failure in the INVITE's own (RFC 3261).
            ack_branch = f"z9hG4bK{random.getrandbits(48):x}" if status < 300 else branch
            ack = (f"ACK sip:{user}@{host}:{port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={ack_branch};rport\r\n"
                   f"Max-Forwards: 70\r\nFrom: <sip:4915100@{self.ip}>;tag={tag}\r\nTo: {to}\r\n"
                   f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
            self.sock.sendto(ack.encode(), self.target)
            return status, (call_id, tag, their_tag), text

    def wait_bye(self, call_id):
        """Waits for SIPx's BYE on `call_id`, answers 200, returns its text."""
        while True:
            text, source = self.sock.recvfrom(65535)
            text = text.decode(errors="replace")
            if text.startswith("BYE ") and header(text, "Call-ID") == call_id:
                self.sock.sendto(ok_for(text), source)
                return text


def ok_for(request):
    """A 200 OK for a request's text."""
    lines = [line for line in request.split("\r\n") if line.split(":", 1)[0].lower() in
             ("via", "from", "to", "call-id", "cseq")]
    return ("SIP/2.0 200 OK\r\n" + "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def header(text, name):
    for line in text.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def replaces(dialog, early_only=False):
    call_id, phone_tag, sipx_tag = dialog
    # Named from SIPx's side: its own tag is the to-tag (RFC 3891 §3).
    return f"Replaces: {call_id};to-tag={sipx_tag};from-tag={phone_tag}{';early-only' if early_only else ''}\r\n"


def test_an_invite_with_replaces_takes_the_calls_place_in_the_room(server):
    ip = "127.0.0.200"
    creds, _ = setup(server, ip, called("300", "reception"))
    target = sip_addr(server)
    first, second = Phone(ip, target), Phone(ip, target)
    try:
        status, dialog, answer = first.invite("300")
        assert status == 200, answer
        assert "replaces" in (header(answer, "Supported") or ""), answer
        # SIPx's Contact routes nowhere by its name: the transfer's INVITE goes there.
        contact = re.search(r"<sip:([^@>]+)@", header(answer, "Contact")).group(1)
        call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                         "the first call confirmed")
        rooms.wait_until(lambda: [p for p in phones_in(server, creds, "reception") if p["call_id"] == call["id"]],
                         what="the first phone in the room")

        # Refusals leave the call alone.
        status, _, text = second.invite(contact, replaces((dialog[0], dialog[1], "not-sipx")))
        assert status == 481, text
        status, _, text = second.invite(contact, replaces(dialog, early_only=True))
        assert status == 486, text
        status, _, text = second.invite(contact, replaces(dialog) + replaces(dialog))
        assert status == 400, text
        assert not wait_call(server, creds, lambda c: c["id"] == call["id"], "the first call")["done"]

        status, new_dialog, text = second.invite(contact, replaces(dialog))
        assert status == 200, text
        bye = first.wait_bye(dialog[0])
        assert "Transferred" in (header(bye, "Reason") or ""), bye
        ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the first call ended")
        assert ended["end"]["cause"] == "transferred", ended
        new = wait_call(server, creds, lambda c: c["sip_call_id"] == new_dialog[0] and c["state"] == "CONFIRMED",
                        "the new call, in the same application")
        assert new["room"]["name"] == "reception", new
        phones = rooms.wait_until(
            lambda: (p := phones_in(server, creds, "reception")) and [x["call_id"] for x in p] == [new["id"]] and p,
            what="only the new phone in the room")
        assert phones[0]["call_id"] == new["id"], phones
        api(server, creds, "DELETE", f"/v1/calls/{new['id']}", expect=202)
        second.wait_bye(new_dialog[0])
    finally:
        first.close()
        second.close()


def test_a_phone_of_another_application_cannot_replace_a_call(server):
    creds, _ = setup(server, "127.0.0.201", called("301", "vault"))
    setup(server, "127.0.0.202", called("302", "elsewhere"))
    target = sip_addr(server)
    owner, stranger = Phone("127.0.0.201", target), Phone("127.0.0.202", target)
    try:
        status, dialog, answer = owner.invite("301")
        assert status == 200, answer
        call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                         "the call confirmed")
        status, _, text = stranger.invite("sipx", replaces(dialog))
        assert status == 403, text
        assert not wait_call(server, creds, lambda c: c["id"] == call["id"], "the call")["done"]
        # Nor an echo-test call, which has no row: it still has an owner.
        status, echo_dialog, answer = owner.invite("echo")
        assert status == 200, answer
        status, _, text = stranger.invite("sipx", replaces(echo_dialog))
        assert status == 403, text
        status, _, text = owner.invite("sipx", replaces(echo_dialog))
        assert status == 200, text
        owner.wait_bye(echo_dialog[0])
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        owner.wait_bye(dialog[0])
    finally:
        owner.close()
        stranger.close()


def test_a_real_phone_takes_an_attended_transfer_into_the_room(server, tmp_path):
    """The receptionist (a UDP user agent) is in the room and on a second line with a real
    phone (linphonec); she refers that phone to SIPx with a Replaces of her own call (RFC 5589
    §7). linphonec sends SIPx the INVITE with Replaces; it takes her place in the room and her
    call to SIPx ends `transferred`."""
    from linphone import linphonec

    creds = create_app(server)
    # One trunk for both phones (linphonec sends from 127.0.0.1).
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "pbx", "inbound": {
        "allowed_cidrs": ["127.0.0.208/32", "127.0.0.1/32"]}}, expect=201).json()
    rule = called("300", "reception")
    api(server, creds, "POST", "/v1/routing-rules",
        {**rule, "match": {"trunk_id": trunk["id"], **rule["match"]}}, expect=201)
    target = sip_addr(server)
    audio = media.make_audio()
    receptionist = Phone("127.0.0.208", target)
    with linphonec(tmp_path, audio.tone400_8k) as lin:
        # Its own offers name the address of its default route unless told otherwise.
        lin.generic("ipv6 disable")
        line2 = Phone("127.0.0.208", ("127.0.0.1", 5111))
        try:
            status, dialog, answer = receptionist.invite("300")
            assert status == 200, answer
            call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                             "the receptionist's call confirmed")
            status, line2_dialog, line2_answer = line2.invite("lin")
            assert status == 200, line2_answer
            # Refer-To: SIPx's Contact, with a Replaces of her dialog named from SIPx's side.
            contact = re.search(r"<([^>]+)>", header(answer, "Contact")).group(1)
            named = f"{dialog[0]};to-tag={dialog[2]};from-tag={dialog[1]}"
            refer_to = f"{contact}?Replaces={urllib.parse.quote(named, safe='')}"
            assert line2.refer(line2_dialog, line2_answer, refer_to) == 202
            line2.answer_requests()  # the transfer's NOTIFYs
            bye = receptionist.wait_bye(dialog[0])
            assert "Transferred" in (header(bye, "Reason") or ""), bye
            ended = wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "her call ended")
            assert ended["end"]["cause"] == "transferred", ended
            new = wait_call(server, creds, lambda c: c["id"] != call["id"] and c["state"] == "CONFIRMED",
                            "linphonec's call confirmed")
            assert new["room"]["name"] == "reception", new
            rooms.wait_until(lambda: [p["call_id"] for p in phones_in(server, creds, "reception")] == [new["id"]],
                             what="only linphonec in the room")
            lin.wait_output("calls", lambda out: f"{target[0]}" in out, what="linphonec's call to SIPx")
            api(server, creds, "DELETE", f"/v1/calls/{new['id']}", expect=202)
            wait_call(server, creds, lambda c: c["id"] == new["id"] and c["done"], "linphonec's call ended")
        finally:
            receptionist.close()
            line2.close()
