"""SIPx with Kamailio: registering out to it as a provider, and behind it as a dispatcher target."""

import requests

from conftest import Kamailio, auth_header, create_app, run_sipp, sip_addr
from test_sip_registrar import account, registrations, users_csv


def test_sipx_registers_to_a_provider_and_refreshes(server, tmp_path):
    kam = Kamailio("registrar.cfg", ("127.0.0.41", 5060), tmp_path / "kam", MAXEXP=10)
    try:
        creds = create_app(server)[:2]
        r = requests.post(server.url("/v1/trunks"), headers=auth_header(*creds), timeout=5, json={
            "name": "provider",
            "outbound": {"host": "127.0.0.41", "port": 5060, "username": "trunkuser",
                         "password": "trunkpw-123", "register": True, "register_expires": 300}})
        assert r.status_code == 201, r.text
        trunk_id = r.json()["id"]
        # Registered (after the digest challenge), then refreshed: the provider grants 10 s,
        # SIPx renews at half of that.
        seen = []

        def registered(e):
            if e.get("message") == "trunk registered" and e.get("trunk_id") == trunk_id and e not in seen:
                seen.append(e)
            return len(seen) >= 2

        server.wait_log(registered, 20)
        dump = kam.rpc("ul.dump")
        assert "trunkuser" in dump, dump
        log = kam.log_text()
        assert log.count("REGISTERED trunkuser") >= 2, log[-3000:]
        t = requests.get(server.url(f"/v1/trunks/{trunk_id}"), headers=auth_header(*creds), timeout=5).json()
        assert t["registration"]["state"] == "registered", t
        assert t["registration"]["last_status"] == 200
    finally:
        kam.stop()


def test_wrong_trunk_password_fails_once_without_looping(server, tmp_path):
    kam = Kamailio("registrar.cfg", ("127.0.0.44", 5060), tmp_path / "kam")
    try:
        creds = create_app(server)[:2]
        r = requests.post(server.url("/v1/trunks"), headers=auth_header(*creds), timeout=5, json={
            "name": "provider", "outbound": {"host": "127.0.0.44", "username": "trunkuser",
                                             "password": "wrong-pw", "register": True}})
        trunk_id = r.json()["id"]
        server.wait_log(lambda e: e.get("message") == "trunk registration failed" and e.get("trunk_id") == trunk_id, 10)
        t = requests.get(server.url(f"/v1/trunks/{trunk_id}"), headers=auth_header(*creds), timeout=5).json()
        assert t["registration"]["state"] == "failed" and t["registration"]["last_status"] == 401, t
        # One unauthenticated REGISTER and one answer to the challenge: no loop on a bad password.
        assert kam.log_text().count("REQ REGISTER") == 2
    finally:
        kam.stop()


def test_kamailio_in_front_dispatches_options_and_register_to_sipx(server, tmp_path):
    host, port = sip_addr(server, "udp")
    ds = tmp_path / "ds.list"
    ds.write_text(f"1 sip:{host}:{port}\n")
    kam = Kamailio("front.cfg", ("127.0.0.42", 5060), tmp_path / "kam", DSLIST=f'"{ds}"')
    try:
        p = run_sipp("options.xml", ("127.0.0.42", 5060), "127.0.0.43")
        assert p.returncode == 0, p.stdout[-2000:]
        creds = create_app(server)[:2]
        account(server, creds, "behindkam", "behindpw123")
        p = run_sipp("register_auth.xml", ("127.0.0.42", 5060), "127.0.0.43",
                     "-inf", users_csv(tmp_path, "behindkam", "behindpw123"), "-set", "expires", "300")
        assert p.returncode == 0, p.stdout[-2000:]
        regs = registrations(server, creds)
        # SIPx saw the REGISTER come from Kamailio, and answers go back through it.
        assert [(r["username"], r["source"].split(":")[0]) for r in regs] == [("behindkam", "127.0.0.42")]
        assert "dispatching REGISTER" in kam.log_text()
    finally:
        kam.stop()
