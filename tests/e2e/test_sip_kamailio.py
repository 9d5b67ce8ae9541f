"""SIPx with Kamailio: registering out to it as a provider, and behind it as a dispatcher target."""

import subprocess

import requests

from conftest import Kamailio, Server, auth_header, create_app, run_sipp, sip_addr
from test_calls_dialout import wait_state
from test_sip_registrar import account, registrations, users_csv


def trunk_logged(server, trunk_id, message, count):
    """Waits for the count-th log line `message` about trunk `trunk_id`."""
    seen = []

    def match(e):
        if e.get("message") == message and e.get("trunk_id") == trunk_id and e not in seen:
            seen.append(e)
        return len(seen) >= count

    server.wait_log(match, 30)


def get_trunk(server, creds, trunk_id):
    return requests.get(server.url(f"/v1/trunks/{trunk_id}"), headers=auth_header(*creds), timeout=5).json()


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


def test_sipx_registers_over_tcp_and_again_after_the_provider_restarts(server, tmp_path):
    addr = ("127.0.0.45", 5060)
    tcp = {"MAXEXP": 10, "LISTEN_TCP": "tcp:127.0.0.45:5060"}
    kam = Kamailio("registrar.cfg", addr, tmp_path / "kam", **tcp)
    try:
        creds = create_app(server)[:2]
        r = requests.post(server.url("/v1/trunks"), headers=auth_header(*creds), timeout=5, json={
            "name": "provider-tcp",
            "outbound": {"host": "127.0.0.45", "port": 5060, "transport": "tcp", "username": "trunkuser",
                         "password": "trunkpw-123", "register": True, "register_expires": 300}})
        assert r.status_code == 201, r.text
        trunk_id = r.json()["id"]
        trunk_logged(server, trunk_id, "trunk registered", 2)  # registered, then refreshed
        log = kam.log_text()
        assert log.count("REQ REGISTER sip:127.0.0.45:5060;transport=tcp from tcp:127.0.0.1:") >= 4, log[-3000:]
        assert "from udp:" not in log.split("REQ REGISTER", 1)[1], log[-3000:]
        assert "transport=tcp" in kam.rpc("ul.dump")
        assert get_trunk(server, creds, trunk_id)["registration"]["state"] == "registered"
    finally:
        kam.stop()
    # The provider goes away: the connection closes and the registration with it.
    trunk_logged(server, trunk_id, "trunk connection lost", 1)
    reg = get_trunk(server, creds, trunk_id)["registration"]
    assert reg["state"] == "failed" and reg["last_reason"] == "connection closed", reg
    # It comes back: SIPx reconnects and registers again after its back-off.
    kam = Kamailio("registrar.cfg", addr, tmp_path / "kam2", **tcp)
    try:
        trunk_logged(server, trunk_id, "trunk registered", 3)
        assert "trunkuser" in kam.rpc("ul.dump")
    finally:
        kam.stop()


def ca_and_server_cert(tmp_path):
    """A private CA and a server certificate it signed for 127.0.0.1, as a provider's PKI."""
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    cert, key, csr = tmp_path / "server.pem", tmp_path / "server-key.pem", tmp_path / "server.csr"
    ext = tmp_path / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(ca_key),
            "-out", str(ca), "-days", "1", "-subj", "/CN=Provider Test CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
            "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(cert), "-days", "1", "-extfile", str(ext))
    return ca, cert, key


