"""Who a call is from, as carriers carry it (RFC 3325 `P-Asserted-Identity`, RFC 3323
`Privacy`). Dial-outs through a trunk assert the caller's number to the provider; one that
withholds its caller id is anonymous in From and asks for privacy, while the provider still gets
the number. Calls in from a trunk are from the identity the trunk asserts, unless the caller
withholds it; a SIP account's device asserts nothing SIPx believes.
The provider and the callers are raw UDP user agents, so the headers are exactly these.
Addresses 127.0.0.52-55 belong here."""

import random
import re
import socket

import pytest

import rooms
from conftest import create_app, sip_addr
from raw_ua import RawUa
from test_calls_dialout import api, wait_state
from test_calls_dialout_answers import header
from test_calls_inbound import phones_in

PROVIDER = "127.0.0.52"
CARRIER = "127.0.0.53"


def provider(server, port):
    host, sip_port = sip_addr(server, "udp")
    return RawUa(f"{host}:{sip_port}", user="provider", via=(host, sip_port), bind=(PROVIDER, port),
                 contact=f"sip:provider@{PROVIDER}:{port}")


@pytest.mark.parametrize("withhold", [False, True], ids=["shown", "withheld"])
def test_a_dial_out_asserts_its_number_to_the_provider_and_withholds_it_on_request(server, withhold):
    creds = create_app(server)[:2]
    port = 5091 if withhold else 5090
    ua = provider(server, port)
    try:
        trunk = api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {
            "host": PROVIDER, "port": port, "caller_id": "+4930123456"}}, expect=201).json()
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4940555", "route": {"trunk_id": trunk["id"]}, "room": {"name": "desk"},
            "withhold_caller_id": withhold}, expect=201).json()
        _, headers, _, invite = ua.receive("INVITE ")
        asserted = header(headers, "P-Asserted-Identity")
        assert asserted == f"<sip:+4930123456@{PROVIDER}>", invite
        if withhold:
            assert header(headers, "Privacy") == "id", invite
            # At the trunk's host, as its provider may check From's domain.
            assert header(headers, "From").startswith(
                f'"Anonymous" <sip:anonymous@{PROVIDER}>;tag='), invite
            assert "4930123456" not in header(headers, "From"), invite
        else:
            assert header(headers, "Privacy") is None, invite
            assert header(headers, "From").startswith(f"<sip:+4930123456@{PROVIDER}>;tag="), invite
        ua.answer(invite, "486 Busy Here")
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "DISCONNECTED")
    finally:
        ua.close()


def test_a_direct_dial_out_asserts_nothing(server):
    """A SIP URI dialled directly is no provider of SIPx's: it gets no assertion."""
    creds = create_app(server)[:2]
    ua = provider(server, 5092)
    try:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": f"sip:someone@{PROVIDER}:5092", "from": "+4930123456", "room": {"name": "desk"},
            "withhold_caller_id": True}, expect=201).json()
        _, headers, _, invite = ua.receive("INVITE ")
        assert header(headers, "P-Asserted-Identity") is None, invite
        assert header(headers, "Privacy") == "id", invite
        assert "anonymous.invalid" in header(headers, "From"), invite
        ua.answer(invite, "486 Busy Here")
        ua.receive("ACK ")
        wait_state(server, creds, created["id"], "DISCONNECTED")
    finally:
        ua.close()


