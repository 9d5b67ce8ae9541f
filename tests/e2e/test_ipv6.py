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
