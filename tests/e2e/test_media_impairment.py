"""Loss and jitter between a caller and SIPx's echo test: a seeded ImpairmentRelay plays the
network (no netem here). SIPx writes the relay's address into its SDP (`media.external_ip`,
as behind a 1:1 NAT), so sipp sends to the relay, which forwards to SIPx; SIPx latches on to the
relay (symmetric RTP) and its echo goes back the same way. Addresses 127.0.0.110-119 belong to
these tests."""

import contextlib
import pathlib
import re
import socket
import struct
import time

import numpy as np
import pytest
import requests

import media
from conftest import sip_addr
from media import Capture, Impairment, ImpairmentRelay, run_sipp_call
from test_media_echo import echo_server

SIPX_RTP = ("127.0.0.1", 31100)  # the only port pair SIPx may use here: the relay forwards to it
RELAY_IP = "127.0.0.110"
CALLER_IP = "127.0.0.111"
SIPP_MEDIA_PORT = 6000


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


def impaired_echo_call(data_dir, tmp_path, audio, up, down, seed):
    """sipp streams the speech once to the echo test through the relay; returns the relay, what
    came back to sipp and what reached SIPx (both ideal jitter buffers without concealment), and
    what reached SIPx played without a jitter buffer."""
    s = echo_server(data_dir, SIPX_MEDIA__EXTERNAL_IP=RELAY_IP, SIPX_MEDIA__RTP_PORT_MIN=str(SIPX_RTP[1]),
                    SIPX_MEDIA__RTP_PORT_MAX=str(SIPX_RTP[1] + 1))
    try:
        with ImpairmentRelay(RELAY_IP, SIPX_RTP[1], SIPX_RTP, up=up, down=down, seed=seed) as relay:
            with Capture(tmp_path / "call.pcap", f"host {CALLER_IP} or host {RELAY_IP}") as cap:
                run = run_sipp_call("uac_pcmu.xml", tmp_path / "uac", CALLER_IP, sip_addr(s, "udp"), "-s", "echo",
                                    "-d", "6500", audio={"uac_audio.ulaw": audio["speech_8k.ulaw"]})
        assert run.returncode == 0, run.errors + run.stderr
    finally:
        s.stop()
    back = media.rtp_to_wav(cap.pcap, tmp_path / "back.wav", dst=(CALLER_IP, SIPP_MEDIA_PORT), pt=0)
    at_sipx = media.rtp_to_wav(cap.pcap, tmp_path / "at_sipx.wav", src=relay.server_side, dst=SIPX_RTP, pt=0)
    unbuffered = media.rtp_to_wav(cap.pcap, tmp_path / "unbuffered.wav", src=relay.server_side, dst=SIPX_RTP, pt=0,
                                  playout_ms=0)
    return relay, back, at_sipx, unbuffered


def test_loss_and_jitter_are_concealed_by_the_jitter_buffer_and_plc(data_dir, tmp_path, audio):
    # Loss on the way in (where SIPx's jitter buffer and concealment act; loss on the way back
    # would be the caller's to conceal, and rtp_to_wav conceals nothing), 30 ms of jitter both
    # ways. Seed 4 drops 15 of sipp's 309 packets (4.9 %).
    up, down = Impairment(loss=0.05, jitter_ms=30), Impairment(jitter_ms=30)
    relay, back, at_sipx, unbuffered = impaired_echo_call(data_dir, tmp_path, audio, up, down, seed=4)
    assert (relay.stats["up"].received, relay.stats["up"].dropped) == (309, 15), relay.stats
    assert at_sipx.gaps == 15 and at_sipx.out_of_order >= 10, at_sipx  # lost and reordered on the way
    # SIPx sends a frame every 20 ms whatever arrived: nothing is missing from its echo.
    assert back.packets >= 300 and back.gaps == 0, back
    ref = audio.speech_8k
    score = media.pesq_nb(ref, back.wav)
    # Measured 3.212 in 5 runs of 5 (the seed fixes the pattern; the adaptive buffer absorbs
    # the timing differences between runs), and 2.954 once on a machine loaded 6 times over
    # (load average 13 on 2 cores: another full test run beside it); seeds 1-5 gave 3.36, 2.89,
    # 2.69 (7.4 % lost), 3.21, 3.55. The same call without impairment scores ~4.0
    # (test_media_echo). 2.9 (between "poor" and "fair", intelligible) leaves 0.3 of margin and
    # still fails a SIPx that inserted silence for lost packets, which scores 2.69 here even
    # with a perfect jitter buffer (what reached SIPx, reordered by hand, losses as silence, one
    # G.711 encoding less than the echo).
    assert score >= 2.9, score
    no_plc = media.pesq_nb(ref, at_sipx.wav)
    assert score >= no_plc + 0.2, (score, no_plc)
    # Without a jitter buffer (played as it arrives, late packets dropped) the same input is
    # close to noise: measured 1.03-1.05, and once 1.66 (a mostly silent file, when nearly
    # every packet came after the first one's pace). A full point below the echo either way.
    no_buffer = media.pesq_nb(ref, unbuffered.wav)
    assert unbuffered.too_late > 100 and no_buffer <= score - 1.0, (unbuffered, no_buffer, score)


