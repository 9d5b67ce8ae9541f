"""The registrar with real SIP peers: sipp (UDP and TCP) and baresip."""

import os
import re
import subprocess
import time
import tempfile

import requests

from conftest import PEERS, Server, auth_header, create_app, run_sipp, sip_addr, sip_transaction
from media import Baresip


def account(server, creds, username, password, **extra):
    r = requests.post(server.url("/v1/sip-accounts"), headers=auth_header(*creds),
                      json={"username": username, "password": password, **extra}, timeout=5)
    assert r.status_code == 201, r.text


def registrations(server, creds):
    r = requests.get(server.url("/v1/registrations"), headers=auth_header(*creds), timeout=5)
    assert r.status_code == 200
    return r.json()["items"]


def users_csv(tmp_path, user, password):
    f = tmp_path / f"{user}-{password}.csv"
    f.write_text(f"SEQUENTIAL\n{user};sipx.test;[authentication username={user} password={password}]\n")
    return str(f)


def registration_logged(server, user, count):
    """Waits for the registrar's log line for `user` (the count-th one)."""
    seen = []

    def match(e):
        if e.get("message") == "registration" and e.get("username") == user:
            seen.append(e)
        return len(seen) >= count

    server.wait_log(lambda e: match(e) if e not in seen else False, 10)


def test_options_is_answered(server):
    for transport, flag in (("udp", "u1"), ("tcp", "t1")):
        p = run_sipp("options.xml", sip_addr(server, transport), "127.0.0.31", "-t", flag)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]


def test_register_with_digest_refresh_and_unregister(server, tmp_path):
    creds = create_app(server)[:2]
    account(server, creds, "alice", "alicepw123")
    target = sip_addr(server, "udp")
    csv = users_csv(tmp_path, "alice", "alicepw123")
    # Challenge, then success.
    p = run_sipp("register_auth.xml", target, "127.0.0.32", "-inf", csv, "-set", "expires", "300")
    assert p.returncode == 0, p.stdout[-2000:]
    regs = registrations(server, creds)
    assert [(r["username"], r["contact"]) for r in regs] == [("alice", "sip:alice@127.0.0.32:5060;transport=UDP")]
    assert 290 <= regs[0]["expires_in"] <= 300
    assert regs[0]["source"] == "127.0.0.32:5060"
    # Refresh: the same contact, a new expiry; still one binding.
    p = run_sipp("register_auth.xml", target, "127.0.0.32", "-inf", csv, "-set", "expires", "600")
    assert p.returncode == 0
    regs = registrations(server, creds)
    assert len(regs) == 1 and 590 <= regs[0]["expires_in"] <= 600
    # Un-register.
    p = run_sipp("register_auth.xml", target, "127.0.0.32", "-inf", csv, "-set", "expires", "0")
    assert p.returncode == 0
    assert registrations(server, creds) == []


def test_register_over_tcp(server, tmp_path):
    creds = create_app(server)[:2]
    account(server, creds, "tcpuser", "tcppass123")
    p = run_sipp("register_auth.xml", sip_addr(server, "tcp"), "127.0.0.33", "-t", "t1",
                 "-inf", users_csv(tmp_path, "tcpuser", "tcppass123"), "-set", "expires", "300")
    assert p.returncode == 0, p.stdout[-2000:]
    regs = registrations(server, creds)
    assert regs and regs[0]["transport"] == "TCP"


def test_wrong_password_gets_401_then_the_source_is_banned(data_dir, tmp_path):
    s = Server(data_dir, env={"SIPX_SIP__MAX_AUTH_FAILURES": "3"}).start()
    try:
        creds = create_app(s)[:2]
        account(s, creds, "carol", "carolpw123")
        target = sip_addr(s, "udp")
        bad = users_csv(tmp_path, "carol", "wrong-password")
        for _ in range(3):
            p = run_sipp("register_auth.xml", target, "127.0.0.34", "-inf", bad, "-set", "expires", "300",
                         "-trace_msg", cwd=tmp_path)
            assert p.returncode != 0
        log = "".join(f.read_text() for f in tmp_path.glob("*_messages.log"))
        # Every attempt: a challenge, then a 401 for the wrong answer.
        received_401 = re.findall(r"message received \[\d+\] bytes :\s*SIP/2.0 401 ", log)
        assert len(received_401) == 6, log[-3000:]
        s.wait_log(lambda e: "source banned" in (e.get("message") or ""), 5)
        # Banned: even the right password from that address gets no answer...
        good = users_csv(tmp_path, "carol", "carolpw123")
        p = run_sipp("register_auth.xml", target, "127.0.0.34", "-inf", good, "-set", "expires", "300")
        assert p.returncode != 0
        # ...while another address registers fine.
        p = run_sipp("register_auth.xml", target, "127.0.0.35", "-inf", good, "-set", "expires", "300")
        assert p.returncode == 0
        metrics = requests.get(s.url("/metrics"), timeout=5).text
        assert "sipx_sip_bans_total 1" in metrics
        assert "sipx_sip_auth_failures_total 3" in metrics
    finally:
        s.stop()


