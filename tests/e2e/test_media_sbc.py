"""Calls through a provider's SBC (Kamailio record-routing, rtpengine anchoring and transcoding
the media), and G.729 with the `g729` feature on (bcg729, GPL-3.0).

No Debian package gives a SIP user agent G.729 (baresip-core has no G.729 module, linphone's
bcg729 plugin is not packaged), but rtpengine's transcoder links bcg729: with `TRANSCODE=G729`
the SBC offers SIPx G.729 only and transcodes to and from sipp's PCMU. So SIPx's G.729 decoder
and encoder talk to another program's (rtpengine's own use of bcg729) over the wire, and sipp
hears the result in G.711. The G.729 binary is the one scripts/test builds with
`--features g729` (target/g729/sipx, or E2E_SIPX_G729_BINARY). Addresses 127.0.0.112-115
belong to these tests."""

import os

import pytest

import media
from conftest import ROOT, Kamailio, Server, sip_addr
from media import Capture, Rtpengine, run_sipp_call
from test_media_echo import logged

G729_BINARY = os.environ.get("E2E_SIPX_G729_BINARY", str(ROOT / "target" / "g729" / "sipx"))
CALLER_IP, SBC_IP, ENGINE_IP = "127.0.0.112", "127.0.0.113", "127.0.0.114"
SIPP_MEDIA_PORT = 6000
SIPX_PORTS = (31200, 31299)


def sipx_server(data_dir, codecs, binary=None):
    s = Server(data_dir, env={"SIPX_SIP__TRUSTED_PROXIES": '["127.0.0.0/8"]', "SIPX_MEDIA__CODECS": codecs,
                              "SIPX_MEDIA__RTP_PORT_MIN": str(SIPX_PORTS[0]),
                              "SIPX_MEDIA__RTP_PORT_MAX": str(SIPX_PORTS[1])})
    if binary:
        s.start_command = [binary, "serve"]
    return s.start()


def sbc_call(server, tmp_path, transcode):
    """sipp calls the echo test through the SBC with a 1 kHz tone in PCMU; returns the capture
    (sipp, the SBC's media) and the PCMU stream that came back to sipp."""
    audio = media.make_audio()
    host, port = sip_addr(server, "udp")
    with Rtpengine(tmp_path / "engine", ENGINE_IP) as engine:
        kam = Kamailio("sbc.cfg", (SBC_IP, 5060), tmp_path / "kam", SIPX=f'"sip:{host}:{port}"',
                       RTPENGINE=f'"udp:{ENGINE_IP}:{engine.ng[1]}"', TRANSCODE=f'"{transcode}"')
        try:
            with Capture(tmp_path / "call.pcap", f"host {CALLER_IP} or host {ENGINE_IP}") as cap:
                run = run_sipp_call("uac_pcmu.xml", tmp_path / "uac", CALLER_IP, (SBC_IP, 5060), "-s", "echo",
                                    "-d", "2500", audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
            # sipp exits 0 only once its ACK and BYE went through the SBC to SIPx and back: the
            # route SIPx's 200 recorded (RFC 3261 §12.1.1).
            assert run.returncode == 0, run.errors + run.stderr + kam.log_text()[-3000:] + engine.log_text()[-3000:]
        finally:
            kam.stop()
    back = media.rtp_to_wav(cap.pcap, tmp_path / "back.wav", dst=(CALLER_IP, SIPP_MEDIA_PORT), pt=0)
    return cap.pcap, back


def sipx_streams(pcap, pt):
    """The media streams to and from SIPx's ports with only payload type `pt`."""
    return [st for st in media.media_streams(pcap, f"udp.port >= {SIPX_PORTS[0]} && udp.port <= {SIPX_PORTS[1]}")
            if set(st.payload_types) == {str(pt)}]


@pytest.mark.parametrize("codec, pt", [("PCMA", 8), ("G729", 18)])
def test_call_through_a_transcoding_sbc_gets_the_tone_back(data_dir, tmp_path, codec, pt):
    binary = None
    if codec == "G729":
        binary = G729_BINARY
        if not os.access(binary, os.X_OK):
            pytest.fail(f"no G.729 build at {binary}: scripts/test makes it "
                        "(cargo build -p sipx --features g729, copied to target/g729/sipx)")
    s = sipx_server(data_dir, f'["{codec}", "PCMU"]', binary)
    try:
        pcap, back = sbc_call(s, tmp_path, codec)
        # SIPx negotiated the SBC's codec: it offered nothing else.
        negotiated = logged(s, "call media negotiated")
        assert [(e["codec"], e["payload_type"]) for e in negotiated] == [(codec, pt)], negotiated
    finally:
        s.stop()
    # On the wire between rtpengine and SIPx: that codec both ways (G.729: two 10-byte frames a
    # packet).
    streams = sipx_streams(pcap, pt)
    size = {"PCMA": 160, "G729": 20}[codec]
    assert len(streams) == 2 and all(st.packets >= 100 and st.payload_size == size for st in streams), streams
    # What sipp got back is its tone: decoded and re-encoded by SIPx, transcoded twice by
    # rtpengine.
    tone = media.tone_check(back.wav, 1000, skip_s=0.3)
    assert back.packets >= 100 and tone.band_ratio >= 0.9 and tone.active_s >= 1.5, (back, tone)
