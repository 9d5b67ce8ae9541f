"""Reliable provisional responses (RFC 3262), as IMS cores and carriers' SBCs use them: a
dial-out's INVITE offers `100rel`; a 183 or 180 sent reliably gets one PRACK, in its early
dialog, however often it is sent again; the early answer of a reliable 183 is the call's, so the
200 need not repeat it; the dialog's requests count on from the PRACKs' CSeq numbers. And a
caller that requires `100rel` gets its call answered, not 420.
The phone is a raw UDP user agent, so the answers are exactly these. Addresses 127.0.0.50-51
belong here."""

import re
import socket
import time

import pytest

from conftest import create_app, sip_addr
from raw_ua import RawUa
from test_calls_dialout import api, wait_state
from test_calls_dialout_answers import header, payload_types
from test_calls_replaces import Phone
from test_calls_replaces import header as text_header
from test_media_echo import echo_server

PHONE = "127.0.0.50"
CALLER = "127.0.0.51"


def early_sdp(port, pt=0, name="PCMU"):
    return ("Content-Type: application/sdp\r\n\r\n"
            f"v=0\r\no=phone 1 1 IN IP4 {PHONE}\r\ns=-\r\nc=IN IP4 {PHONE}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP {pt}\r\na=rtpmap:{pt} {name}/8000\r\n")


def rtp_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((PHONE, port))
    s.settimeout(0.2)
    return s


def raw_phone(server, port):
    host, sip_port = sip_addr(server, "udp")
    return RawUa(f"{host}:{sip_port}", user="phone", via=(host, sip_port), bind=(PHONE, port),
                 contact=f"sip:phone@{PHONE}:{port}")


def dial_raw_phone(server, port, room):
    """A new application dials a raw phone on `port` into `room`: (its credentials, the
    phone, the created call)."""
    creds = create_app(server)[:2]
    ua = raw_phone(server, port)
    created = api(server, creds, "POST", "/v1/calls",
                  {"to": f"sip:ims@{PHONE}:{port}", "room": {"name": room}}, expect=201).json()
    return creds, ua, created


def contact(ua):
    return f"Contact: <sip:phone@{PHONE}:{ua.sock.getsockname()[1]}>\r\n"


def reliable(ua, rseq):
    return contact(ua) + f"Require: 100rel\r\nRSeq: {rseq}\r\n"


def cseq_of(headers):
    number, method = header(headers, "CSeq").split()
    return int(number), method