def test_application_key_can_register_like_the_first_sipx(server, tmp_path):
    key, secret, _ = create_app(server)
    p = run_sipp("register_auth.xml", sip_addr(server, "udp"), "127.0.0.36",
                 "-inf", users_csv(tmp_path, key, secret), "-set", "expires", "120")
    assert p.returncode == 0, p.stdout[-2000:]
    assert [r["username"] for r in registrations(server, (key, secret))] == [key]


def test_a_retransmitted_register_gets_the_same_challenge(server):
    """The 401 is sent without keeping a transaction, but a retransmission of the REGISTER (its
    answer was late or lost) gets the same bytes again: a fresh nonce and tag would reach a
    client that already answered the first challenge as an unexpected second 401 (sipp
    aborts on it). A client that answers both copies as two requests gets a 200 and then a
    fresh nonce (`stale=true`) for the second, not a failure counted towards a ban."""
    import hashlib
    import socket
    creds = create_app(server)[:2]
    account(server, creds, "zed", "zedpw12345")
    target = sip_addr(server, "udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.227", 0))
        port = s.getsockname()[1]
        register = (f"REGISTER sip:{target[0]}:{target[1]} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.227:{port};branch=z9hG4bKretrans1;rport\r\n"
                    "Max-Forwards: 70\r\nTo: <sip:zed@sipx.test>\r\nFrom: <sip:zed@sipx.test>;tag=z1\r\n"
                    "Call-ID: retrans-register@127.0.0.227\r\nCSeq: 1 REGISTER\r\n"
                    f"Contact: <sip:zed@127.0.0.227:{port}>\r\nContent-Length: 0\r\n\r\n").encode()
        s.settimeout(3)
        answers = []
        for _ in range(3):
            s.sendto(register, target)
            answers.append(s.recv(65535))
        assert answers[0].startswith(b"SIP/2.0 401 "), answers[0]
        assert answers[1] == answers[0] and answers[2] == answers[0]
        # Another REGISTER (a new branch) gets a challenge of its own.
        s.sendto(register.replace(b"z9hG4bKretrans1", b"z9hG4bKretrans2"), target)
        other = s.recv(65535)
        nonce = lambda b: re.search(rb'nonce="([^"]+)"', b).group(1).decode()  # noqa: E731
        assert other.startswith(b"SIP/2.0 401 ") and nonce(other) != nonce(answers[0])
        md5 = lambda x: hashlib.md5(x.encode()).hexdigest()  # noqa: E731
        uri = f"sip:{target[0]}:{target[1]}"
        response = md5(f"{md5('zed:sipx:zedpw12345')}:{nonce(answers[0])}:00000001:c1:auth:{md5('REGISTER:' + uri)}")
        authorization = (f'Authorization: Digest username="zed", realm="sipx", nonce="{nonce(answers[0])}", '
                         f'uri="{uri}", response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c1"\r\n')
        failures = lambda: re.search(r"^sipx_sip_auth_failures_total (\d+)",  # noqa: E731
                                     requests.get(server.url("/metrics"), timeout=5).text, re.M)
        before = failures()
        for n, want in ((2, b"SIP/2.0 200 "), (3, b"SIP/2.0 401 ")):
            s.sendto(register.replace(b"z9hG4bKretrans1", f"z9hG4bKanswer{n}".encode())
                     .replace(b"CSeq: 1 ", f"CSeq: {n} ".encode())
                     .replace(b"Content-Length", authorization.encode() + b"Content-Length"), target)
            answer = s.recv(65535)
            assert answer.startswith(want), answer
        assert b"stale=true" in answer, answer
        assert failures() is None or failures().group(1) == (before and before.group(1)), failures()


