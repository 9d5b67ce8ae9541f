"""Process lifecycle: restarts, crashes, signals, startup errors, HTTPS, configuration."""

import collections
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import tomllib
import urllib.parse

import requests

from conftest import ADMIN_KEY, ADMIN_SECRET, Server, auth_header, create_app, run_cli, sip_addr


def test_restart_keeps_applications_keys_and_objects(data_dir):
    created = run_cli(data_dir, "apps", "create", "--name", "from-cli").stdout
    key = created.split("api_key:")[1].split()[0]
    secret = created.split("api_secret:")[1].split()[0]
    s = Server(data_dir).start()
    r = requests.post(s.url("/v1/sip-accounts"), headers=auth_header(key, secret),
                      json={"username": "kept", "password": "password-123"}, timeout=5)
    assert r.status_code == 201
    assert s.stop() == 0
    s = Server(data_dir).start()
    try:
        r = requests.get(s.url("/v1/sip-accounts"), headers=auth_header(key, secret), timeout=5)
        assert r.status_code == 200
        assert [a["username"] for a in r.json()["items"]] == ["kept"]
    finally:
        s.stop()


def list_all(server, creds):
    ids, cursor = set(), None
    for _ in range(1000):
        params = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = requests.get(server.url("/v1/sip-accounts"), params=params, headers=auth_header(*creds),
                            timeout=10).json()
        ids.update(a["id"] for a in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return ids
    raise AssertionError("pagination did not end")


def test_kill_9_during_a_burst_loses_no_acknowledged_write(data_dir):
    s = Server(data_dir).start()
    key, secret, _ = create_app(s)
    acknowledged, lock = [], threading.Lock()
    enough = threading.Event()

    def writer(n):
        session = requests.Session()
        for i in range(100_000):
            try:
                r = session.post(s.url("/v1/sip-accounts"), headers=auth_header(key, secret),
                                 json={"username": f"w{n}-{i}", "password": "password-123"}, timeout=5)
            except requests.RequestException:
                return  # the server is gone
            if r.status_code == 201:
                with lock:
                    acknowledged.append(r.json()["id"])
                    if len(acknowledged) >= 150:
                        enough.set()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    assert enough.wait(120), "the burst did not get going"
    s.kill9()  # mid-burst: writers are still sending
    for t in threads:
        t.join(30)
    with lock:
        acked = set(acknowledged)
    s = Server(data_dir).start()
    try:
        stored = list_all(s, (key, secret))
        assert acked <= stored, f"{len(acked - stored)} acknowledged writes lost"
        assert len(acked) >= 150
    finally:
        s.stop()


def test_sigterm_drains_and_sigint_stops_at_once(data_dir):
    s = Server(data_dir).start()
    assert s.stop(signal.SIGTERM) == 0
    messages = [e.get("message") for e in s.events()]
    assert any("draining" in (m or "") for m in messages) and "drained" in messages
    s = Server(data_dir).start()
    assert s.stop(signal.SIGINT, timeout=5) == 0
    assert any("stopping now" in (e.get("message") or "") for e in s.events())


def startup_failure(data_dir, *args, env=None):
    p = run_cli(data_dir, "serve", *args, env=env, check=False)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert p.returncode != 0, p.stderr
    assert len(lines) == 1, p.stderr
    assert "panicked" not in p.stderr
    return lines[0]


def test_startup_errors_are_one_clear_line(data_dir, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        line = startup_failure(data_dir, "--listen", f"127.0.0.1:{port}")
        assert "cannot listen on" in line and str(port) in line
    finally:
        busy.close()
    assert "cannot read" in startup_failure(data_dir, "--config", str(tmp_path / "missing.toml"))
    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nlisten = 'not an address'\n")
    assert "listen" in startup_failure(data_dir, "--config", str(bad))
    env = {"SIPX_HTTP__TLS__CERT": str(tmp_path / "no-cert.pem"), "SIPX_HTTP__TLS__KEY": str(tmp_path / "no-key.pem")}
    assert "TLS" in startup_failure(data_dir, env=env)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    env = {"SIPX_HTTP__TLS__CERT": str(junk), "SIPX_HTTP__TLS__KEY": str(junk)}
    assert "TLS" in startup_failure(data_dir, env=env)
    assert "master key" in startup_failure(data_dir, env={"SIPX_MASTER_KEY": "too-short"})
    # Media addresses SDP could not name usefully stop the start too (before SIP binds).
    assert "media.second_ip" in startup_failure(data_dir, env={"SIPX_MEDIA__SECOND_IP": "127.0.0.2"})
    assert "media.external_ip" in startup_failure(data_dir, env={"SIPX_MEDIA__IP": "0.0.0.0"})
    # A port in sip.external_host would be written after SIPx's own in every Via and Contact.
    assert "sip.external_host" in startup_failure(data_dir, env={"SIPX_SIP__EXTERNAL_HOST": "198.51.100.5:5060"})
    assert "sip.dns_servers" in startup_failure(data_dir, env={"SIPX_SIP__DNS_SERVERS": '["ns1.example.net"]'})


def test_a_different_master_key_is_refused_at_start(data_dir):
    run_cli(data_dir, "apps", "create", "--name", "x")
    line = startup_failure(data_dir, env={"SIPX_MASTER_KEY": "A" * 43 + "="})
    assert "master key" in line


def test_dev_tls_serves_https_with_the_printed_fingerprint(data_dir):
    s = Server(data_dir, "--dev-tls").start()
    try:
        assert s.base.startswith("https://")
        event = s.wait_log(lambda e: "fingerprint" in e, 5)
        cert = data_dir / "dev-tls" / "cert.pem"
        r = requests.get(s.url("/healthz"), verify=str(cert), timeout=5)
        assert r.status_code == 200
        der = ssl.PEM_cert_to_DER_cert(cert.read_text())
        want = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
        assert event["fingerprint"] == want
        # Plain HTTP to the TLS port does not get an API answer.
        try:
            plain = requests.get(s.url("/healthz").replace("https://", "http://"), timeout=5)
            assert plain.status_code != 200
        except requests.RequestException:
            pass
    finally:
        s.stop()


def _self_signed(directory, name):
    """A fresh self-signed P-256 pair for 127.0.0.1 under `directory`, as (cert, key) paths."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def _presented(host, port):
    """The DER certificate a TLS listener presents to a new connection."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=5) as raw, ctx.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True)


def _der(path):
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_a_renewed_certificate_is_served_without_a_restart(data_dir, tmp_path):
    """HTTPS and SIP over TLS share the operator's certificate files. Renewed in place (new
    files renamed over the old, as ACME clients do), the next handshake of either listener
    presents the new certificate, while the process and its connections stay up; a certificate
    written before its key (a pair that does not match) is logged and the previous one is
    served until the key follows."""
    live = tmp_path / "live"
    live.mkdir()
    old_cert, old_key = _self_signed(tmp_path, "old")
    new_cert, new_key = _self_signed(tmp_path, "new")
    cert, key = live / "cert.pem", live / "key.pem"
    shutil.copy(old_cert, cert)
    shutil.copy(old_key, key)
    s = Server(data_dir, env={"SIPX_HTTP__TLS__CERT": str(cert), "SIPX_HTTP__TLS__KEY": str(key),
                              "SIPX_SIP__TLS": '["127.0.0.1:0"]'}).start()
    try:
        https = urllib.parse.urlsplit(s.base)
        listeners = {"https": (https.hostname, https.port), "sip-tls": sip_addr(s, "tls")}
        for name, addr in listeners.items():
            assert _presented(*addr) == _der(old_cert), name
        kept = socket.create_connection(listeners["sip-tls"], timeout=5)
        kept_tls = ssl._create_unverified_context().wrap_socket(kept)

        def renew(source, target):
            staged = target.with_suffix(".staged")
            shutil.copy(source, staged)
            os.replace(staged, target)

        renew(new_cert, cert)
        for name, addr in listeners.items():
            assert _presented(*addr) == _der(old_cert), f"{name}: the new certificate without its key"
        s.wait_log(lambda e: "do not form a usable pair" in e.get("message", ""), 5)
        renew(new_key, key)
        for name, addr in listeners.items():
            assert _presented(*addr) == _der(new_cert), name
        assert any(e.get("message") == "TLS certificate reloaded" for e in s.events())
        # A connection made before the renewal is still served, by the same process.
        kept_tls.sendall(b"\r\n\r\n")
        assert kept_tls.recv(16) == b"\r\n"
        kept_tls.close()
        assert s.proc.poll() is None
        assert requests.get(s.url("/healthz"), verify=str(new_cert), timeout=5).status_code == 200
    finally:
        s.stop()


def test_config_layers_and_redaction(data_dir, tmp_path):
    cfg = tmp_path / "sipx.toml"
    cfg.write_text('[http]\nlisten = "127.0.0.1:9999"\nbody_limit = 4096\n[admin]\napi_key = "file-key"\n')
    env = {"SIPX_HTTP__LISTEN": "127.0.0.1:9998", "SIPX_ADMIN__API_SECRET": "very-secret-value",
           "SIPX_MASTER_KEY": "B" * 43 + "="}
    out = run_cli(data_dir, "--config", str(cfg), "config", env=env).stdout
    assert "very-secret-value" not in out and "BBBB" not in out
    parsed = tomllib.loads(out)
    assert parsed["http"]["listen"] == "127.0.0.1:9998"  # env beats file
    assert parsed["http"]["body_limit"] == 4096          # file beats default
    assert parsed["admin"] == {"api_key": "file-key", "api_secret": "<redacted>"}
    assert parsed["master_key"] == "<redacted>"
    assert parsed["data_dir"] == str(data_dir)           # flag


def test_apps_cli_disable_enable_rotate(data_dir):
    out = run_cli(data_dir, "apps", "create", "--name", "cli").stdout
    key = out.split("api_key:")[1].split()[0]
    secret = out.split("api_secret:")[1].split()[0]
    listing = run_cli(data_dir, "apps", "list").stdout
    assert key in listing and "enabled" in listing and secret not in listing
    s = Server(data_dir).start()
    try:
        assert requests.get(s.url("/v1/app"), headers=auth_header(key, secret), timeout=5).status_code == 200
        run_cli(data_dir, "apps", "disable", key)
        r = requests.get(s.url("/v1/app"), headers=auth_header(key, secret), timeout=5)
        assert r.status_code == 403 and r.json()["type"] == "urn:sipx:problem:forbidden"
        run_cli(data_dir, "apps", "enable", "cli")
        out = run_cli(data_dir, "apps", "rotate-secret", key).stdout
        new_secret = out.split("api_secret:")[1].split()[0]
        assert requests.get(s.url("/v1/app"), headers=auth_header(key, secret), timeout=5).status_code == 401
        assert requests.get(s.url("/v1/app"), headers=auth_header(key, new_secret), timeout=5).status_code == 200
        assert run_cli(data_dir, "apps", "disable", "nobody", check=False).returncode != 0
    finally:
        s.stop()


def test_operator_api_refuses_application_credentials(server):
    key, secret, _ = create_app(server)
    r = requests.get(server.url("/v1/apps"), headers=auth_header(key, secret), timeout=5)
    assert r.status_code == 401
    r = requests.get(server.url("/v1/apps"), headers=auth_header(ADMIN_KEY, ADMIN_SECRET), timeout=5)
    assert r.status_code == 200 and len(r.json()["items"]) == 1


def drain_env(seconds):
    from conftest import SIP_ENV
    return {**SIP_ENV, "SIPX_SHUTDOWN__DRAIN_TIMEOUT_SECS": str(seconds)}


def phone_in_a_room(server, phone_ip, room):
    """An application whose trunk lets a raw phone on `phone_ip` call 300 into `room`; the
    phone's answered call as (phone, creds, dialog, answer, call row)."""
    from conftest import sip_addr
    from test_calls_inbound import wait_call
    from test_calls_phone_transfer import trunk_with_way_back
    from test_calls_replaces import Phone

    creds, _ = trunk_with_way_back(server, phone_ip, "127.0.0.222", room)
    phone = Phone(phone_ip, sip_addr(server))
    status, dialog, answer = phone.invite("300")
    assert status == 200, answer
    call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                     "the phone's call confirmed")
    return phone, creds, dialog, answer, call


def stored_call(data_dir, creds, call_id, env):
    """The call's row as a fresh start of SIPx on the same data reads it."""
    s = Server(data_dir, env=env).start()
    try:
        r = requests.get(s.url(f"/v1/calls/{call_id}"), headers=auth_header(*creds[:2]), timeout=10)
        assert r.status_code == 200, r.text
        return r.json()
    finally:
        s.stop()


def test_a_drain_lets_calls_finish_and_turns_new_ones_away(data_dir):
    """SIGTERM: the call that is up goes on (the phone hangs up when it likes), a new INVITE
    gets 503 with a Retry-After of the drain's length (so does an OPTIONS probe), and the process exits once the call is over, its end stored as
    the phone's hang-up. Addresses 127.0.0.221-222."""
    from conftest import sip_addr, sip_transaction
    from test_calls_phone_transfer import hang_up
    from test_calls_replaces import Phone

    env = drain_env(60)
    s = Server(data_dir, env=env).start()
    phone = late = None
    try:
        phone, creds, dialog, answer, call = phone_in_a_room(s, "127.0.0.221", "drained")
        s.proc.send_signal(signal.SIGTERM)
        s.wait_log(lambda e: "draining" in (e.get("message") or ""))
        # A second call from the same trunk.
        late = Phone("127.0.0.221", sip_addr(s))
        status, _, refusal = late.invite("300")
        assert status == 503, refusal
        # RFC 3261 §21.5.4: not this instance for the drain's length.
        assert "\r\nRetry-After: 60\r\n" in refusal, refusal
        # A proxy's OPTIONS probe hears the same.
        assert sip_transaction(sip_addr(s), "127.0.0.222", "OPTIONS") == 503
        # Still draining: the call holds the process.
        assert s.proc.poll() is None
        hang_up(phone, dialog, answer, cseq=2)
        assert s.proc.wait(20) == 0
        assert "drained" in [e.get("message") for e in s.events()]
    finally:
        for p in (phone, late):
            if p:
                p.close()
        s.stop(signal.SIGKILL)
    row = stored_call(data_dir, creds, call["id"], env)
    assert row["done"] and row["end"]["cause"] == "remote_hangup", row


def test_calls_still_up_at_the_end_of_a_drain_are_hung_up_and_stored(data_dir):
    """A drain that times out, and SIGINT: the phone gets a BYE saying why, and the call's end
    is stored (not left live for the next start to end as `SIPx restarted`)."""
    from test_calls_replaces import header

    for sig, room in ((signal.SIGTERM, "timed-out"), (signal.SIGINT, "interrupted")):
        env, data = drain_env(1), data_dir / room
        s = Server(data, env=env).start()
        phone = None
        try:
            phone, creds, dialog, _, call = phone_in_a_room(s, "127.0.0.221", room)
            s.proc.send_signal(sig)
            bye = phone.wait_bye(dialog[0])
            assert "Service shutting down" in (header(bye, "Reason") or ""), bye
            assert s.proc.wait(20) == 0
        finally:
            if phone:
                phone.close()
            s.stop(signal.SIGKILL)
        row = stored_call(data, creds, call["id"], env)
        assert row["done"] and row["end"]["cause"] == "local_hangup", row
        assert row["end"]["reason"] == "Service shutting down", row


def test_dial_outs_up_at_a_stop_end_with_a_bye_or_a_cancel_saying_why(data_dir, tmp_path):
    """SIGINT with two dial-outs up: the answered one gets a BYE saying "Service shutting down",
    the ringing one a CANCEL, whose 487 SIPx waits for and acknowledges; both rows are stored
    with that reason. Addresses 127.0.0.224-225."""
    from test_calls_dialout import api, sipp_uas, wait_state

    env = drain_env(30)
    s = Server(data_dir, env=env).start()
    try:
        creds = create_app(s)
        with sipp_uas(tmp_path, "127.0.0.224", "uas_answer.xml") as answering, \
                sipp_uas(tmp_path, "127.0.0.225", "uas_ring_until_cancel.xml") as ringing:
            up = api(s, creds[:2], "POST", "/v1/calls", {
                "to": "sip:+4930111@127.0.0.224:5060", "room": {"name": "up"}}, expect=201).json()
            rings = api(s, creds[:2], "POST", "/v1/calls", {
                "to": "sip:+4930222@127.0.0.225:5060", "room": {"name": "rings"}}, expect=201).json()
            wait_state(s, creds[:2], up["id"], "CONFIRMED", timeout=15)
            wait_state(s, creds[:2], rings["id"], "EARLY", timeout=15)
            s.proc.send_signal(signal.SIGINT)
            assert s.proc.wait(20) == 0
            # Both scenarios end well only if SIPx sent the BYE, and the CANCEL and the 487's ACK.
            assert answering.wait(10) == 0 and ringing.wait(10) == 0
        log = (tmp_path / "sipp-127.0.0.224-messages.log").read_text()
        assert re.search(r'^Reason: SIP;cause=200;text="Service shutting down"', log, re.M), log[-2000:]
    finally:
        s.stop(signal.SIGKILL)
    for call, code in ((up, 200), (rings, 487)):
        row = stored_call(data_dir, creds, call["id"], env)
        end = {k: row["end"][k] for k in ("code", "reason", "cause")}
        assert end == {"code": code, "reason": "Service shutting down", "cause": "local_hangup"}, row


def test_another_signal_during_a_drain_stops_at_once(data_dir):
    """A 60 s drain with a call up, then SIGINT: the call is hung up and the process exits at
    once."""
    from test_calls_replaces import header

    env = drain_env(60)
    s = Server(data_dir, env=env).start()
    phone = None
    try:
        phone, creds, dialog, _, call = phone_in_a_room(s, "127.0.0.221", "twice")
        s.proc.send_signal(signal.SIGTERM)
        s.wait_log(lambda e: "draining" in (e.get("message") or ""))
        s.proc.send_signal(signal.SIGINT)
        bye = phone.wait_bye(dialog[0])
        assert "Service shutting down" in (header(bye, "Reason") or ""), bye
        assert s.proc.wait(10) == 0
        assert any("another signal" in (e.get("message") or "") for e in s.events())
    finally:
        if phone:
            phone.close()
        s.stop(signal.SIGKILL)


def test_a_call_over_tcp_gets_its_bye_before_the_process_exits(data_dir):
    """The BYE of a call hung up on the way out goes down the phone's TCP connection before it
    closes (the connections stop after the core). Address 127.0.0.226."""
    from conftest import sip_addr
    from test_calls_inbound import wait_call
    from test_calls_phone_transfer import trunk_with_way_back
    from test_calls_replaces import header, sdp

    env = drain_env(30)
    s = Server(data_dir, env=env).start()
    ip = "127.0.0.226"
    conn = socket.create_connection(sip_addr(s, "tcp"), timeout=10, source_address=(ip, 0))
    try:
        creds, _ = trunk_with_way_back(s, ip, "127.0.0.222", "over-tcp")
        port = conn.getsockname()[1]
        host, sport = sip_addr(s, "tcp")
        body = sdp(ip, 40226)
        head = (f"SIP/2.0/TCP {ip}:{port};branch=z9hG4bK{port}x1", "a1", f"c{port}@{ip}")
        invite = (f"INVITE sip:300@{host}:{sport};transport=tcp SIP/2.0\r\nVia: {head[0]}\r\n"
                  f"Max-Forwards: 70\r\nFrom: <sip:4915100@{ip}>;tag={head[1]}\r\nTo: <sip:300@{host}>\r\n"
                  f"Call-ID: {head[2]}\r\nCSeq: 1 INVITE\r\nContact: <sip:4915100@{ip}:{port};transport=tcp>\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        conn.sendall(invite.encode())
        received = ""

        def until(pred, what):
            nonlocal received
            for _ in range(100):
                if pred(received):
                    return
                chunk = conn.recv(65535).decode(errors="replace")
                assert chunk, f"the connection closed before {what}: {received[-1500:]}"
                received += chunk
            raise AssertionError(f"no {what}: {received[-1500:]}")

        until(lambda r: "SIP/2.0 200 " in r, "the 200")
        ok = received[received.index("SIP/2.0 200 "):]
        to = header(ok, "To")
        conn.sendall((f"ACK sip:300@{host}:{sport};transport=tcp SIP/2.0\r\n"
                      f"Via: SIP/2.0/TCP {ip}:{port};branch=z9hG4bK{port}x2\r\nMax-Forwards: 70\r\n"
                      f"From: <sip:4915100@{ip}>;tag={head[1]}\r\nTo: {to}\r\nCall-ID: {head[2]}\r\n"
                      "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode())
        wait_call(s, creds, lambda c: c["sip_call_id"] == head[2] and c["state"] == "CONFIRMED",
                  "the TCP call confirmed")
        s.proc.send_signal(signal.SIGINT)
        until(lambda r: "\r\nBYE " in r or r.startswith("BYE "), "the BYE")
        bye = received[received.index("BYE "):]
        assert "Service shutting down" in (header(bye, "Reason") or ""), bye
        assert s.proc.wait(20) == 0
    finally:
        conn.close()
        s.stop(signal.SIGKILL)


def test_a_slow_connection_carrying_hundreds_of_calls_loses_no_message(data_dir):
    """One TCP connection carries 600 calls (a proxy in front of SIPx) and reads slowly: every
    answer to its burst of INVITEs, and every BYE when SIGINT hangs them all up at once, goes
    down it. None is dropped for want of queue room: over TCP nothing would send it again.
    (Before, a queue of 256 messages per connection lost all answers past the first 128 calls.)
    Addresses 127.0.0.228-229."""
    from conftest import sip_addr
    from test_calls_phone_transfer import trunk_with_way_back
    from test_calls_replaces import sdp

    calls = 600
    s = Server(data_dir, env=drain_env(30)).start()
    ip = "127.0.0.228"
    # A proxy that reads slowly, over a path of Ethernet-sized segments (loopback's 64 KiB ones
    # would let the kernel buffer megabytes): the kernel holds a few BYEs, SIPx's queue the rest.
    conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1200)
    conn.settimeout(20)
    conn.bind((ip, 0))
    conn.connect(sip_addr(s, "tcp"))
    try:
        trunk_with_way_back(s, ip, "127.0.0.229", "unused")  # lets the proxy's calls in
        port = conn.getsockname()[1]
        host, sport = sip_addr(s, "tcp")
        body = sdp(ip, 40228)

        def request(method, n, to, extra="", content=""):
            return (f"{method} sip:echo@{host}:{sport};transport=tcp SIP/2.0\r\n"
                    f"Via: SIP/2.0/TCP {ip}:{port};branch=z9hG4bK{method[0]}{n}x{port}\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:proxy@{ip}>;tag=p{n}\r\nTo: {to}\r\n"
                    f"Call-ID: many-{n}@{ip}\r\nCSeq: 1 {method}\r\n"
                    f"Contact: <sip:proxy@{ip}:{port};transport=tcp>\r\n{extra}"
                    f"Content-Length: {len(content)}\r\n\r\n{content}")

        buffered, messages = b"", []

        def until(count, start):
            """Reads whole messages (framed by their Content-Length) until `count` of them start
            with `start`."""
            nonlocal buffered
            while sum(m.startswith(start) for m in messages) < count:
                try:
                    chunk = conn.recv(1 << 20)
                except TimeoutError:
                    chunk = b""
                if not chunk:
                    seen = collections.Counter(m.split(" ", 2)[0 if m[0] != "S" else 1] for m in messages)
                    raise AssertionError(f"not {count} {start!r} before a silence or the close: {dict(seen)}")
                buffered += chunk
                while b"\r\n\r\n" in buffered:
                    head, rest = buffered.split(b"\r\n\r\n", 1)
                    length = int(re.search(rb"(?im)^Content-Length:\s*(\d+)", head).group(1))
                    if len(rest) < length:
                        break
                    messages.append((head + b"\r\n\r\n" + rest[:length]).decode())
                    buffered = rest[length:]

        for n in range(calls):
            conn.sendall(request("INVITE", n, f"<sip:echo@{host}>", "Content-Type: application/sdp\r\n",
                                 body).encode())
        until(calls, "SIP/2.0 200 ")
        to_of = {}
        for ok in (m for m in messages if m.startswith("SIP/2.0 200 ")):
            cid = re.search(r"^Call-ID: many-(\d+)@", ok, re.M).group(1)
            to_of[int(cid)] = re.search(r"^To: (.*?)\r?$", ok, re.M).group(1)
        assert len(to_of) == calls, sorted(set(range(calls)) - set(to_of))[:10]
        conn.sendall("".join(request("ACK", n, to_of[n]) for n in range(calls)).encode())
        messages.clear()
        s.proc.send_signal(signal.SIGINT)
        s.wait_log(lambda e: "calls still up are hung up" in (e.get("message") or ""))
        until(calls, "BYE sip:")
        byes = {re.search(r"^Call-ID: many-(\d+)@", m, re.M).group(1) for m in messages if m.startswith("BYE ")}
        assert len(byes) == calls, sorted(set(map(str, range(calls))) - byes)[:10]
        assert s.proc.wait(20) == 0
    finally:
        conn.close()
        s.stop(signal.SIGKILL)


def test_the_events_of_calls_hung_up_at_a_stop_reach_the_webhook(data_dir):
    """SIGINT with a call up: the call's DISCONNECTED event is stored before the process exits,
    so the application's webhook gets it (at once, or from the next start)."""
    from test_calls_inbound import api
    from test_webhooks import Receiver

    env = drain_env(30)
    s = Server(data_dir, env=env).start()
    phone = receiver = None
    try:
        phone, creds, dialog, _, call = phone_in_a_room(s, "127.0.0.221", "heard")
        receiver = Receiver(creds[1])
        api(s, creds, "PATCH", "/v1/app", {"webhook_url": receiver.url}, expect=200)
        s.proc.send_signal(signal.SIGINT)
        phone.wait_bye(dialog[0])
        assert s.proc.wait(20) == 0
        s = Server(data_dir, env=env).start()
        for _ in range(50):
            got = receiver.next(timeout=15)
            event = json.loads(got["body"])
            data = event.get("data", {})
            if data.get("call_id") == call["id"] and data.get("state") == "DISCONNECTED":
                assert got["valid"] and data["reason"] == "Service shutting down", event
                break
        else:
            raise AssertionError("no DISCONNECTED event for the call")
    finally:
        for p in (phone, receiver):
            if p:
                p.close()
        s.stop(signal.SIGKILL)
