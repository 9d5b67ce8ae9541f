"""SDES-SRTP with peers that bend RFC 4568, checked with the real peer. linphone (liblinphone
5.1, libsrtp with one policy for RTP and RTCP) authenticates SRTCP with a 32-bit tag under
`AES_CM_128_HMAC_SHA1_32`, where the RFC says 80 bits for SRTCP with every suite."""

import pytest
import requests

import media
import rooms
from conftest import Server, auth_header, create_app
from test_media_echo import logged

ENV = {"SIPX_SIP__TRUSTED_PROXIES": '["127.0.0.0/8"]', "SIPX_MEDIA__RTP_PORT_MIN": "31000",
       "SIPX_MEDIA__RTP_PORT_MAX": "31999", "SIPX_ROOMS__UDP": "127.0.0.1:0"}


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


@pytest.fixture
def server(data_dir):
    s = Server(data_dir, env=ENV).start()
    yield s
    s.stop()


def dropped(server, reason):
    metrics = requests.get(server.url("/metrics"), timeout=5).text
    line = f'sipx_media_dropped_total{{reason="{reason}"}} '
    return next((float(x[len(line):]) for x in metrics.splitlines() if x.startswith(line)), 0.0)


def test_linphones_32_bit_srtcp_tags_are_taken_and_mirrored(server, audio, tmp_path):
    """SIPx dials linphonec with SRTP required; linphonec takes only the `_32` suite. Its
    SRTCP reports authenticate (none dropped), and SIPx's own come back in its receiver
    reports, which they can only if linphone authenticated them: the call's round trip is
    measured. Without the 32-bit tags either way, no round trip and every report dropped."""
    from linphone import linphonec

    creds = create_app(server)[:2]
    headers = auth_header(*creds)
    suites = ("media_encryption=srtp", "media_encryption_mandatory=1",
              "srtp_crypto_suites=AES_CM_128_HMAC_SHA1_32")
    with linphonec(tmp_path, audio.tone1000_8k, port=5177, sip_settings=suites):
        r = requests.post(server.url("/v1/calls"), headers=headers, timeout=10, json={
            "to": "sip:lin@127.0.0.1:5177", "room": {"name": "srtcp"}, "srtp": "required"})
        assert r.status_code == 201, r.text
        call = server.url(f"/v1/calls/{r.json()['id']}")

        def measured():
            c = requests.get(call, headers=headers, timeout=5).json()
            assert c["state"] in ("CALLING", "RINGING", "CONFIRMED"), c
            return c["state"] == "CONFIRMED" and (c.get("media") or {}).get("rtt_ms") is not None and c

        # RTCP every few seconds, the call's statistics every 5 s: the round trip within 20.
        c = rooms.wait_until(measured, timeout=20, what="a round trip from SRTCP reports")
        assert 0 < c["media"]["rtt_ms"] < 500, c["media"]
        assert c["media"]["packets_received"] > 0, c["media"]
        requests.delete(call, headers=headers, timeout=5)
        rooms.wait_until(lambda: requests.get(call, headers=headers, timeout=5).json()["done"], timeout=10,
                         what="the call over")
    negotiated = logged(server, "call media negotiated")
    assert [e["srtp"] for e in negotiated] == ["AES_CM_128_HMAC_SHA1_32"], negotiated
    # Counted when the leg ends: linphone's reports all authenticated.
    assert dropped(server, "srtp_authentication") == 0
