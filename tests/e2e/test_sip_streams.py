"""SIP over a TCP connection and odd bytes, against the real binary: the answer to a good
request still goes out when the same segment ends in bytes that cannot be framed (SIPx then
closes the connection, RFC 3261 §18.3); a request whose display name is Latin-1, not UTF-8, is
answered over UDP and TCP instead of dropped. Connections that say nothing, or trickle a
message, are closed; one address holds only so many; a keep-alive split across segments is
still answered; one too large gets 513. The 200 to an INVITE over WebSocket names the
WebSocket listener in its Contact. SIPx's own connections to a provider leave from its
listener's address. An RFC 2543 caller (no From tag, no branch cookie, no Contact) gets its call
(RFC 4475 §3.4.1). Addresses 127.0.0.205-209 belong here."""

import socket
import time

import pytest
import requests

import rooms
from conftest import SIP_ENV, Server, sip_addr


def options(ip, port, transport, branch, display=b"Probe"):
    return (f"OPTIONS sip:{ip}:{port};transport={transport.lower()} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.205:5099;branch=z9hG4bK{branch};rport\r\n"
            "Max-Forwards: 70\r\n").encode() + b'From: "' + display + b'" <sip:probe@127.0.0.205>;tag=' + \
        branch.encode() + (f"\r\nTo: <sip:{ip}>\r\nCall-ID: {branch}@127.0.0.205\r\nCSeq: 1 OPTIONS\r\n"
                           "Content-Length: 0\r\n\r\n").encode()


def read_all(sock):
    """Everything the server writes until it closes the connection (bounded by the timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65535)
        except (socket.timeout, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk


def test_the_answer_before_a_framing_error_still_goes_out(server):
    ip, port = sip_addr(server, "tcp")
    with socket.create_connection((ip, port), timeout=10, source_address=("127.0.0.205", 0)) as s:
        # A good OPTIONS, then a "message" with no Content-Length: not framable on a stream.
        s.sendall(options(ip, port, "TCP", "frame1") + b"GARBAGE\r\n\r\n")
        got = read_all(s).decode(errors="replace")
    assert got.startswith("SIP/2.0 200 "), got
    assert "branch=z9hG4bKframe1" in got, got
    # What an OPTIONS answer says SIPx takes (RFC 3261 §11.2).
    for line in ("Accept: application/sdp", "Accept-Encoding: identity", "Accept-Language: en"):
        assert f"\r\n{line}" in got, (line, got)


def test_a_latin1_display_name_is_answered(server):
    latin1 = "Jos\u00e9 M\u00fcller".encode("latin-1")
    ip, port = sip_addr(server, "udp")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.206", 0))
        s.settimeout(5)
        s.sendto(options(ip, port, "UDP", "latin1u", latin1), (ip, port))
        got = s.recv(65535).decode("latin-1")
    assert got.startswith("SIP/2.0 200 "), got
    ip, port = sip_addr(server, "tcp")
    with socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.206", 0)) as s:
        s.sendall(options(ip, port, "TCP", "latin1t", latin1))
        got = s.recv(65535).decode("latin-1")
    assert got.startswith("SIP/2.0 200 "), got


@pytest.fixture
def guarded(data_dir):
    """SIPx giving a connection 2 s to say something, and one address 4 connections."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__STREAM_SETUP_TIMEOUT_SECS": "2",
                              "SIPX_SIP__MAX_CONNECTIONS_PER_SOURCE": "4"}).start()
    yield s
    s.stop()


