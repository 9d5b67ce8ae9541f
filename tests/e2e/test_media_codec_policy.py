"""A trunk's or SIP account's own codecs replace the server's (`media.codecs`, by default opus,
G722, PCMU, PCMA) for the calls through it, both ways, checked on the wire: what sipp's offer
of PCMU and PCMA is answered with, and what a dial-out through the trunk offers its provider.
Addresses 127.0.0.105-109 belong to these tests."""

import itertools
import os
import re

import pytest
import requests

from conftest import Server, auth_header, create_app, sip_addr
from media import run_sipp_call
from raw_ua import RawUa
from test_media_echo import echo_server, logged

CALLS = itertools.count()


def api(server, creds, method, path, body=None, expect=(200, 201)):
    r = requests.request(method, server.url(path), headers=auth_header(*creds), json=body, timeout=5)
    assert r.status_code in expect, r.text
    return r.json() if r.content else None


def offer_pcmu_pcma(server, tmp_path, ip):
    """sipp offers PCMU then PCMA to the echo test; the final status and the codec taken."""
    before = len(logged(server, "call media negotiated"))
    run = run_sipp_call("uac_offer_pcmu_pcma.xml", tmp_path / f"sipp-{next(CALLS)}", ip,
                        sip_addr(server, "udp"), "-s", "echo")
    assert run.returncode == 0, run.errors + run.stderr
    taken = logged(server, "call media negotiated")[before:]
    return run.final_status(), (taken[0]["codec"] if taken else None)


def test_a_trunks_codecs_are_what_its_calls_in_may_use_in_its_order(data_dir, tmp_path):
    s = echo_server(data_dir)
    try:
        creds = create_app(s)[:2]
        # Checked whole: none, the same twice, or one SIPx does not know are refused.
        for bad in ([], ["PCMA", "PCMA"], ["AMR"]):
            r = requests.post(s.url("/v1/trunks"), headers=auth_header(*creds), timeout=5, json={
                "name": "Carrier", "codecs": bad, "inbound": {"allowed_cidrs": ["127.0.0.105/32"]}})
            named = "AMR" if "AMR" in bad else "codecs"
            assert r.status_code == 422 and named in r.text, (bad, r.status_code, r.text)
        trunk = api(s, creds, "POST", "/v1/trunks", {"name": "Carrier", "codecs": ["PCMA", "PCMU"],
                                                    "inbound": {"allowed_cidrs": ["127.0.0.105/32"]}})
        assert trunk["codecs"] == ["PCMA", "PCMU"], trunk
        # The trunk's order: PCMA, though PCMU came first in the offer and in the server's list.
        assert offer_pcmu_pcma(s, tmp_path, "127.0.0.105") == (200, "PCMA")
        # Elsewhere the server's list: PCMU.
        assert offer_pcmu_pcma(s, tmp_path, "127.0.0.106") == (200, "PCMU")
        # Nothing in common with the trunk's: 488.
        api(s, creds, "PATCH", f"/v1/trunks/{trunk['id']}", {"codecs": ["G722"]})
        assert offer_pcmu_pcma(s, tmp_path, "127.0.0.105") == (488, None)
        refused = logged(s, "call refused: media")
        assert refused and refused[-1]["origin"] == f"trunk:{trunk['id']}", refused
        # Back to the server's (null).
        assert api(s, creds, "PATCH", f"/v1/trunks/{trunk['id']}", {"codecs": None})["codecs"] is None
        assert offer_pcmu_pcma(s, tmp_path, "127.0.0.105") == (200, "PCMU")
    finally:
        s.stop()


def test_a_dial_out_through_a_trunk_offers_its_codecs_only(data_dir):
    provider = ("127.0.0.107", 5090)
    s = echo_server(data_dir)
    ua = RawUa("127.0.0.107", "provider", sip_addr(s, "udp"), provider, f"sip:provider@{provider[0]}:{provider[1]}")
    try:
        creds = create_app(s)[:2]
        trunk = api(s, creds, "POST", "/v1/trunks", {"name": "Carrier", "codecs": ["PCMA"], "outbound": {
            "host": provider[0], "port": provider[1]}})
        api(s, creds, "POST", "/v1/calls", {"to": "+4930555", "route": {"trunk_id": trunk["id"]},
                                            "room": {"name": "desk"}})
        _, _, body, invite = ua.receive("INVITE ")
        formats = re.search(r"^m=audio \d+ RTP/AVP ([0-9 ]+)\r?$", body, re.M).group(1).split()
        assert formats[0] == "8" and not {"0", "9", "18"} & set(formats), body
        assert "opus" not in body.lower(), body
        ua.answer(invite, "486 Busy Here")
        ua.receive("ACK ")
    finally:
        ua.close()
        s.stop()


def test_a_sip_accounts_codecs_are_what_its_devices_calls_use(data_dir, tmp_path):
    from test_media_srtp_policy import register
    s = echo_server(data_dir)
    try:
        creds = create_app(s)[:2]
        account = api(s, creds, "POST", "/v1/sip-accounts", {"username": "gsm1", "password": "gsm1-pass-1",
                                                            "codecs": ["PCMA"]})
        assert account["codecs"] == ["PCMA"], account
        register(s, tmp_path, "127.0.0.108", "gsm1", "gsm1-pass-1")
        assert offer_pcmu_pcma(s, tmp_path, "127.0.0.108") == (200, "PCMA")
        cleared = api(s, creds, "PATCH", f"/v1/sip-accounts/{account['id']}", {"codecs": None})
        assert cleared["codecs"] is None, cleared
        assert offer_pcmu_pcma(s, tmp_path, "127.0.0.108") == (200, "PCMU")
    finally:
        s.stop()


def test_g729_is_listed_only_by_a_build_that_has_it(data_dir, tmp_path):
    """The default build refuses G729 in a trunk's codecs with 422; the `g729` build
    (scripts/test makes it, as for test_media_sbc.py) takes it."""
    from test_media_sbc import G729_BINARY
    body = {"name": "G.729 carrier", "codecs": ["G729", "PCMU"]}
    s = Server(data_dir).start()
    try:
        r = requests.post(s.url("/v1/trunks"), headers=auth_header(*create_app(s)[:2]), json=body, timeout=5)
        assert r.status_code == 422 and "g729" in r.text, r.text
    finally:
        s.stop()
    if not os.access(G729_BINARY, os.X_OK):
        pytest.fail(f"no G.729 build at {G729_BINARY}: scripts/test makes it")
    g729 = Server(tmp_path / "g729-data")
    g729.start_command = [G729_BINARY, "serve"]
    g729.start()
    try:
        trunk = api(g729, create_app(g729)[:2], "POST", "/v1/trunks", body)
        assert trunk["codecs"] == ["G729", "PCMU"], trunk
    finally:
        g729.stop()