def call_in(server, ip, extra):
    """An INVITE to number 800 from `ip` with `extra` headers; its final status once ACKed,
    and its Call-ID."""
    host, sport = sip_addr(server, "udp")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.settimeout(10)
    port = sock.getsockname()[1]
    call_id, tag = f"{random.getrandbits(64):x}@{ip}", f"{random.getrandbits(32):x}"
    body = f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    head = (f"INVITE sip:800@{host}:{sport} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch=z9hG4bKid1;rport\r\n"
            f"Max-Forwards: 70\r\nFrom: \"Reception\" <sip:+4930100@{ip}>;tag={tag}\r\nTo: <sip:800@{host}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{ip}:{port}>\r\n{extra}"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
    try:
        sock.sendto(head.encode(), (host, sport))
        while True:
            text = sock.recv(65535).decode(errors="replace")
            if text.startswith("SIP/2.0 ") and int(text.split(" ", 2)[1]) >= 200:
                to = re.search(r"^To: (.*)$", text, re.M).group(1).strip()
                ack = (f"ACK sip:800@{host}:{sport} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{port};branch=z9hG4bKid1;rport\r\n"
                       f"Max-Forwards: 70\r\nFrom: \"Reception\" <sip:+4930100@{ip}>;tag={tag}\r\nTo: {to}\r\n"
                       f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
                sock.sendto(ack.encode(), (host, sport))
                return int(text.split(" ", 2)[1]), call_id
    finally:
        sock.close()


ASSERTED = "P-Asserted-Identity: \"Desk 7\" <sip:+4930107@carrier.example>\r\n"


@pytest.mark.parametrize("extra, expected", [
    (ASSERTED, "sip:+4930107@carrier.example"),
    ("Privacy: id\r\n" + ASSERTED, f"sip:+4930100@{CARRIER}"),
    ("", f"sip:+4930100@{CARRIER}"),
], ids=["asserted", "withheld", "none"])
def test_a_trunks_call_is_from_the_identity_it_asserts_unless_withheld(server, extra, expected):
    """One rule refuses the caller +4930107 (603), another every other caller (486): an
    asserted +4930107 meets the first, a withheld or absent assertion leaves the call to From's
    +4930100 and the second. Either way the call's row says who it was from."""
    creds = create_app(server)
    trunk = api(server, creds[:2], "POST", "/v1/trunks",
                {"name": "carrier", "inbound": {"allowed_cidrs": [f"{CARRIER}/32"]}}, expect=201).json()
    api(server, creds[:2], "POST", "/v1/routing-rules", {
        "match": {"trunk_id": trunk["id"], "caller": {"kind": "exact", "value": "+4930107"}},
        "action": {"type": "reject", "sip_code": 603, "reason": "Blocked caller"}, "priority": 10}, expect=201)
    api(server, creds[:2], "POST", "/v1/routing-rules", {
        "match": {"trunk_id": trunk["id"]},
        "action": {"type": "reject", "sip_code": 486, "reason": "Other caller"}, "priority": 20}, expect=201)
    status, call_id = call_in(server, CARRIER, extra)
    assert status == (603 if "+4930107" in expected else 486), (status, expected)
    call = rooms.wait_until(lambda: next((c for c in api(server, creds[:2], "GET", "/v1/calls?direction=inbound",
                                                        expect=200).json()["items"]
                                          if c["sip_call_id"] == call_id), None), what="the call's row")
    assert call["from"] == expected, call


@pytest.mark.parametrize("extra, shown", [
    (ASSERTED, "Desk 7"),
    ("P-Asserted-Identity: <tel:+4930107>\r\n", "+4930107"),
    ("Privacy: id\r\n" + ASSERTED, "Anonymous"),
    ("Privacy: id\r\n", "Anonymous"),
], ids=["asserted", "asserted-tel", "withheld", "withheld-from"])
def test_the_room_shows_the_asserted_caller_or_anonymous(server, extra, shown):
    """The room's members see the asserted caller (its name, else its number, a tel URI's
    too); a caller who withholds its identity is "Anonymous" there even when its carrier leaves
    the number in From (Privacy: id alone)."""
    creds = create_app(server)
    trunk = api(server, creds[:2], "POST", "/v1/trunks",
                {"name": "carrier", "inbound": {"allowed_cidrs": [f"{CARRIER}/32"]}}, expect=201).json()
    api(server, creds[:2], "POST", "/v1/routing-rules", {
        "match": {"trunk_id": trunk["id"]},
        "action": {"type": "fixed_room", "room": "lobby"}, "priority": 10}, expect=201)
    status, call_id = call_in(server, CARRIER, extra)
    assert status == 200, status
    call = rooms.wait_until(lambda: next((c for c in api(server, creds[:2], "GET", "/v1/calls?direction=inbound",
                                                        expect=200).json()["items"]
                                          if c["sip_call_id"] == call_id), None), what="the call's row")
    phones = rooms.wait_until(lambda: phones_in(server, creds, "lobby"), what="the caller in the room")
    assert [p["name"] for p in phones] == [shown], phones
    api(server, creds[:2], "DELETE", f"/v1/calls/{call['id']}", expect=202)