def closed_within(sock, seconds):
    """Whether the server closes `sock` within `seconds` (reading nothing meanwhile)."""
    sock.settimeout(seconds)
    try:
        return sock.recv(65535) == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_silent_and_stalled_connections_are_closed_and_busy_ones_kept(guarded):
    ip, port = sip_addr(guarded, "tcp")
    src = ("127.0.0.207", 0)
    # Keep-alives alone do not make a connection one that carried SIP.
    with socket.create_connection((ip, port), timeout=5, source_address=src) as pinging:
        pinging.sendall(b"\r\n\r\n")
        assert pinging.recv(16) == b"\r\n"
        assert closed_within(pinging, 10)
    with socket.create_connection((ip, port), timeout=5, source_address=src) as silent, \
            socket.create_connection((ip, port), timeout=5, source_address=src) as stalled, \
            socket.create_connection((ip, port), timeout=5, source_address=src) as busy:
        started = time.monotonic()
        stalled.sendall(options(ip, port, "TCP", "stall")[:40])
        busy.sendall(options(ip, port, "TCP", "busy1"))
        assert busy.recv(65535).startswith(b"SIP/2.0 200 ")
        assert closed_within(silent, 10) and closed_within(stalled, 10)
        assert time.monotonic() - started >= 1.5
        # A connection that carried SIP may stay quiet longer than a new one may.
        time.sleep(1)
        busy.sendall(options(ip, port, "TCP", "busy2"))
        busy.settimeout(5)
        assert busy.recv(65535).startswith(b"SIP/2.0 200 ")


def test_one_address_holds_only_its_share_of_connections(guarded):
    ip, port = sip_addr(guarded, "tcp")
    held = [socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.208", 0))
            for _ in range(4)]
    try:
        for i, s in enumerate(held):
            s.sendall(options(ip, port, "TCP", f"held{i}"))
            assert s.recv(65535).startswith(b"SIP/2.0 200 ")
        with socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.208", 0)) as extra:
            assert closed_within(extra, 5)
        # Another address is served, and a place freed is taken again.
        with socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.209", 0)) as other:
            other.sendall(options(ip, port, "TCP", "other"))
            assert other.recv(65535).startswith(b"SIP/2.0 200 ")
        held.pop().close()
        for _ in range(50):
            again = socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.208", 0))
            again.sendall(options(ip, port, "TCP", "again"))
            again.settimeout(5)
            try:
                answer = again.recv(65535)
            except ConnectionResetError:
                answer = b""
            if answer.startswith(b"SIP/2.0 200 "):
                held.append(again)
                break
            again.close()  # the server has not yet seen the freed place go
            time.sleep(0.1)
        else:
            raise AssertionError("the freed place was never given again")
    finally:
        for s in held:
            s.close()


def test_a_keepalive_split_across_segments_is_answered(server):
    ip, port = sip_addr(server, "tcp")
    with socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.205", 0)) as s:
        s.sendall(b"\r\n")
        time.sleep(0.3)  # two segments, as a byte stream may cut them
        s.sendall(b"\r\n")
        assert s.recv(16) == b"\r\n"


def test_a_request_a_stream_cannot_frame_gets_400_before_the_close(server):
    """RFC 3261 §18.3: on a stream, Content-Length is mandatory. A request whose head arrived
    whole but whose length is missing or bad is answered 400, then the connection closes."""
    ip, port = sip_addr(server, "tcp")
    for branch, length in [("nolen", None), ("neglen", "-999"), ("hexlen", "0x10")]:
        message = options(ip, port, "TCP", branch).replace(b"Content-Length: 0\r\n",
                                                           b"" if length is None else f"Content-Length: {length}\r\n".encode())
        with socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.205", 0)) as s:
            s.sendall(message)
            got = read_all(s).decode(errors="replace")
        assert got.startswith("SIP/2.0 400 "), (branch, got)
        assert f"branch=z9hG4bK{branch}" in got, got