def test_reliable_provisionals_get_one_prack_each_and_the_early_answer_stands(server):
    creds = create_app(server)[:2]
    ua, media = raw_phone(server, 5080), rtp_socket(40300)
    try:
        created = api(server, creds, "POST", "/v1/calls",
                      {"to": f"sip:ims@{PHONE}:5080", "room": {"name": "reliable"}}, expect=201).json()
        _, invite_headers, _, invite = ua.receive("INVITE ")
        assert "100rel" in [t.strip() for t in header(invite_headers, "Supported").split(",")], invite
        invite_cseq, _ = cseq_of(invite_headers)

        # A reliable 183 with the answer: one PRACK, in the early dialog, naming it.
        ua.answer(invite, "183 Session Progress", reliable(ua, 1) + early_sdp(40300), tag="ims")
        first, prack_headers, _, prack = ua.receive("PRACK ")
        assert first.startswith(f"PRACK sip:phone@{PHONE}:5080 "), prack
        assert header(prack_headers, "RAck") == f"1 {invite_cseq} INVITE", prack
        assert cseq_of(prack_headers) == (invite_cseq + 1, "PRACK"), prack
        assert "tag=ims" in header(prack_headers, "To"), prack
        assert header(prack_headers, "Call-ID") == header(invite_headers, "Call-ID"), prack
        ua.answer(prack, "200 OK")
        # Early media flows to the early answer's address.
        got = payload_types(media, 10)
        assert len(got) == 10 and set(got) == {0}, got

        # The 183 again (its PRACK's answer "lost"), then a reliable 180: the retransmission
        # gets no PRACK, the 180 the next one.
        ua.answer(invite, "183 Session Progress", reliable(ua, 1) + early_sdp(40300), tag="ims")
        ua.answer(invite, "180 Ringing", reliable(ua, 2), tag="ims")
        _, prack_headers, _, prack = ua.receive("PRACK ")
        assert header(prack_headers, "RAck") == f"2 {invite_cseq} INVITE", prack
        assert cseq_of(prack_headers) == (invite_cseq + 2, "PRACK"), prack
        ua.answer(prack, "200 OK")

        # The 200 without SDP: the reliable 183's answer is the call's (RFC 3262 §5).
        ua.answer(invite, "200 OK", contact(ua), tag="ims")
        _, ack_headers, _, ack = ua.receive("ACK ")
        assert cseq_of(ack_headers) == (invite_cseq, "ACK"), ack
        confirmed = wait_state(server, creds, created["id"], "CONFIRMED")
        assert confirmed["codec"] == "PCMU", confirmed
        got = payload_types(media, 25)
        assert len(got) == 25 and set(got) == {0}, got

        # The BYE counts on from the PRACKs, not from the INVITE.
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        _, bye_headers, _, bye = ua.receive("BYE ")
        assert cseq_of(bye_headers) == (invite_cseq + 3, "BYE"), bye
        ua.answer(bye, "200 OK")
        ended = wait_state(server, creds, created["id"], "DISCONNECTED")
        assert "EARLY" in [h["state"] for h in ended["history"]], ended
        # Nothing else came: no PRACK for the retransmitted 183.
        ua.sock.settimeout(0.3)
        stray = []
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                stray.append(ua.sock.recv(65535).decode(errors="replace").split("\r\n", 1)[0])
            except socket.timeout:
                pass
        assert not [line for line in stray if line.startswith("PRACK")], stray
    finally:
        media.close()
        ua.close()


def test_a_reliable_early_answer_sipx_cannot_use_cancels_the_call(server):
    """The answer of a reliable 183 is the call's: one with no codec SIPx has is acknowledged
    (the PRACK stops its retransmissions) and the call is cancelled at once, ending 488
    `media_refused`, instead of ringing on until the callee answers into a BYE."""
    creds, ua, created = dial_raw_phone(server, 5082, "refused-early")
    try:
        _, invite_headers, _, invite = ua.receive("INVITE ")
        ua.answer(invite, "183 Session Progress", reliable(ua, 1) + early_sdp(40302, 96, "AMR"), tag="ims")
        _, _, _, prack = ua.receive("PRACK ")
        ua.answer(prack, "200 OK")
        first, cancel_headers, _, cancel = ua.receive("CANCEL ")
        assert cseq_of(cancel_headers) == (cseq_of(invite_headers)[0], "CANCEL"), cancel
        ua.answer(cancel, "200 OK")
        ua.answer(invite, "487 Request Terminated", tag="ims")
        ua.receive("ACK ")
        ended = wait_state(server, creds, created["id"], "DISCONNECTED")
        assert (ended["end"]["code"], ended["end"]["cause"]) == (488, "media_refused"), ended
        assert "CONFIRMED" not in [h["state"] for h in ended["history"]], ended
    finally:
        ua.close()