def long_packet_call(server, ip, tone, ptime_ms, seconds, lost):
    """A caller written by hand, from `ip`: PCMU in `ptime_ms` packets of `tone` to the echo
    test for `seconds`, leaving out the packets whose index `lost` says. Returns the payloads
    SIPx sent back, in order of arrival."""
    target = sip_addr(server, "udp")
    sip, rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind((ip, 0))
    rtp.bind((ip, 0))
    sip.settimeout(5)
    rtp.setblocking(False)
    sip_port, rtp_port = sip.getsockname()[1], rtp.getsockname()[1]
    call_id, to_tag, back = f"long-{time.monotonic_ns()}", "", []

    def request(method, cseq, body=""):
        kind = "Content-Type: application/sdp\r\n" if body else ""
        tag = f";tag={to_tag}" if to_tag else ""
        sip.sendto((f"{method} sip:echo@{target[0]}:{target[1]} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {ip}:{sip_port};branch=z9hG4bK{time.monotonic_ns():x};rport\r\n"
                    f"Max-Forwards: 70\r\nTo: <sip:echo@{target[0]}>{tag}\r\nFrom: <sip:caller@{ip}>;tag=c1\r\n"
                    f"Call-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:caller@{ip}:{sip_port}>\r\n"
                    f"{kind}Content-Length: {len(body)}\r\n\r\n{body}").encode(), target)

    try:
        request("INVITE", 1, f"v=0\r\no=caller 7 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
                             f"m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:{ptime_ms}\r\n")
        while not (text := sip.recv(65535).decode()).startswith("SIP/2.0 200"):
            assert text.startswith("SIP/2.0 1"), text
        to_tag = re.search(r"^To:.*;tag=([^;\s]+)", text, re.M | re.I).group(1)
        request("ACK", 1)
        answer = text.partition("\r\n\r\n")[2]
        remote = (re.search(r"^c=IN IP4 (\S+)", answer, re.M).group(1),
                  int(re.search(r"^m=audio (\d+)", answer, re.M).group(1)))
        size = 8 * ptime_ms
        start = time.monotonic()
        for i in range(seconds * 1000 // ptime_ms):
            if not lost(i):
                header = struct.pack("!BBHII", 0x80 | 0, 0x80 if i == 0 else 0, i, i * size, 0x10C0FFEE)
                rtp.sendto(header + tone[(i * size) % (len(tone) - size):][:size], remote)
            # The stream's pace, not a wait for anything.
            time.sleep(max(0.0, start + (i + 1) * ptime_ms / 1000 - time.monotonic()))
            with contextlib.suppress(BlockingIOError):
                while True:
                    back.append(rtp.recv(2048)[12:])
        request("BYE", 2)
    finally:
        sip.close()
        rtp.close()
    return back


def test_a_lost_long_packet_is_concealed_for_its_length_and_no_more(data_dir, audio):
    """60 ms packets (mobile and satellite trunks send them), one in 37 lost. Each loss must be
    concealed for its 60 ms: SIPx conceals from the tick the packet was due, holding the
    playout point in case it is late; once the next packet shows it lost, that wait is its
    concealment. Counted twice, 120 ms of G.711 concealment fade to silence (Appendix I
    attenuates to nothing over 60 ms) and a later skip drops a packet that came."""
    s = echo_server(data_dir)
    try:
        tone = pathlib.Path(audio["tone1000_8k.ulaw"]).read_bytes()
        back = long_packet_call(s, "127.0.0.112", tone, 60, 8, lambda i: i % 37 == 11)
        jitter, deadline = {}, time.monotonic() + 5
        while "lost" not in jitter and time.monotonic() < deadline:
            metrics = requests.get(s.url("/metrics"), timeout=5).text
            jitter = dict(re.findall(r'^sipx_media_jitter_total\{outcome="(\w+)"\} (\d+)', metrics, re.M))
    finally:
        s.stop()
    assert {len(p) for p in back} == {480}, "SIPx sends 60 ms packets as asked"
    pcm = media.G711_TABLES[0][np.frombuffer(b"".join(back), dtype=np.uint8)].astype(np.int32)
    # From the first sound to the last: no 20 ms of digital silence anywhere in between.
    sound = np.flatnonzero(np.abs(pcm) > 64)
    pcm = pcm[sound[0]:sound[-1]]
    quiet = np.abs(pcm) <= 64
    longest, run = 0, 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    assert longest < 160, f"{longest / 8:.1f} ms of silence in the echo"
    assert jitter.get("lost") == "4" and jitter.get("skipped", "0") == "0", jitter
