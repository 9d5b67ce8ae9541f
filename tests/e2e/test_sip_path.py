"""A device registered through an edge proxy that adds a Path (RFC 3327): Kamailio with
`add_path_received()` between a raw UDP gateway and SIPx. The gateway's Contact names an
address nobody can reach (as a device behind NAT writes its private one); only the Path leads
back to it. Addresses 127.0.0.188-189 and 127.0.0.192-196 belong here."""

import socket

import pytest

from conftest import SIP_ENV, Kamailio, Server, create_app, sip_addr
from raw_ua import RawUa
from test_calls_dialout import api, wait_state

EDGE = ("127.0.0.192", 5060)
GATEWAY = ("127.0.0.193", 5070)
# What the gateway claims as its Contact: TEST-NET-1, reachable by no one here.
UNREACHABLE_CONTACT = "sip:pathgw@192.0.2.55:5060"


def Gateway(sipx_host, **kwargs):
    """The gateway behind the edge proxy, with its unreachable Contact."""
    defaults = {"user": "pathgw", "via": EDGE, "bind": GATEWAY, "contact": UNREACHABLE_CONTACT}
    return RawUa(sipx_host, **{**defaults, **kwargs})


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
        first, headers, _, text = gw.register_with_digest("pathgw-pass-2", supported="100rel")
        assert first.startswith("SIP/2.0 200"), text
        assert not [v for k, v in headers if k.lower() == "path"], text
        regs = api(server, creds, "GET", "/v1/registrations", expect=200).json()["items"]
        assert len(regs) == 1 and len(regs[0]["path"]) == 1 and "received=" in regs[0]["path"][0], regs
    finally:
        gw.close()


def test_a_changed_path_is_what_a_restart_brings_back(data_dir):
    """A refresh that changes only the Path is written through, like a new contact: after a
    restart the device is reached along its new path (and a path dropped stays dropped)."""
    s = Server(data_dir, env=SIP_ENV).start()
    try:
        creds = create_app(s)[:2]
        api(s, creds, "POST", "/v1/sip-accounts", {"username": "movinggw", "password": "movinggw-pass"}, expect=201)
        api(s, creds, "POST", "/v1/sip-accounts", {"username": "dropsgw", "password": "dropsgw-pass1"}, expect=201)
        host, port = sip_addr(s, "udp")
        for user, password, paths in (("movinggw", "movinggw-pass", ["gen=old", "gen=new"]),
                                      ("dropsgw", "dropsgw-pass1", ["gen=x", None])):
            gw = Gateway(f"{host}:{port}", user=user, via=(host, port), bind=("127.0.0.195", 0))
            try:
                for path in paths:
                    gw.extra = f"Path: <sip:127.0.0.194;lr;{path}>\r\n" if path else ""
                    first, _, _, text = gw.register_with_digest(password)
                    assert first.startswith("SIP/2.0 200"), text
            finally:
                gw.close()
    finally:
        assert s.stop() == 0
    s = Server(data_dir, env=SIP_ENV).start()
    try:
        s.wait_log(lambda e: e.get("message") == "registrations restored" and e.get("contacts") == 2, 10)
        regs = {r["username"]: r["path"] for r in api(s, creds, "GET", "/v1/registrations", expect=200).json()["items"]}
        assert regs == {"movinggw": ["<sip:127.0.0.194;lr;gen=new>"], "dropsgw": []}, regs
    finally:
        s.stop()


def test_a_deleted_accounts_device_is_neither_listed_nor_dialled_for_another_application(server):
    """An account's registrations end with it, and its name taken by another application's
    new account does not bring the old device along."""
    host, port = sip_addr(server, "udp")
    first_app, second_app = create_app(server)[:2], create_app(server)[:2]
    old = api(server, first_app, "POST", "/v1/sip-accounts", {"username": "reusedgw", "password": "reusedgw-pw1"},
              expect=201).json()
    gw = Gateway(f"{host}:{port}", user="reusedgw", via=(host, port), bind=("127.0.0.196", 0))
    try:
        first, _, _, text = gw.register_with_digest("reusedgw-pw1")
        assert first.startswith("SIP/2.0 200"), text
        assert len(api(server, first_app, "GET", "/v1/registrations", expect=200).json()["items"]) == 1
        api(server, first_app, "DELETE", f"/v1/sip-accounts/{old['id']}", expect=204)
        # The delete answers once the SIP service has loaded it.
        assert api(server, first_app, "GET", "/v1/registrations", expect=200).json()["items"] == []
        server.wait_log(lambda e: e.get("message") == "registration ended: its account is gone"
                        and e.get("username") == "reusedgw", 10)
        new = api(server, second_app, "POST", "/v1/sip-accounts",
                  {"username": "reusedgw", "password": "reusedgw-pw2"}, expect=201).json()
        assert api(server, second_app, "GET", "/v1/registrations", expect=200).json()["items"] == []
        created = api(server, second_app, "POST", "/v1/calls", {
            "to": "+4930111", "route": {"sip_account_id": new["id"]}, "room": {"name": "reused"}},
            expect=201).json()
        ended = wait_state(server, second_app, created["id"], "DISCONNECTED")
        assert ended["history"][-1]["code"] == 480, ended
        gw.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            gw.sock.recvfrom(65535)
    finally:
        gw.close()


def test_a_path_cannot_aim_calls_at_another_host(server):
    """A device that writes a Path itself, naming another host: calls still go to where its
    REGISTER came from (with the Route), never to the host it named."""
    host, port = sip_addr(server, "udp")
    creds = create_app(server)[:2]
    account = api(server, creds, "POST", "/v1/sip-accounts",
                  {"username": "aimgw", "password": "aimgw-pass-1", "dial_request_uri": "contact"},
                  expect=201).json()
    elsewhere = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    elsewhere.bind(("127.0.0.189", 5099))
    elsewhere.settimeout(0.5)
    gw = Gateway(f"{host}:{port}", user="aimgw", via=(host, port), bind=("127.0.0.188", 5070),
                 extra="Path: <sip:127.0.0.189:5099;lr>\r\n")
    try:
        first, _, _, text = gw.register_with_digest("aimgw-pass-1")
        assert first.startswith("SIP/2.0 200"), text
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "+4930999", "route": {"sip_account_id": account["id"]}, "room": {"name": "aim"}},
            expect=201).json()
        _, headers, _, invite = gw.receive("INVITE ")
        assert [v for k, v in headers if k.lower() == "route"] == ["<sip:127.0.0.189:5099;lr>"], invite
        gw.answer(invite, "486 Busy Here")
        wait_state(server, creds, created["id"], "DISCONNECTED")
        with pytest.raises(socket.timeout):
            elsewhere.recvfrom(65535)
    finally:
        elsewhere.close()
        gw.close()