def test_a_request_over_the_size_limit_gets_513_before_the_close(server):
    """RFC 3261 §21.5.14: a request larger than SIPx takes (64 KiB) is answered 513 Message Too
    Large, then the connection closes: whether its header section ended past the limit or was
    still going on when it passed it (the complete header lines are answered)."""
    ip, port = sip_addr(server, "tcp")
    for branch, size in [("big70k", 70_000), ("big200k", 200_000)]:
        message = options(ip, port, "TCP", branch).replace(
            b"Content-Length: 0\r\n", b"Subject: " + b"a" * size + b"\r\nContent-Length: 0\r\n")
        with socket.create_connection((ip, port), timeout=5, source_address=("127.0.0.205", 0)) as s:
            try:
                s.sendall(message)
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed once the limit passed: what it wrote before is still to read
            got = read_all(s).decode(errors="replace")
        assert got.startswith("SIP/2.0 513 Message Too Large\r\n"), (branch, got[:200])
        assert f"branch=z9hG4bK{branch}" in got, got[:400]


def tcp_listener(ip):
    """A TCP socket listening on `ip` (a phone's own port), and its port."""
    listener = socket.socket()
    listener.bind((ip, 0))
    listener.listen(4)
    listener.settimeout(10)
    return listener, listener.getsockname()[1]


def sdp_offer(ip):
    return f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"


def open_connections(server):
    """SIPx's count of open stream connections (`/metrics`)."""
    text = requests.get(server.url("/metrics"), timeout=5).text
    line = next((l for l in text.splitlines() if l.startswith("sipx_sip_stream_connections ")), None)
    return float(line.split()[1]) if line else None