def test_a_reliable_provisional_out_of_order_waits_for_the_one_before_it(server):
    """RSeq 2 before RSeq 1 (the first lost on the way): no PRACK for 2 until 1 came; the
    callee's retransmission of 2 then gets its PRACK."""
    creds, ua, created = dial_raw_phone(server, 5082, "reordered")
    try:
        _, _, _, invite = ua.receive("INVITE ")
        ua.answer(invite, "180 Ringing", reliable(ua, 8), tag="r")
        _, h, _, prack = ua.receive("PRACK ")
        assert header(h, "RAck").startswith("8 "), prack
        ua.answer(prack, "200 OK")
        ua.answer(invite, "183 Session Progress", reliable(ua, 10), tag="r")
        ua.answer(invite, "183 Session Progress", reliable(ua, 9), tag="r")
        _, h, _, prack = ua.receive("PRACK ")
        assert header(h, "RAck").startswith("9 "), prack
        ua.answer(prack, "200 OK")
        ua.answer(invite, "183 Session Progress", reliable(ua, 10), tag="r")
        _, h, _, prack = ua.receive("PRACK ")
        assert header(h, "RAck").startswith("10 "), prack
        ua.answer(prack, "200 OK")
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        _, _, _, cancel = ua.receive("CANCEL ")
        ua.answer(cancel, "200 OK", tag="r")
        ua.answer(invite, "487 Request Terminated", tag="r")
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "DISCONNECTED")
    finally:
        ua.close()


@pytest.mark.parametrize("same_fork", [False, True], ids=["other-fork", "same-fork"])
def test_the_2xx_dialogs_reliable_answer_is_the_calls(server, same_fork):
    """Fork x's reliable 183 (PCMU to 40302) is the early answer. Other fork: fork y's
    reliable 183 (PCMA to 40304) and its 200 without SDP: the call's media goes where y's
    answer says. Same fork: x's 200 carries another SDP (PCMA to 40304), which is ignored: a
    reliable answer is its dialog's (RFC 3262 §5)."""
    creds = create_app(server)[:2]
    port = 5084 if same_fork else 5086
    ua, first, second = raw_phone(server, port), rtp_socket(40302 + 4 * same_fork), rtp_socket(40304 + 4 * same_fork)
    try:
        created = api(server, creds, "POST", "/v1/calls",
                      {"to": f"sip:ims@{PHONE}:{port}", "room": {"name": "forks"}}, expect=201).json()
        _, _, _, invite = ua.receive("INVITE ")
        first_port, second_port = first.getsockname()[1], second.getsockname()[1]
        ua.answer(invite, "183 Session Progress", reliable(ua, 1) + early_sdp(first_port), tag="x")
        _, _, _, prack = ua.receive("PRACK ")
        ua.answer(prack, "200 OK")
        if same_fork:
            ua.answer(invite, "200 OK", contact(ua) + early_sdp(second_port, 8, "PCMA"), tag="x")
        else:
            ua.answer(invite, "183 Session Progress", reliable(ua, 1) + early_sdp(second_port, 8, "PCMA"), tag="y")
            _, h, _, prack = ua.receive("PRACK ")
            assert "tag=y" in header(h, "To"), prack
            ua.answer(prack, "200 OK")
            ua.answer(invite, "200 OK", contact(ua), tag="y")
        ua.receive("ACK ")
        confirmed = wait_state(server, creds, created["id"], "CONFIRMED")
        media, codec, pt = (first, "PCMU", 0) if same_fork else (second, "PCMA", 8)
        assert confirmed["codec"] == codec, confirmed
        got = payload_types(media, 25)
        assert len(got) == 25 and set(got) == {pt}, got
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        _, _, _, bye = ua.receive("BYE ")
        ua.answer(bye, "200 OK")
    finally:
        for s in (first, second):
            s.close()
        ua.close()


def test_a_caller_that_requires_100rel_is_answered(data_dir):
    sipx = echo_server(data_dir)
    phone = Phone(CALLER, sip_addr(sipx, "udp"))
    try:
        status, dialog, answer = phone.invite(
            "echo", "Supported: timer\r\nRequire: 100rel\r\n")
        assert status == 200, answer
        assert "100rel" in text_header(answer, "Supported"), answer
        assert re.search(r"^m=audio \d+ RTP/AVP", answer, re.M), answer
    finally:
        phone.close()
        sipx.stop()
