"""Dial-outs answered in ways real phones, forking proxies and providers answer: a 2xx whose SDP
answer differs from the 183's early one, an answer SIPx cannot use, another fork's 2xx without
one, the callee's requests in its early dialog, a provider that challenges BYEs. The phone is
a raw UDP user agent, so the answers are exactly these. Address 127.0.0.198 belongs here."""

import random
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


def early_request(ua, invite, method, tag, cseq, extra=""):
    """Sends `method` from the callee in the early dialog its provisional with To tag `tag`
    opened (RFC 3261 §12.1.1: SIPx's Contact is the target; From and To swap) and returns the
    answer's first line."""
    head = dict((k.lower(), v) for k, v in
                (line.split(":", 1) for line in invite.split("\r\n\r\n", 1)[0].split("\r\n")[1:] if ":" in line))
    target = head["contact"].strip().split("<", 1)[-1].split(">", 1)[0]
    local = ua.sock.getsockname()
    body = extra.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in extra else ""
    extra_head = extra.split("\r\n\r\n", 1)[0] + "\r\n" if extra else ""
    msg = (f"{method} {target} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP {local[0]}:{local[1]};branch=z9hG4bK{random.getrandbits(48):x};rport\r\n"
           f"Max-Forwards: 70\r\nFrom: {head['to'].strip()};tag={tag}\r\nTo: {head['from'].strip()}\r\n"
           f"Call-ID: {head['call-id'].strip()}\r\nCSeq: {cseq} {method}\r\n" + contact(ua) + extra_head
           + f"Content-Length: {len(body)}\r\n\r\n{body}")
    ua.sock.sendto(msg.encode(), ua.via)
    return ua.receive("SIP/2.0 ")[0]


def test_the_callee_is_answered_in_its_early_dialog(server):
    """After a 180 (To tag ring), the callee's UPDATE without SDP, INFO and OPTIONS in that early
    dialog are answered 200 (RFC 3311 §5.1), though the phone is no known source; they used to
    get 403 "Source not allowed". An UPDATE with an offer while SIPx's own is unanswered gets
    491 (§5.2). Another tag names no dialog: 481."""
    creds = create_app(server)[:2]
    ua = phone(server, 5076)
    try:
        created, invite = dial(server, creds, ua, "earlyreq")
        ua.answer(invite, "180 Ringing", contact(ua), tag="ring")
        wait_state(server, creds, created["id"], "EARLY")
        assert early_request(ua, invite, "UPDATE", "ring", 1).startswith("SIP/2.0 200"), "UPDATE"
        info = "Content-Type: application/dtmf-relay\r\n\r\nSignal=5\r\nDuration=160\r\n"
        assert early_request(ua, invite, "INFO", "ring", 2, info).startswith("SIP/2.0 200"), "INFO"
        assert early_request(ua, invite, "OPTIONS", "ring", 3).startswith("SIP/2.0 200"), "OPTIONS"
        offer = sdp(40210, 0, "PCMU")
        assert early_request(ua, invite, "UPDATE", "ring", 4, offer).startswith("SIP/2.0 491"), "UPDATE offer"
        assert early_request(ua, invite, "OPTIONS", "other", 1).startswith("SIP/2.0 481"), "unknown tag"
        ua.answer(invite, "200 OK", contact(ua) + sdp(40212, 0, "PCMU"), tag="ring")
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "CONFIRMED")
        hang_up(server, creds, ua, created)
    finally:
        ua.close()