def test_registrations_and_trunks_survive_a_restart(data_dir, tmp_path):
    s = Server(data_dir).start()
    creds = create_app(s)[:2]
    account(s, creds, "dave", "davepw1234")
    p = run_sipp("register_auth.xml", sip_addr(s, "udp"), "127.0.0.37",
                 "-inf", users_csv(tmp_path, "dave", "davepw1234"), "-set", "expires", "300")
    assert p.returncode == 0
    r = requests.post(s.url("/v1/trunks"), headers=auth_header(*creds), timeout=5,
                      json={"name": "kept", "inbound": {"allowed_cidrs": ["127.0.0.38/32"]}})
    assert r.status_code == 201
    assert s.stop() == 0
    s = Server(data_dir).start()
    try:
        s.wait_log(lambda e: e.get("message") == "registrations restored" and e.get("contacts") == 1, 10)
        assert [r["username"] for r in registrations(s, creds)] == ["dave"]
        trunks = requests.get(s.url("/v1/trunks"), headers=auth_header(*creds), timeout=5).json()["items"]
        assert [t["name"] for t in trunks] == ["kept"]
        # And the SIP service applies it again: its network gets past the source gate (to the
        # routing rules, none of which matches: 404).
        s.wait_log(lambda e: e.get("message") == "trunks loaded" and e.get("inbound_networks") == 1, 10)
        assert sip_transaction(sip_addr(s, "udp"), "127.0.0.38", "INVITE") == 404
    finally:
        s.stop()


def self_signed(tmp_path):
    cert, key = tmp_path / "sip-cert.pem", tmp_path / "sip-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return cert, key


def test_baresip_registers_over_udp_tcp_and_tls(data_dir, tmp_path):
    cert, key = self_signed(tmp_path)
    s = Server(data_dir, env={"SIPX_SIP__TLS": '["127.0.0.1:0"]', "SIPX_SIP__TLS_CERT": str(cert),
                              "SIPX_SIP__TLS_KEY": str(key)}).start()
    try:
        creds = create_app(s)[:2]
        for i, transport in enumerate(("udp", "tcp", "tls")):
            user = f"bare{transport}"
            account(s, creds, user, "barepass123")
            host, port = sip_addr(s, transport)
            line = (f"<sip:{user}@127.0.0.1>;auth_pass=barepass123;"
                    f"outbound=\"sip:{host}:{port};transport={transport}\";regint=120")
            # baresip verifies the server certificate; it un-registers on its way out.
            with Baresip(tmp_path / user, "127.0.0.1", "/dev/null", sip_port=5171 + 10 * i,
                         ctrl_port=4571 + i, account=line, extra_config=f"sip_cafile\t{cert}\n"):
                registration_logged(s, user, 1)
                regs = [r for r in registrations(s, creds) if r["username"] == user]
                assert regs and regs[0]["transport"] == transport.upper(), regs
    finally:
        s.stop()


def test_linphonec_registers_over_udp(server, tmp_path):
    creds = create_app(server)[:2]
    account(server, creds, "lin", "linphone-pw1")
    host, port = sip_addr(server, "udp")
    home = tmp_path / "home"
    (home / ".local" / "share" / "linphone").mkdir(parents=True)
    rc = home / "linphonerc"  # linphonec rewrites its config file: give it a copy
    rc.write_text((PEERS / "linphone" / "linphonerc").read_text())
    env = dict(os.environ, HOME=str(home))
    sh = lambda *a: subprocess.run(["linphonecsh", *a], env=env, capture_output=True, text=True, timeout=30)  # noqa: E731
    assert sh("init", "-c", str(rc), "-d", "0").returncode == 0
    try:
        # init returns before the daemon opens its control pipe: wait until it answers.
        for _ in range(100):
            r = sh("register", "--host", f"{host}:{port}", "--username", "lin", "--password", "linphone-pw1")
            if "Failed to connect pipe" not in r.stderr:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stdout + r.stderr
        registration_logged(server, "lin", 1)
        regs = [x for x in registrations(server, creds) if x["username"] == "lin"]
        assert regs and regs[0]["transport"] == "UDP", regs
        assert regs[0]["user_agent"], regs
    finally:
        sh("exit")


