"""An INVITE with Replaces (RFC 3891) against the real binary: the end of an attended transfer
into a room. A phone on an inbound trunk calls into a room; a second phone of the same trunk
then sends SIPx an INVITE naming the first call's dialog, is answered, takes the first call's
place in the room, and the first call gets a BYE and ends `transferred`. Refusals: no such
dialog (481), `early-only` on an answered call (486), two Replaces headers (400), a phone of
another application (403). The phones are a small UDP user agent here, so the test knows the
dialog's tags. Addresses 127.0.0.200-209 belong here."""

import random
import re
import socket

import rooms
from conftest import sip_addr
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

    def invite(self, user, extra=""):
        """Sends an INVITE and waits for its final response; ACKs it. Returns (status, the
        dialog as (Call-ID, our tag, SIPx's tag), the response text)."""
        call_id = f"{random.getrandbits(64):x}@{self.ip}"
        tag = f"{random.getrandbits(32):x}"
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        body = sdp(self.ip, self.port + 2)
        host, port = self.target
        head = (f"INVITE sip:{user}@{host}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {self.ip}:{self.port};branch={branch};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:4915100@{self.ip}>;tag={tag}\r\n"
                f"To: <sip:{user}@{host}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
                f"Contact: <sip:4915100@{self.ip}:{self.port}>\r\n{extra}"
                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
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
                lines = [line for line in text.split("\r\n") if line.split(":", 1)[0].lower() in
                         ("via", "from", "to", "call-id", "cseq")]
                ok = "SIP/2.0 200 OK\r\n" + "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"
                self.sock.sendto(ok.encode(), source)
                return text


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
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        owner.wait_bye(dialog[0])
    finally:
        owner.close()
        stranger.close()