def test_sipx_registers_to_another_sipx_over_verified_tls(tmp_path):
    """Two SIPx: the provider listens on TLS with a certificate for 127.0.0.1 from a private CA;
    the customer trusts that CA through sip.tls_ca_file. Without it the handshake must fail."""
    ca, cert, key = ca_and_server_cert(tmp_path)
    provider = Server(tmp_path / "provider", env={
        "SIPX_SIP__TLS": '["127.0.0.1:0"]', "SIPX_SIP__TLS_CERT": str(cert), "SIPX_SIP__TLS_KEY": str(key)}).start()
    customer = Server(tmp_path / "customer", env={"SIPX_SIP__TLS_CA_FILE": str(ca)}).start()
    untrusting = Server(tmp_path / "untrusting").start()
    try:
        pcreds = create_app(provider)[:2]
        account(provider, pcreds, "customer1", "customer-pw-1")
        host, port = sip_addr(provider, "tls")
        trunk = {"name": "provider-tls", "outbound": {
            "host": host, "port": port, "transport": "tls", "username": "customer1",
            "password": "customer-pw-1", "register": True}}
        results = {}
        for name, s in (("customer", customer), ("untrusting", untrusting)):
            creds = create_app(s)[:2]
            r = requests.post(s.url("/v1/trunks"), headers=auth_header(*creds), timeout=5, json=trunk)
            assert r.status_code == 201, r.text
            results[name] = (s, creds, r.json()["id"])
        s, creds, trunk_id = results["customer"]
        trunk_logged(s, trunk_id, "trunk registered", 1)
        regs = [r for r in registrations(provider, pcreds) if r["username"] == "customer1"]
        assert len(regs) == 1 and regs[0]["transport"] == "TLS", regs
        assert "transport=tls" in regs[0]["contact"], regs
        s, creds, trunk_id = results["untrusting"]
        trunk_logged(s, trunk_id, "trunk connection lost", 1)
        reg = get_trunk(s, creds, trunk_id)["registration"]
        assert reg["state"] == "failed" and "certificate" in reg["last_reason"], reg
    finally:
        for s in (provider, customer, untrusting):
            s.stop()


def test_a_tls_trunk_that_does_not_register_connects_verified_for_its_calls(tmp_path):
    """A trunk over TLS without registration (a provider that knows SIPx by its address): the
    first call opens the connection, verifying the provider's certificate against the trunk's
    host through sip.tls_ca_file, and is answered over it. A SIPx that does not trust the
    provider's CA fails the call at once, with no INVITE sent in the clear or otherwise."""
    ca, cert, key = ca_and_server_cert(tmp_path)
    provider = Server(tmp_path / "provider", env={
        "SIPX_SIP__TLS": '["127.0.0.1:0"]', "SIPX_SIP__TLS_CERT": str(cert), "SIPX_SIP__TLS_KEY": str(key),
        "SIPX_MEDIA__ECHO_EXTENSION": "+4930999"}).start()
    customer = Server(tmp_path / "customer", env={"SIPX_SIP__TLS_CA_FILE": str(ca)}).start()
    untrusting = Server(tmp_path / "untrusting").start()
    try:
        pcreds = create_app(provider)[:2]
        r = requests.post(provider.url("/v1/trunks"), headers=auth_header(*pcreds), timeout=5,
                          json={"name": "customers", "inbound": {"allowed_cidrs": ["127.0.0.1/32"]}})
        assert r.status_code == 201, r.text
        host, port = sip_addr(provider, "tls")
        ends = {}
        for name, s in (("customer", customer), ("untrusting", untrusting)):
            creds = create_app(s)[:2]
            r = requests.post(s.url("/v1/trunks"), headers=auth_header(*creds), timeout=5, json={
                "name": "provider-tls", "outbound": {"host": host, "port": port, "transport": "tls"}})
            assert r.status_code == 201, r.text
            trunk_id = r.json()["id"]
            r = requests.post(s.url("/v1/calls"), headers=auth_header(*creds), timeout=5, json={
                "to": "+4930999", "room": {"name": "tls"}, "route": {"trunk_id": trunk_id}})
            assert r.status_code == 201, r.text
            call = r.json()["id"]
            if name == "customer":
                answered = wait_state(s, creds, call, "CONFIRMED", timeout=15)
                assert answered["route"] == f"trunk:{trunk_id}", answered
                r = requests.delete(s.url(f"/v1/calls/{call}"), headers=auth_header(*creds), timeout=5)
                assert r.status_code == 202, r.text
            ends[name] = wait_state(s, creds, call, "DISCONNECTED", timeout=15)["end"]
        assert ends["customer"]["cause"] == "local_hangup", ends
        assert ends["untrusting"]["cause"] == "unreachable" and ends["untrusting"]["code"] == 503, ends
        # The provider answered one call, through its trunk for the customer, over TLS: the
        # untrusting SIPx sent nothing once the handshake failed.
        answered = [e for e in provider.events() if e.get("message") == "call answered by the echo test"]
        assert len(answered) == 1 and answered[0]["origin"].startswith("trunk:"), answered
        assert ";transport=tls" in answered[0]["to"], answered
    finally:
        for s in (provider, customer, untrusting):
            s.stop()