def test_browser_style_phone_registers_over_websocket(data_dir):
    """RFC 7118: REGISTER with digest over a WebSocket speaking the `sip` subprotocol."""
    import asyncio
    import hashlib as h

    import websockets

    s = Server(data_dir, env={"SIPX_SIP__WS": '["127.0.0.1:0"]'}).start()
    try:
        creds = create_app(s)[:2]
        account(s, creds, "webphone", "webphone-pw1")
        host, port = sip_addr(s, "ws")

        def register(cseq, auth=""):
            return (f"REGISTER sip:{host} SIP/2.0\r\nVia: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKws{cseq}\r\n"
                    f"Max-Forwards: 70\r\nTo: <sip:webphone@{host}>\r\nFrom: <sip:webphone@{host}>;tag=ws1\r\n"
                    f"Call-ID: ws-reg-1\r\nCSeq: {cseq} REGISTER\r\n"
                    f"Contact: <sip:webphone@df7jal23ls0d.invalid;transport=ws>\r\nExpires: 300\r\n{auth}"
                    "Content-Length: 0\r\n\r\n")

        async def run():
            async with websockets.connect(f"ws://{host}:{port}", subprotocols=["sip"]) as ws:
                assert ws.subprotocol == "sip"
                await ws.send(register(1))
                challenge = await asyncio.wait_for(ws.recv(), 5)
                assert challenge.startswith("SIP/2.0 401"), challenge
                www = next(l for l in challenge.split("\r\n") if l.startswith("WWW-Authenticate:"))
                nonce = www.split('nonce="')[1].split('"')[0]
                md5 = lambda x: h.md5(x.encode()).hexdigest()  # noqa: E731
                ha1, ha2 = md5("webphone:sipx:webphone-pw1"), md5(f"REGISTER:sip:{host}")
                resp = md5(f"{ha1}:{nonce}:00000001:abc:auth:{ha2}")
                auth = (f'Authorization: Digest username="webphone", realm="sipx", nonce="{nonce}", '
                        f'uri="sip:{host}", response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"\r\n')
                await ws.send(register(2, auth))
                ok = await asyncio.wait_for(ws.recv(), 5)
                assert ok.startswith("SIP/2.0 200"), ok
                regs = [r for r in registrations(s, creds) if r["username"] == "webphone"]
                assert regs and regs[0]["transport"] == "WS", regs

        asyncio.run(run())
        # Without the `sip` subprotocol the handshake is refused.
        async def no_subprotocol():
            try:
                async with websockets.connect(f"ws://{host}:{port}"):
                    return False
            except websockets.exceptions.InvalidStatus as e:
                return e.response.status_code == 400
        assert asyncio.run(no_subprotocol())
    finally:
        s.stop()


def test_a_lapsed_registration_is_not_dialled(data_dir, tmp_path):
    """A device that stops refreshing is gone the second its Expires runs out: not listed, and
    a dial-out to its account ends `480 Not registered` at once, instead of ringing a dead
    address until the INVITE times out."""
    s = Server(data_dir, env={"SIPX_SIP__MIN_EXPIRES": "1", "SIPX_SIP__T1_MS": "50"}).start()
    try:
        creds = create_app(s)[:2]
        r = requests.post(s.url("/v1/sip-accounts"), headers=auth_header(*creds), timeout=5,
                          json={"username": "lapsing", "password": "lapsingpw1"})
        assert r.status_code == 201, r.text
        account_id = r.json()["id"]
        p = run_sipp("register_auth.xml", sip_addr(s, "udp"), "127.0.0.46",
                     "-inf", users_csv(tmp_path, "lapsing", "lapsingpw1"), "-set", "expires", "2")
        assert p.returncode == 0, p.stdout[-2000:]
        registered_at = time.monotonic()
        assert [r["username"] for r in registrations(s, creds)] == ["lapsing"]
        deadline = registered_at + 10
        while registrations(s, creds) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not registrations(s, creds)
        assert time.monotonic() - registered_at < 4, "dropped within a second or so of its Expires"
        r = requests.post(s.url("/v1/calls"), headers=auth_header(*creds), timeout=5, json={
            "to": "+4930888", "route": {"sip_account_id": account_id}, "room": {"name": "lapsed"}})
        assert r.status_code == 201, r.text
        call = r.json()
        deadline = time.monotonic() + 10
        while not call["done"] and time.monotonic() < deadline:
            time.sleep(0.1)
            call = requests.get(s.url(f"/v1/calls/{call['id']}"), headers=auth_header(*creds), timeout=5).json()
        assert call["done"] and call["end"]["code"] == 480, call
    finally:
        s.stop()