def test_a_2xx_without_sdp_from_another_fork_than_the_early_answer_is_no_answer(server):
    """A 183 with an SDP answer from one fork, then a 200 without SDP from another: offer and
    answer are per dialog (RFC 3261 §13.2.1), so the 200's dialog answered nothing. SIPx
    acknowledges it and ends it, 488 "No SDP answer", instead of sending its media to the
    first fork. A 2xx a proxy sends again after that is acknowledged again, not ended twice."""
    creds = create_app(server)[:2]
    ua = phone(server, 5078)
    try:
        created, invite = dial(server, creds, ua, "forknosdp")
        ua.answer(invite, "183 Session Progress", sdp(40214, 0, "PCMU"), tag="forka")
        ua.answer(invite, "200 OK", contact(ua), tag="forkb")
        _, headers, _, ack = ua.receive("ACK ")
        assert "tag=forkb" in header(headers, "To"), ack
        _, headers, _, bye = ua.receive("BYE ")
        assert "tag=forkb" in header(headers, "To"), bye
        assert header(headers, "Reason") == 'SIP;cause=488;text="No SDP answer"', bye
        ua.answer(bye, "200 OK")
        ended = wait_state(server, creds, created["id"], "DISCONNECTED")
        assert ended["end"]["cause"] == "media_refused", ended
    finally:
        ua.close()


def test_a_late_fork_is_ended_once_however_often_its_2xx_comes(server):
    """The 200 of a second fork after the call's own: acknowledged and ended by one BYE (RFC 3261
    §13.2.2.4). Its 200 sent again (our ACK lost) is acknowledged again, with no second BYE: the
    next BYE the phone sees is the call's own, at the hang-up."""
    creds = create_app(server)[:2]
    ua = phone(server, 5080)
    try:
        created, invite = dial(server, creds, ua, "latefork")
        ua.answer(invite, "200 OK", contact(ua) + sdp(40216, 0, "PCMU"), tag="first")
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "CONFIRMED")
        late = contact(ua) + sdp(40218, 0, "PCMU")
        ua.answer(invite, "200 OK", late, tag="late")
        ua.receive("ACK ")
        _, headers, _, bye = ua.receive("BYE ")
        assert "tag=late" in header(headers, "To"), bye
        ua.answer(bye, "200 OK")
        ua.answer(invite, "200 OK", late, tag="late")
        _, headers, _, ack = ua.receive("ACK ")
        assert "tag=late" in header(headers, "To"), ack
        assert "tag=first" in header(hang_up(server, creds, ua, created), "To")
    finally:
        ua.close()


def test_a_bye_the_provider_challenges_goes_again_with_the_trunks_credentials(server):
    """A provider that challenges BYEs as it does INVITEs (407): SIPx sends the BYE again once
    with the trunk's credentials (RFC 3261 §22.2), and the provider's call ends. It used to send
    nothing more, leaving the call up, and billed, on the provider's side."""
    creds = create_app(server)[:2]
    ua = phone(server, 5082)
    try:
        trunk = api(server, creds, "POST", "/v1/trunks", {"name": "bye-auth", "outbound": {
            "host": PHONE, "port": 5082, "username": "byeuser", "password": "byepass-123"}}, expect=201).json()
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4930555", "route": {"trunk_id": trunk["id"]}, "room": {"name": "byeauth"}}, expect=201).json()
        _, _, _, invite = ua.receive("INVITE ")
        ua.answer(invite, "200 OK", contact(ua) + sdp(40220, 0, "PCMU"))
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "CONFIRMED")
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        _, _, _, bye = ua.receive("BYE ")
        ua.answer(bye, "407 Proxy Authentication Required",
                  'Proxy-Authenticate: Digest realm="provider", nonce="byenonce1", qop="auth", algorithm=MD5\r\n')
        _, headers, _, again = ua.receive("BYE ")
        authz = header(headers, "Proxy-Authorization") or ""
        assert 'username="byeuser"' in authz and 'nonce="byenonce1"' in authz, again
        assert header(headers, "CSeq").split()[0] != [v for k, v in
                                                      (line.split(":", 1) for line in bye.split("\r\n")[1:] if ":" in line)
                                                      if k.strip().lower() == "cseq"][0].split()[0], again
        ua.answer(again, "200 OK")
        wait_state(server, creds, created["id"], "DISCONNECTED")
    finally:
        ua.close()
