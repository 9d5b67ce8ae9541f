"""SIP over a TCP connection and odd bytes, against the real binary: the answer to a good
request still goes out when the same segment ends in bytes that cannot be framed (SIPx then
closes the connection, RFC 3261 §18.3); a request whose display name is Latin-1, not UTF-8, is
answered over UDP and TCP instead of dropped. Addresses 127.0.0.205-209 belong here."""

import socket

from conftest import sip_addr


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
        except socket.timeout:
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