def test_an_answer_whose_connection_closed_goes_on_a_new_one(server):
    """RFC 3261 §18.2.2: the caller's TCP connection closes while its INVITE rings (its
    routing webhook is slow); its CANCEL comes on another connection. The 487 to the INVITE
    goes on a connection SIPx opens to the caller's address at the Via's port."""
    from conftest import create_app
    from test_calls_inbound import Receiver, webhook_routed

    ip = "127.0.0.209"
    key, secret, _ = creds = create_app(server, "reconnect")
    receiver = Receiver("127.0.0.208", secret, None)  # answers only after the test
    listener, via_port = tcp_listener(ip)
    try:
        webhook_routed(server, creds, ip, receiver.url, 5000, "late")
        host, port = sip_addr(server, "tcp")
        body = sdp_offer(ip)

        def request(method, extra=""):
            return (f"{method} sip:803@{host}:{port};transport=tcp SIP/2.0\r\n"
                    f"Via: SIP/2.0/TCP {ip}:{via_port};branch=z9hG4bKrecon1\r\nMax-Forwards: 70\r\n"
                    f"From: <sip:4915100@{ip}>;tag=recon\r\nTo: <sip:803@{host}>\r\nCall-ID: recon@{ip}\r\n"
                    f"CSeq: 1 {method}\r\nContact: <sip:4915100@{ip}:{via_port};transport=tcp>\r\n{extra}").encode()

        first = socket.create_connection((host, port), timeout=10, source_address=(ip, 0))
        first.sendall(request("INVITE", f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"))
        got = b""
        while b"SIP/2.0 180" not in got:
            chunk = first.recv(65535)
            assert chunk, got
            got += chunk
        first.close()
        # The CANCEL must come once SIPx has seen the connection close (else the 487 races
        # into the closing one): its count of open connections says so.
        rooms.wait_until(lambda: open_connections(server) == 0, what="the first connection seen closed")
        with socket.create_connection((host, port), timeout=10, source_address=(ip, 0)) as second:
            second.sendall(request("CANCEL", "Content-Length: 0\r\n\r\n"))
            assert second.recv(65535).startswith(b"SIP/2.0 200 "), "the CANCEL's 200 on its own connection"
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(10)
                answer = conn.recv(65535).decode(errors="replace")
        assert answer.startswith("SIP/2.0 487 "), answer
        assert "CSeq: 1 INVITE" in answer, answer
    finally:
        listener.close()
        receiver.close()


def test_a_hang_up_after_the_callers_connection_closed_goes_on_a_new_one(server):
    """A caller over TCP whose connection closes (its own, or one SIPx closed for silence)
    still gets the BYE: SIPx connects to its Contact (RFC 3261 §18.1.1)."""
    import re

    from test_calls_inbound import api, called, setup, wait_call

    ip = "127.0.0.206"
    creds, _ = setup(server, ip, called("300", "tcp-room"))
    listener, contact_port = tcp_listener(ip)
    try:
        host, port = sip_addr(server, "tcp")
        body = sdp_offer(ip)
        head = (f"sip:300@{host}:{port};transport=tcp SIP/2.0\r\n"
                f"Via: SIP/2.0/TCP {ip}:{contact_port};branch=z9hG4bKtcpbye{{n}}\r\nMax-Forwards: 70\r\n"
                f"From: <sip:4915100@{ip}>;tag=tcpbye\r\nCall-ID: tcpbye@{ip}\r\n"
                f"Contact: <sip:4915100@{ip}:{contact_port};transport=tcp>\r\n")
        conn = socket.create_connection((host, port), timeout=10, source_address=(ip, 0))
        conn.sendall(("INVITE " + head.format(n=1) + f"To: <sip:300@{host}>\r\nCSeq: 1 INVITE\r\n"
                      f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
        got = ""
        while not re.search(r"SIP/2.0 200 .*?\r\n\r\n", got, re.S):
            chunk = conn.recv(65535).decode(errors="replace")
            assert chunk, got
            got += chunk
        to = re.search(r"^To: (.*)$", got[got.index("SIP/2.0 200"):], re.M).group(1).strip()
        conn.sendall(("ACK " + head.format(n=2) + f"To: {to}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n").encode())
        call = wait_call(server, creds, lambda c: c["sip_call_id"] == f"tcpbye@{ip}" and c["state"] == "CONFIRMED",
                         "the call confirmed")
        conn.close()
        rooms.wait_until(lambda: open_connections(server) == 0, what="the caller's connection seen closed")
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        new, _ = listener.accept()
        with new:
            new.settimeout(10)
            bye = new.recv(65535).decode(errors="replace")
        assert bye.startswith(f"BYE sip:4915100@{ip}:{contact_port};transport=tcp "), bye
    finally:
        listener.close()


def test_an_invite_over_websocket_is_answered_with_the_websocket_listener_as_contact(data_dir):
    """RFC 7118 §5: the Contact of SIPx's 200 must reach SIPx again over WebSocket, for a proxy
    or gateway that routes the caller's BYE by it; it used to name the UDP port."""
    from websockets.sync.client import connect

    env = {**SIP_ENV, "SIPX_SIP__WS": '["127.0.0.1:0"]', "SIPX_SIP__TRUSTED_PROXIES": '["127.0.0.0/8"]'}
    s = Server(data_dir, env=env).start()
    try:
        host, port = sip_addr(s, "ws")
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.205\r\ns=-\r\nc=IN IP4 127.0.0.205\r\nt=0 0\r\n"
               "m=audio 40240 RTP/AVP 0\r\n")
        invite = (f"INVITE sip:echo@{host}:{port};transport=ws SIP/2.0\r\n"
                  "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws1;rport\r\n"
                  "Max-Forwards: 70\r\nFrom: <sip:web@127.0.0.205>;tag=ws1\r\n"
                  f"To: <sip:echo@{host}>\r\nCall-ID: ws1@127.0.0.205\r\nCSeq: 1 INVITE\r\n"
                  "Contact: <sip:web@df7jal23ls0d.invalid;transport=ws>\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        with connect(f"ws://{host}:{port}", subprotocols=["sip"], open_timeout=10) as ws:
            ws.send(invite)
            answer = ""
            while not answer.startswith("SIP/2.0 200 "):
                answer = ws.recv(timeout=10)
                answer = answer if isinstance(answer, str) else answer.decode()
            contact = next(line for line in answer.split("\r\n") if line.lower().startswith("contact:"))
            assert f"@{host}:{port};transport=ws>" in contact, contact
    finally:
        s.stop()


def test_a_connection_to_a_provider_leaves_from_the_listeners_address(data_dir):
    """SIPx listens for TCP on 127.0.0.207; its connection to a TCP trunk's provider comes from
    that address (the one its Via names, and a provider's access list admits), where it used
    to come from whichever address the routing table picked (127.0.0.1 here)."""
    from test_calls_dialout import api
    from conftest import create_app

    env = {"SIPX_SIP__UDP": '["127.0.0.207:0"]', "SIPX_SIP__TCP": '["127.0.0.207:0"]'}
    s = Server(data_dir, env=env).start()
    provider = socket.socket()
    provider.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    provider.bind(("127.0.0.209", 5072))
    provider.listen(4)
    provider.settimeout(15)
    try:
        creds = create_app(s)[:2]
        trunk = api(s, creds, "POST", "/v1/trunks", {"name": "tcp-acl", "outbound": {
            "host": "127.0.0.209", "port": 5072, "transport": "tcp"}}, expect=201).json()
        api(s, creds, "POST", "/v1/calls", {"to": "+4930999", "room": {"name": "acl"},
                                             "route": {"trunk_id": trunk["id"]}}, expect=201)
        conn, source = provider.accept()
        conn.settimeout(10)
        first = conn.recv(65535).decode(errors="replace")
        conn.close()
        assert source[0] == "127.0.0.207", source
        assert first.startswith("INVITE ") and "SIP/2.0/TCP 127.0.0.207:" in first, first[:400]
    finally:
        provider.close()
        s.stop()


def test_an_rfc_2543_caller_without_from_tag_or_contact_gets_its_call(data_dir):
    """RFC 4475 §3.4.1 (inv2543) aimed at the echo test: no From tag (null, RFC 3261 §12.1.1),
    no branch cookie, no Max-Forwards, no Content-Length and no Contact. It is answered 200,
    and its BYE, without a From tag either, ends the call. It used to get 400."""
    env = {**SIP_ENV, "SIPX_SIP__TRUSTED_PROXIES": '["127.0.0.0/8"]'}
    s = Server(data_dir, env=env).start()
    try:
        ip, port = sip_addr(s, "udp")
        sdp = ("v=0\r\no=mhandley 29739 7272939 IN IP4 127.0.0.206\r\ns=-\r\nc=IN IP4 127.0.0.206\r\n"
               "t=0 0\r\nm=audio 40250 RTP/AVP 0\r\n")
        common = ("From: <sip:+13035551111@127.0.0.206:5098;user=phone>\r\n"
                  f"To: sip:echo@{ip}\r\nCall-ID: inv2543.1717@127.0.0.206\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.206", 5098))
            u.settimeout(10)
            invite = (f"INVITE sip:echo@{ip}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.206:5098\r\n" + common
                      + f"CSeq: 56 INVITE\r\nContent-Type: application/sdp\r\n\r\n{sdp}")
            u.sendto(invite.encode(), (ip, port))
            answer = ""
            while not answer.startswith("SIP/2.0 2") and not answer.startswith("SIP/2.0 4"):
                answer = u.recv(65535).decode(errors="replace")
            assert answer.startswith("SIP/2.0 200 "), answer
            to = next(line for line in answer.split("\r\n") if line.lower().startswith("to:"))
            tail = common.replace(f"To: sip:echo@{ip}", f"To: {to.split(':', 1)[1].strip()}")
            u.sendto((f"ACK sip:echo@{ip}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.206:5098\r\n" + tail
                      + "CSeq: 56 ACK\r\nContent-Length: 0\r\n\r\n").encode(), (ip, port))
            u.sendto((f"BYE sip:echo@{ip}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.206:5098\r\n" + tail
                      + "CSeq: 57 BYE\r\nContent-Length: 0\r\n\r\n").encode(), (ip, port))
            got = ""
            while "CSeq: 57 BYE" not in got:
                got = u.recv(65535).decode(errors="replace")
            assert got.startswith("SIP/2.0 200 "), got
    finally:
        s.stop()
