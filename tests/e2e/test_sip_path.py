"""A device registered through an edge proxy that adds a Path (RFC 3327): Kamailio with
`add_path_received()` between a raw UDP gateway and SIPx. The gateway's Contact names an
address nobody can reach (as a device behind NAT writes its private one); only the Path leads
back to it. Addresses 127.0.0.192-194 belong here."""

import hashlib
import random
import socket
import time

import pytest

from conftest import Kamailio, create_app, sip_addr
from test_calls_dialout import api, wait_state

EDGE = ("127.0.0.192", 5060)
GATEWAY = ("127.0.0.193", 5070)
# What the gateway claims as its Contact: TEST-NET-1, reachable by no one here.
UNREACHABLE_CONTACT = "sip:pathgw@192.0.2.55:5060"


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Gateway:
    """A minimal UDP user agent behind the edge proxy: registers, answers one INVITE."""

    def __init__(self, sipx_host):
        self.sipx_host = sipx_host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(GATEWAY)
        self.sock.settimeout(0.5)

    def close(self):
        self.sock.close()

    def receive(self, first_line_start, timeout=15):
        """The next message whose first line starts so, as (first line, headers, body, text)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            text = data.decode(errors="replace")
            head, _, body = text.partition("\r\n\r\n")
            lines = head.split("\r\n")
            if not lines[0].startswith(first_line_start):
                continue
            headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:] if ":" in line]
            return lines[0], headers, body, text
        raise AssertionError(f"no {first_line_start!r} within {timeout} s")

    def register(self, cseq, authorization="", supported="path"):
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        msg = (f"REGISTER sip:{self.sipx_host} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {GATEWAY[0]}:{GATEWAY[1]};branch={branch};rport\r\n"
               "Max-Forwards: 70\r\n"
               f"To: <sip:pathgw@{self.sipx_host}>\r\nFrom: <sip:pathgw@{self.sipx_host}>;tag=gw1\r\n"
               f"Call-ID: path-reg-1\r\nCSeq: {cseq} REGISTER\r\n"
               f"Contact: <{UNREACHABLE_CONTACT}>\r\nExpires: 300\r\nSupported: {supported}\r\n"
               f"{authorization}Content-Length: 0\r\n\r\n")
        self.sock.sendto(msg.encode(), EDGE)
        return self.receive("SIP/2.0 ")

    def register_with_digest(self, password):
        first, headers, _, text = self.register(1)
        assert first.startswith("SIP/2.0 401"), text
        www = next(v for k, v in headers if k.lower() == "www-authenticate")
        nonce = www.split('nonce="')[1].split('"')[0]
        realm = www.split('realm="')[1].split('"')[0]
        uri = f"sip:{self.sipx_host}"
        response = md5(f"{md5(f'pathgw:{realm}:{password}')}:{nonce}:00000001:c0ffee:auth:{md5(f'REGISTER:{uri}')}")
        auth = (f'Authorization: Digest username="pathgw", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n')
        return self.register(2, auth)

    def answer(self, invite_text, status, extra=""):
        """A response to the request in `invite_text`, its Via, From, To, Call-ID and CSeq
        copied; `extra` lines (with CRLFs) and an optional SDP body after them."""
        head = invite_text.split("\r\n\r\n", 1)[0].split("\r\n")[1:]
        keep = [line for line in head if line.split(":", 1)[0].strip().lower()
                in ("via", "from", "call-id", "cseq", "record-route")]
        to = next(line for line in head if line.lower().startswith("to:"))
        if ";tag=" not in to:
            to += ";tag=gwans"
        body = extra.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in extra else ""
        extra_head = extra.split("\r\n\r\n", 1)[0] + "\r\n" if extra else ""
        msg = (f"SIP/2.0 {status}\r\n" + "\r\n".join(keep + [to]) + "\r\n" + extra_head
               + f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.sock.sendto(msg.encode(), EDGE)


@pytest.fixture
def edge(server, tmp_path):
    host, port = sip_addr(server, "udp")
    kam = Kamailio("edge.cfg", EDGE, tmp_path / "kam", SIPX=f'"sip:{host}:{port}"')
    yield kam
    kam.stop()


def test_a_device_registered_through_an_edge_proxy_is_called_along_its_path(server, edge):
    host, port = sip_addr(server, "udp")
    creds = create_app(server)[:2]
    account = api(server, creds, "POST", "/v1/sip-accounts",
                  {"username": "pathgw", "password": "pathgw-pass-1", "dial_request_uri": "contact"},
                  expect=201).json()
    gw = Gateway(f"{host}:{port}")
    try:
        first, headers, _, text = gw.register_with_digest("pathgw-pass-1")
        assert first.startswith("SIP/2.0 200"), text
        # The edge's Path, with the address the gateway sent from, comes back to a device that
        # supports `path` (RFC 3327 §5.3).
        paths = [v for k, v in headers if k.lower() == "path"]
        assert len(paths) == 1 and paths[0].startswith(f"<sip:{EDGE[0]};lr;received="), text
        assert f"{GATEWAY[0]}:{GATEWAY[1]}" in paths[0], paths
        regs = api(server, creds, "GET", "/v1/registrations", expect=200).json()["items"]
        assert [(r["username"], r["contact"], r["source"], r["path"]) for r in regs] == [
            ("pathgw", UNREACHABLE_CONTACT, f"{EDGE[0]}:{EDGE[1]}", paths)], regs

        # A dial-out to the account: to the edge, with the Path as its Route; the edge takes
        # the request to the address the gateway registered from, not to its Contact.
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4930555", "route": {"sip_account_id": account["id"]}, "room": {"name": "pathroom"}},
            expect=201).json()
        first, headers, _, invite = gw.receive("INVITE ")
        assert first == f"INVITE {UNREACHABLE_CONTACT} SIP/2.0", invite
        assert not [v for k, v in headers if k.lower() == "route"], "the edge consumed its own Route"
        vias = [v for k, v in headers if k.lower() in ("via", "v")]
        assert len(vias) == 2 and vias[0].startswith(f"SIP/2.0/UDP {EDGE[0]};"), vias
        assert "towards the device: INVITE" in edge.log_text()

        sdp = ("v=0\r\no=gw 1 1 IN IP4 127.0.0.193\r\ns=-\r\nc=IN IP4 127.0.0.193\r\nt=0 0\r\n"
               "m=audio 40192 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        gw.answer(invite, "200 OK", f"Contact: <sip:pathgw@{GATEWAY[0]}:{GATEWAY[1]}>\r\n"
                                    f"Content-Type: application/sdp\r\n\r\n{sdp}")
        gw.receive("ACK ")
        wait_state(server, creds, created["id"], "CONFIRMED")
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        _, _, _, bye = gw.receive("BYE ")
        gw.answer(bye, "200 OK")
        ended = wait_state(server, creds, created["id"], "DISCONNECTED")
        assert ended["end"]["cause"] != "error", ended
    finally:
        gw.close()


def test_a_device_that_does_not_support_path_gets_none_back_but_is_still_reached_along_it(server, edge):
    host, port = sip_addr(server, "udp")
    creds = create_app(server)[:2]
    api(server, creds, "POST", "/v1/sip-accounts", {"username": "pathgw", "password": "pathgw-pass-2"}, expect=201)
    gw = Gateway(f"{host}:{port}")
    try:
        # `supported` names another extension only.
        original = gw.register

        def register(cseq, authorization="", supported="100rel"):
            return original(cseq, authorization, supported)

        gw.register = register
        first, headers, _, text = gw.register_with_digest("pathgw-pass-2")
        assert first.startswith("SIP/2.0 200"), text
        assert not [v for k, v in headers if k.lower() == "path"], text
        regs = api(server, creds, "GET", "/v1/registrations", expect=200).json()["items"]
        assert len(regs) == 1 and len(regs[0]["path"]) == 1 and "received=" in regs[0]["path"][0], regs
    finally:
        gw.close()
