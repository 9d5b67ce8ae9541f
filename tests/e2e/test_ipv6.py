"""SIPx on IPv6 (IMS cores and many carrier SBCs speak it): SIP over UDP and TCP on [::1], RTP
on ::1, and the audio that comes back checked on the wire. IPv6 loopback only (::1)."""

import re
import socket

import pytest

import media
from conftest import sip_addr
from media import Capture, run_sipp_call
from test_media_echo import SIPP_MEDIA_PORT, echo_server, logged


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


@pytest.fixture
def sipx6(data_dir):
    s = echo_server(data_dir, SIPX_SIP__UDP='["[::1]:0"]', SIPX_SIP__TCP='["[::1]:0"]',
                    SIPX_SIP__TRUSTED_PROXIES='["::1/128"]', SIPX_MEDIA__IP="::1")
    yield s
    s.stop()


def test_a_call_over_ipv6_is_answered_in_ip6_and_its_audio_comes_back(sipx6, tmp_path, audio):
    target = sip_addr(sipx6, "udp")
    assert target[0] == "[::1]", target
    with Capture(tmp_path / "call.pcap", "ip6") as cap:
        run = run_sipp_call("uac_pcmu.xml", tmp_path / "uac", "::1", ("[::1]", target[1]), "-s", "echo",
                            "-d", "2000", audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    back = media.rtp_to_wav(cap.pcap, tmp_path / "back.wav", dst=("::1", SIPP_MEDIA_PORT), pt=0)
    assert back.packets >= 80, back
    tone = media.tone_check(back.wav, 1000, skip_s=0.2)
    assert tone.band_ratio >= 0.99 and abs(tone.peak_hz - 1000) < 5, tone
    negotiated = logged(sipx6, "call media negotiated")
    assert negotiated and negotiated[0]["codec"] == "PCMU", negotiated


def test_sip_over_tcp_on_ipv6_answers_with_an_ip6_sdp(sipx6):
    host, port = sip_addr(sipx6, "tcp")
    with socket.create_connection(("::1", port), timeout=10) as conn:
        lport = conn.getsockname()[1]
        body = ("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\n"
                "m=audio 40600 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        invite = (f"INVITE sip:echo@{host}:{port};transport=tcp SIP/2.0\r\n"
                  f"Via: SIP/2.0/TCP [::1]:{lport};branch=z9hG4bKv6tcp1\r\nMax-Forwards: 70\r\n"
                  f"From: <sip:caller@[::1]>;tag=v6\r\nTo: <sip:echo@{host}>\r\nCall-ID: v6tcp@[::1]\r\n"
                  f"CSeq: 1 INVITE\r\nContact: <sip:caller@[::1]:{lport};transport=tcp>\r\n"
                  f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        conn.sendall(invite.encode())
        received = ""
        for _ in range(50):
            if "SIP/2.0 200 " in received and received.endswith("\r\n"):
                break
            chunk = conn.recv(65535).decode()
            assert chunk, received
            received += chunk
        ok = received[received.index("SIP/2.0 200 "):]
        assert re.search(r"^c=IN IP6 ::1\r?$", ok, re.M), ok
        assert re.search(r"^Contact: <sip:[^>]*\[::1\]", ok, re.M), ok


def sip_addrs(server, count, transport="udp"):
    """The addresses the server's `count` SIP listeners of `transport` got (each logs its own)."""
    want = f"SIP listening on {transport.upper()}"
    seen = lambda: [e["addr"] for e in server.events() if e.get("message") == want]  # noqa: E731
    server.wait_log(lambda _: len(seen()) >= count, 10)
    return [(host, int(port)) for host, port in (a.rsplit(":", 1) for a in seen())]


def dial_answered(server, creds, tmp_path, phone_ip, to):
    """A dial-out through the API to `to`, answered by a sipp UAS on `phone_ip` (its messages
    in tmp_path/sipp-<ip>-messages.log), then hung up."""
    from test_calls_dialout import api, sipp_uas, wait_state

    with sipp_uas(tmp_path, phone_ip, "uas_answer.xml") as phone:
        call = api(server, creds, "POST", "/v1/calls", {"to": to, "room": {"name": "v6"}}, expect=201).json()
        wait_state(server, creds, call["id"], "CONFIRMED", timeout=15)
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        assert phone.wait(20) == 0


def test_a_dual_stack_sipx_answers_each_caller_in_its_family(data_dir, tmp_path, audio):
    """media.ip on IPv4 and media.second_ip on IPv6 (an IPv4 trunk and an IPv6 IMS core on one
    SIPx): an IPv6 caller is answered in IP6 and an IPv4 one in IP4, and both hear their tone
    come back; a dial-out to an IPv6 phone is offered in IP6, one to an IPv4-mapped address in
    IP4. Addresses ::1, 127.0.0.230-231."""
    from conftest import create_app

    s = echo_server(data_dir, SIPX_SIP__UDP='["127.0.0.1:0", "[::1]:0"]',
                    SIPX_SIP__TRUSTED_PROXIES='["127.0.0.0/8", "::1/128"]', SIPX_MEDIA__SECOND_IP="::1")
    try:
        listeners = dict(sip_addrs(s, 2))
        for caller, host in (("::1", "[::1]"), ("127.0.0.230", "127.0.0.1")):
            work = tmp_path / caller.replace(":", "_")
            with Capture(work / "call.pcap", f"host {caller}") as cap:
                run = run_sipp_call("uac_pcmu.xml", work / "uac", caller, (host, listeners[host]), "-s", "echo",
                                    "-d", "2000", audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
            assert run.returncode == 0, run.errors + run.stderr
            back = media.rtp_to_wav(cap.pcap, work / "back.wav", dst=(caller, SIPP_MEDIA_PORT), pt=0)
            tone = media.tone_check(back.wav, 1000, skip_s=0.2)
            assert back.packets >= 80 and tone.band_ratio >= 0.99, (caller, back, tone)
            family = "IN IP6 ::1" if ":" in caller else "IN IP4 127.0.0.1"
            answers = media.tshark_fields(cap.pcap, "sip.Status-Code == 200 && sdp",
                                          ["sdp.connection_info", "sip.Contact"])
            assert answers and all(row[0] == family for row in answers), (caller, answers)
            # The Contact names SIPx's listener of the caller's family: its BYE can reach it.
            assert all(f"@{host}:{listeners[host]}" in row[1] for row in answers), (caller, answers)
        creds = create_app(s)[:2]
        dial_answered(s, creds, tmp_path, "::1", "sip:+4930111@[::1]:5060")
        # An IPv4-mapped address is the IPv4 one: sent from the IPv4 listener, offered in IP4.
        dial_answered(s, creds, tmp_path, "127.0.0.231", "sip:+4930222@[::ffff:127.0.0.231]:5060")
        log4 = (tmp_path / "sipp-127.0.0.231-messages.log").read_text()
        assert re.search(r"^c=IN IP4 127\.0\.0\.1\r?$", log4, re.M), log4[:1500]
        log = (tmp_path / "sipp-::1-messages.log").read_text()
        invite = log[log.index("INVITE sip:+4930111@"):]
        assert re.search(r"^c=IN IP6 ::1\r?$", invite, re.M), invite[:1500]
        # Sent from the IPv6 listener, which its Via and Contact name.
        assert re.search(rf"^Via: SIP/2.0/UDP \[::1\]:{listeners['[::1]']};", invite, re.M), invite[:1500]
        assert re.search(rf"^Contact: <sip:[^>]*@\[::1\]:{listeners['[::1]']}", invite, re.M), invite[:1500]
    finally:
        s.stop()


def ends_unreachable_at_once(server, creds, to):
    """A dial-out to `to`, which no SIP listener can reach, ends 503 `unreachable` within 5 s."""
    from test_calls_dialout import api, wait_state

    call = api(server, creds, "POST", "/v1/calls", {"to": to, "room": {"name": "x"}}, expect=201).json()
    ended = wait_state(server, creds, call["id"], "DISCONNECTED", timeout=5)
    assert ended["end"]["code"] == 503 and ended["end"]["cause"] == "unreachable", ended


def test_a_call_no_listener_can_send_fails_at_once_and_an_ipv6_external_host_gets_brackets(data_dir, tmp_path):
    """An IPv4-only SIPx asked to dial an IPv6 address, or an IPv6-only one an IPv4 address, ends
    the call at once (503, unreachable) instead of retransmitting into an error for 32 s; an
    IPv6-only SIPx whose
    `sip.external_host` is an IPv6 address written without brackets names it with them in Via
    and Contact, and its dial-outs are answered."""
    from conftest import Server, create_app

    s = Server(data_dir).start()
    try:
        ends_unreachable_at_once(s, create_app(s)[:2], "sip:+4930333@[::1]:5060")
    finally:
        s.stop()
    s = echo_server(data_dir, SIPX_SIP__UDP='["[::1]:0"]', SIPX_SIP__TCP='[]', SIPX_MEDIA__IP="::1",
                    SIPX_SIP__EXTERNAL_HOST="2001:db8::5")
    try:
        creds = create_app(s)[:2]
        dial_answered(s, creds, tmp_path, "::1", "sip:+4930444@[::1]:5060")
        invite = (tmp_path / "sipp-::1-messages.log").read_text()
        assert re.search(r"^Via: SIP/2.0/UDP \[2001:db8::5\]:\d+;", invite, re.M), invite[:1500]
        assert re.search(r"^Contact: <sip:[^>]*@\[2001:db8::5\]:\d+", invite, re.M), invite[:1500]
        # And the other way round: no IPv4 listener for an IPv4 phone.
        ends_unreachable_at_once(s, creds, "sip:+4930555@127.0.0.232:5060")
    finally:
        s.stop()
