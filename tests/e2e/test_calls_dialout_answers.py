"""Dial-outs answered in ways real phones and forking proxies answer: a 2xx whose SDP answer
differs from the 183's early one, and an answer SIPx cannot use. The phone is a raw UDP user
agent, so the answers are exactly these. Address 127.0.0.198 belongs here."""

import socket
import time

import pytest

from conftest import create_app, sip_addr
from raw_ua import RawUa
from test_calls_dialout import api, call_state, wait_state

PHONE = "127.0.0.198"


def sdp(port, pt, name, proto="RTP/AVP"):
    """`extra` for RawUa.answer: a Content-Type and an SDP answer for one codec."""
    return ("Content-Type: application/sdp\r\n\r\n"
            f"v=0\r\no=phone 1 1 IN IP4 {PHONE}\r\ns=-\r\nc=IN IP4 {PHONE}\r\nt=0 0\r\n"
            f"m=audio {port} {proto} {pt}\r\na=rtpmap:{pt} {name}/8000\r\n")


def rtp_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((PHONE, port))
    s.settimeout(0.2)
    return s


def payload_types(sock, want, seconds=5):
    """The payload types of the RTP that reaches `sock`, once `want` packets did (or the time
    is up)."""
    seen, deadline = [], time.monotonic() + seconds
    while len(seen) < want and time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(2048)
        except socket.timeout:
            continue
        if len(data) >= 12 and data[0] >> 6 == 2:
            seen.append(data[1] & 0x7f)
    return seen


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name.lower()), None)


def phone(server, port=5070):
    host, sip_port = sip_addr(server, "udp")
    return RawUa(f"{host}:{sip_port}", user="phone", via=(host, sip_port), bind=(PHONE, port),
                 contact=f"sip:phone@{PHONE}:{port}")


def dial(server, creds, ua, room):
    """A dial-out to `ua`: the call as created, and the INVITE's text."""
    port = ua.sock.getsockname()[1]
    created = api(server, creds, "POST", "/v1/calls",
                  {"to": f"sip:{room}@{PHONE}:{port}", "room": {"name": room}}, expect=201).json()
    _, _, _, invite = ua.receive("INVITE ")
    return created, invite


def contact(ua):
    return f"Contact: <sip:phone@{PHONE}:{ua.sock.getsockname()[1]}>\r\n"


def hang_up(server, creds, ua, created):
    """Hangs the call up through the API; the BYE's headers once the phone answered it."""
    api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
    _, headers, _, bye = ua.receive("BYE ")
    ua.answer(bye, "200 OK")
    wait_state(server, creds, created["id"], "DISCONNECTED")
    return headers


def refused(server, creds, ua, created, invite, answer):
    """Answers 200 with `answer`, which SIPx cannot use: the BYE's Reason once the phone
    answered it, and the call as it ended."""
    ua.answer(invite, "200 OK", contact(ua) + answer)
    ua.receive("ACK ")
    _, headers, _, bye = ua.receive("BYE ")
    ua.answer(bye, "200 OK")
    return header(headers, "Reason"), wait_state(server, creds, created["id"], "DISCONNECTED")


def test_a_2xx_from_another_fork_replaces_the_early_answer(server):
    """A 183 from one fork (tag x, PCMU to port 40198), then the 200 of another (tag y, PCMA to
    port 40200): the call is the 200's dialog (RFC 3261 §13.2.2.4), so its media goes where
    the 200's answer says, with its codec."""
    creds = create_app(server)[:2]
    ua, early, final = phone(server), rtp_socket(40198), rtp_socket(40200)
    try:
        created, invite = dial(server, creds, ua, "forked")
        ua.answer(invite, "183 Session Progress", sdp(40198, 0, "PCMU"), tag="forkx")
        ua.answer(invite, "200 OK", contact(ua) + sdp(40200, 8, "PCMA"), tag="forky")
        _, headers, _, ack = ua.receive("ACK ")
        assert "tag=forky" in header(headers, "To"), ack
        wait_state(server, creds, created["id"], "CONFIRMED")
        got = payload_types(final, 25)
        assert len(got) == 25 and set(got) == {8}, got
        assert call_state(server, creds, created["id"])["codec"] == "PCMA"
        assert "tag=forky" in header(hang_up(server, creds, ua, created), "To")
    finally:
        for s in (early, final):
            s.close()
        ua.close()


# (answer, the call's end reason, the BYE's Reason text): a codec SIPx does not have, and a
# transport whose name carries control characters and a quote (a refusal quotes the phone's SDP:
# the header must stay a well-formed quoted string, RFC 3261 §25.1).
REFUSED = [
    (sdp(40202, 3, "GSM"), "Incompatible media format", "Incompatible media format"),
    (sdp(40208, 0, "PCMU", proto='RTP/A\x01"B\x7f'), 'Incompatible transport protocol: RTP/A "B ',
     "Incompatible transport protocol: RTP/A 'B "),
]


@pytest.mark.parametrize("answer, reason, bye_text", REFUSED, ids=["no-common-codec", "odd-transport"])
def test_an_answer_sipx_cannot_use_ends_the_call_as_media_refused_and_the_bye_says_why(server, answer, reason,
                                                                                         bye_text):
    creds = create_app(server)[:2]
    ua = phone(server, 5072)
    try:
        created, invite = dial(server, creds, ua, "refused")
        said, ended = refused(server, creds, ua, created, invite, answer)
        assert said == f'SIP;cause=488;text="{bye_text}"', said
        last = ended["history"][-1]
        assert (last["code"], last["reason"], last["cause"]) == (488, reason, "media_refused"), ended
    finally:
        ua.close()


def test_an_early_answer_sipx_cannot_use_leaves_the_call_to_the_2xx_answer(server):
    """A 183 whose SDP SIPx refuses (GSM only) is no answer at all: the 200's PCMA answer is
    the call's (RFC 3261 §13.2.1), where it used to find no offer left to answer."""
    creds = create_app(server)[:2]
    ua, final = phone(server, 5074), rtp_socket(40204)
    try:
        created, invite = dial(server, creds, ua, "late")
        ua.answer(invite, "183 Session Progress", sdp(40206, 3, "GSM"), tag="early")
        ua.answer(invite, "200 OK", contact(ua) + sdp(40204, 8, "PCMA"), tag="early")
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "CONFIRMED")
        got = payload_types(final, 25)
        assert len(got) == 25 and set(got) == {8}, got
        hang_up(server, creds, ua, created)
    finally:
        final.close()
        ua.close()
