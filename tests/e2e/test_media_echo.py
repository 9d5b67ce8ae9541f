"""The media engine end to end: real SIP peers call SIPx's echo test (sip:echo@<sipx>) and what
comes back is checked on the wire: tone and speech quality (P.862), RFC 4733 digits, SIP INFO
digits, SRTP, hold and resume, late offer, odd SDPs. Addresses 127.0.0.80-99, 127.0.0.133, 127.0.0.197, 127.0.0.199 and 127.0.0.203 belong to these
tests; sipp runs as root (raw sockets for pcap and DTMF play), dumpcap captures on lo."""

import contextlib
import pathlib
import random
import re
import socket
import struct
import subprocess
import threading
import time

import numpy as np
import pytest
import requests

import media
import sdes
from conftest import Server, sip_addr
from media import Baresip, Capture, run_sipp_call
from test_calls_replaces import Phone, header

SIPP_MEDIA_PORT = 6000


@pytest.fixture(scope="module")
def audio():
    return media.make_audio()


def echo_server(data_dir, **env):
    """SIPx whose loopback callers are trusted (a proxy in front, as far as it knows)."""
    base = {"SIPX_SIP__TRUSTED_PROXIES": '["127.0.0.0/8"]', "SIPX_MEDIA__RTP_PORT_MIN": "31000",
            "SIPX_MEDIA__RTP_PORT_MAX": "31999"}
    return Server(data_dir, env={**base, **env}).start()


@pytest.fixture
def sipx(data_dir):
    s = echo_server(data_dir)
    yield s
    s.stop()


def logged(server, message, **fields):
    return [e for e in server.events() if e.get("message") == message
            and all(e.get(k) == v for k, v in fields.items())]


def call(server, tmp_path, ip, scenario, *args, audio=None, user="echo"):
    """One sipp call to the echo test (or `user`), captured; returns (sipp run, pcap)."""
    target = sip_addr(server, "udp")
    with Capture(tmp_path / "call.pcap", f"host {ip}") as cap:
        run = run_sipp_call(scenario, tmp_path / "uac", ip, target, "-s", user, *args, audio=audio)
    return run, cap.pcap


def tone_call(server, tmp_path, ip, scenario, audio, *args, user="echo", skip_s=0.2):
    """A PCMU call sending a 1000 Hz tone; returns (what came back, its tone check)."""
    run, pcap = call(server, tmp_path, ip, scenario, "-d", "2000", *args, user=user,
                     audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=(ip, SIPP_MEDIA_PORT), pt=0)
    return back, media.tone_check(back.wav, 1000, skip_s=skip_s)


def test_speech_through_the_echo_keeps_g711_quality(sipx, tmp_path, audio):
    run, pcap = call(sipx, tmp_path, "127.0.0.80", "uac_pcmu.xml", "-d", "6500",
                     audio={"uac_audio.ulaw": audio["speech_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.80", SIPP_MEDIA_PORT), pt=0)
    assert back.packets >= 250, back
    # Decoded, jitter-buffered and re-encoded once more by SIPx: two G.711 encodings in all.
    score = media.pesq_nb(audio.speech_8k, back.wav)
    assert score >= 3.8, score
    ended = logged(sipx, "call ended")
    assert ended and ended[0]["reason"] == "caller hung up", ended


def test_pcma_tone_comes_back(sipx, tmp_path, audio):
    run, pcap = call(sipx, tmp_path, "127.0.0.81", "uac_pcma.xml", "-d", "2000",
                     audio={"uac_audio.alaw": audio["tone1000_8k.alaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.81", SIPP_MEDIA_PORT))
    assert back.payload_types.get(8, 0) >= 70 and set(back.payload_types) == {8}, back
    tone = media.tone_check(back.wav, 1000, skip_s=0.2)
    assert tone.band_ratio >= 0.99 and abs(tone.peak_hz - 1000) < 5, tone
    negotiated = logged(sipx, "call media negotiated")
    assert negotiated and negotiated[0]["codec"] == "PCMA", negotiated


def test_the_opus_echo_transcodes_and_the_media_thread_reports_its_timing(sipx, tmp_path, audio):
    # Back as PCMU after an Opus encode and decode at 8 kHz: the tone is still the tone.
    back, tone = tone_call(sipx, tmp_path, "127.0.0.93", "uac_pcmu.xml", audio, user="echo-opus", skip_s=0.3)
    answered = logged(sipx, "call answered by the echo test")
    assert answered and answered[0]["opus"] is True, answered
    assert back.packets >= 80 and tone.band_ratio >= 0.95 and abs(tone.peak_hz - 1000) < 10, (back, tone)
    # Every frame sent was timed from its tick (the histogram is published about once a second).
    text = requests.get(sipx.url("/metrics"), timeout=5).text

    def metric(name):
        return float(re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE).group(1))

    assert metric("sipx_media_added_latency_seconds_count") >= 40, text
    assert metric('sipx_media_added_latency_seconds_bucket{le="+Inf"}') \
        == metric("sipx_media_added_latency_seconds_count")
    assert metric("sipx_media_ticks_total") > 0 and metric("sipx_media_late_ticks_total") >= 0
    assert "sipx_media_tick_busy_seconds_bucket" in text and "sipx_media_late_frames_total" in text


def test_rfc4733_digits_are_reported_and_sent_back(sipx, tmp_path, audio):
    run, pcap = call(sipx, tmp_path, "127.0.0.82", "uac_pcmu_dtmf.xml",
                     audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    digits = "".join(e["digit"] for e in logged(sipx, "DTMF digit", via="rfc4733"))
    assert digits == "12#", sipx.events()[-20:]
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.82", SIPP_MEDIA_PORT))
    assert back.dtmf == "12#", back


def test_rfc4733_digits_offered_only_at_16000_hz_are_reported_and_sent_back(sipx, tmp_path, audio):
    """A phone that offers telephone-event at 16000 Hz only (some pair it with G.722): its keys
    are heard and SIPx's go back at that payload type, not lost for want of an 8000 Hz one."""
    text = (media.PEERS / "sipp" / "uac_pcmu_dtmf.xml").read_text()
    assert "telephone-event/8000" in text
    scenario = tmp_path / "uac_pcmu_dtmf_16k.xml"
    scenario.write_text(text.replace("telephone-event/8000", "telephone-event/16000"))
    run, pcap = call(sipx, tmp_path, "127.0.0.252", str(scenario),
                     audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    assert "telephone-event/16000" in media.call_sdps(pcap, "127.0.0.252")[1]
    digits = "".join(e["digit"] for e in logged(sipx, "DTMF digit", via="rfc4733"))
    assert digits == "12#", sipx.events()[-20:]
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.252", SIPP_MEDIA_PORT))
    assert back.dtmf == "12#", back


def test_sip_info_digits_are_reported_and_sent_back_as_rfc4733(sipx, tmp_path, audio):
    run, pcap = call(sipx, tmp_path, "127.0.0.83", "uac_info_dtmf.xml", "-key", "digit", "5",
                     "-key", "formats", "0 101", audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    assert "DTMF_RELAY 200" in run.logs and "DTMF 200" in run.logs, run.logs
    digits = [e["digit"] for e in logged(sipx, "DTMF digit", via="info")]
    assert digits == ["5", "5"], digits
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.83", SIPP_MEDIA_PORT))
    assert back.dtmf == "55", back


def test_a_key_sent_both_as_events_and_as_info_is_one_digit(sipx, tmp_path, audio):
    """A gateway that sends each key as RFC 4733 events and as a SIP INFO too: "1" INFO first,
    "2" events first; each is reported (and echoed) once. Its Content-Types put white space
    around the slash (RFC 3261 §25.1), which must still be read as SDP and as a key. Address
    127.0.0.250."""
    ip = "127.0.0.250"
    run, pcap = call(sipx, tmp_path, ip, "uac_dtmf_both_ways.xml", "-trace_logs",
                     audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    assert "INFO1 200" in run.logs and "INFO2 200" in run.logs, run.logs
    # sipp's Call-IDs end with its address.
    heard = [(e["digit"], e["via"]) for e in logged(sipx, "DTMF digit")
             if e.get("call_id", "").endswith(f"@{ip}")]
    assert heard == [("1", "info"), ("2", "rfc4733")], heard
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=(ip, SIPP_MEDIA_PORT))
    assert back.dtmf == "12", back


def test_sip_info_without_a_key_is_answered_by_what_is_wrong(sipx, tmp_path):
    # The scenario fails unless a body-less INFO gets 200, an unknown key 400 and a text/plain
    # body 415 with Accept; none of them is a digit.
    run, _ = call(sipx, tmp_path, "127.0.0.97", "uac_info_answers.xml", "-key", "formats", "0 101")
    assert run.returncode == 0, run.errors + run.stderr + run.logs[-2000:]
    assert not logged(sipx, "DTMF digit"), logged(sipx, "DTMF digit")


def test_digits_to_a_phone_without_telephone_event_come_back_as_tones(sipx, tmp_path, audio):
    """A phone that offers no telephone-event (an rtpmap for 101 without 101 on the m= line does
    not count) sends its keys by SIP INFO; the echo sends them back as the keys' tones, which a
    tone detector reads."""
    run, pcap = call(sipx, tmp_path, "127.0.0.95", "uac_info_dtmf.xml", "-key", "digit", "9",
                     "-key", "formats", "0", audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    assert [e["digit"] for e in logged(sipx, "DTMF digit", via="info")] == ["9", "9"]
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.95", SIPP_MEDIA_PORT))
    assert back.dtmf == "", "no RFC 4733 events to a phone that did not offer them"
    assert media.inband_digits(tmp_path / "back.wav") == "99"


def test_keys_sent_only_as_tones_are_heard_and_come_back_once(sipx, tmp_path):
    """A phone that did not negotiate telephone-event sends its keys as tones in the audio (an
    analogue line behind a gateway). SIPx hears them (`media.inband_dtmf`, on by default) and
    reports each once; the echo gives them back in the echoed audio, not a second time as
    tones of its own."""
    rate, keys = 8000, {"1": (697, 1209), "5": (770, 1336), "9": (852, 1477), "#": (941, 1477)}
    t = np.arange(int(0.12 * rate)) / rate
    parts = [np.zeros(rate // 2)]
    for key in "159#":
        low, high = keys[key]
        parts += [0.25 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t)), np.zeros(int(0.15 * rate))]
    parts.append(np.zeros(rate))
    wav, ulaw = tmp_path / "keys.wav", tmp_path / "keys.ulaw"
    media.write_wav(wav, rate, (np.concatenate(parts) * 32767).astype(np.int16))
    subprocess.run(["sox", str(wav), "-t", "raw", "-e", "mu-law", str(ulaw)], check=True, timeout=30)
    run, pcap = call(sipx, tmp_path, "127.0.0.203", "uac_pcmu_tones_only.xml", "-d", "3000",
                     audio={"uac_audio.ulaw": ulaw})
    assert run.returncode == 0, run.errors + run.stderr
    heard = [e["digit"] for e in logged(sipx, "DTMF digit", via="inband")]
    assert heard == list("159#"), heard
    media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.203", SIPP_MEDIA_PORT))
    assert media.inband_digits(tmp_path / "back.wav") == "159#"

def test_hold_and_resume_by_reinvite(data_dir, tmp_path, audio):
    """The phone holds for 2.5 s sending nothing at all, with a 1 s media timeout: a held call
    is not a dead one (RFC 3264 §8.4), and audio comes back after the resume."""
    sipx = echo_server(data_dir, SIPX_MEDIA__MEDIA_TIMEOUT_SECS="1")
    try:
        run, pcap = call(sipx, tmp_path, "127.0.0.84", "uac_hold_resume.xml", "-d", "2500",
                         audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    finally:
        sipx.stop()
    assert run.returncode == 0, run.errors + run.stderr + run.logs
    assert not logged(sipx, "call ended", reason="media timeout"), logged(sipx, "call ended")
    assert re.search(r"HOLD (recvonly|inactive)", run.logs) and "RESUME ok" in run.logs, run.logs
    directions = [e["direction"] for e in logged(sipx, "call media negotiated")]
    assert directions[0] == "sendrecv" and directions[1] in ("recvonly", "inactive") \
        and directions[2] == "sendrecv", directions
    # Audio came back before the hold and again after the resume.
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.84", SIPP_MEDIA_PORT))
    assert back.packets >= 100, back
    # One RTP source throughout: a re-INVITE is not a new stream, and RTCP names the same SSRC.
    to_phone = "ip.dst==127.0.0.84"
    rtp = {r[0] for r in media.tshark_fields(pcap, f"rtp && {to_phone}", ["rtp.ssrc"])}
    rtcp = {r[0] for r in media.tshark_fields(pcap, f"rtcp.pt==200 && {to_phone}", ["rtcp.senderssrc"],
                                              "-o", "rtcp.heuristic_rtcp:TRUE")}
    assert len(rtp) == 1 and rtcp <= rtp, (rtp, rtcp)


class RemovingPhone:
    """A raw UDP phone for what sipp cannot do: it aborts on an answer whose port is 0. Calls
    the echo test with PCMU, sends RTP from its own port, re-INVITEs with any port."""

    def __init__(self, ip, target):
        self.phone = Phone(ip, target)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((ip, 0))
        self.rtp.settimeout(0.1)
        self.ip, self.target, self.cseq, self.seq = ip, target, 1, 0

    def sdp(self, port, version):
        return (f"v=0\r\no=- 1 {version} IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def call(self):
        """The echo test's answer to an INVITE from the RTP port."""
        status, self.dialog, answer = self.phone.invite("echo", body=self.sdp(self.rtp.getsockname()[1], 1))
        assert status == 200, answer
        self.remote_target = re.search(r"<([^>]+)>", header(answer, "Contact")).group(1)
        self.to = re.sub(r";tag=[^;>\s]+", "", header(answer, "To"))
        return answer

    def request(self, method, body=""):
        """A request in the call (an INVITE's 200 ACKed); returns its final response."""
        call_id, tag, their_tag = self.dialog
        self.cseq += 1
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        to = f"{self.to};tag={their_tag}"
        content = f"Content-Type: application/sdp\r\n" if body else ""
        msg = self.phone.head(method, self.remote_target, branch, tag, to, call_id, self.cseq, "") + \
            f"{content}Content-Length: {len(body)}\r\n\r\n{body}"
        self.phone.sock.sendto(msg.encode(), self.target)
        while True:
            text = self.phone.sock.recv(65535).decode(errors="replace")
            if text.startswith("SIP/2.0 ") and f"branch={branch}" in text and int(text.split(" ", 2)[1]) >= 200:
                break
        if method == "INVITE":
            ack = self.phone.head("ACK", self.remote_target, f"z9hG4bK{random.getrandbits(48):x}", tag, to,
                                  call_id, self.cseq, "")
            self.phone.sock.sendto((ack + "Content-Length: 0\r\n\r\n").encode(), self.target)
        return text

    def reinvite(self, port, version):
        """A re-INVITE offering `port` (0: the stream removed); its final response."""
        return self.request("INVITE", self.sdp(port, version))

    def talk(self, answer, tone, seconds):
        """Sends `seconds` of `tone` (µ-law) to the answer's RTP address at 20 ms; returns the
        RTP packets that came back meanwhile and for 0.5 s after."""
        port = int(re.search(r"m=audio (\d+) ", answer).group(1))
        dest = (re.search(r"c=IN IP4 (\S+)", answer).group(1), port)
        back, frames = [], int(seconds / 0.02)
        start = time.monotonic()
        for n in range(frames + 25):
            if n < frames:
                payload = tone[(n * 160) % (len(tone) - 160):][:160]
                self.seq += 1
                header = struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, self.seq * 160, 0x5151)
                self.rtp.sendto(header + payload, dest)
            while time.monotonic() < start + (n + 1) * 0.02:
                with contextlib.suppress(socket.timeout):
                    self.rtp.settimeout(max(0.001, start + (n + 1) * 0.02 - time.monotonic()))
                    back.append(self.rtp.recv(2048))
        return back

    def listen(self, seconds):
        """The RTP that arrives within `seconds`, sending nothing."""
        back, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.rtp.settimeout(max(0.001, deadline - time.monotonic()))
            with contextlib.suppress(socket.timeout):
                back.append(self.rtp.recv(2048))
        return back

    def close(self):
        self.phone.close()
        self.rtp.close()


def loud(packets):
    """The packets whose µ-law payload is a tone, not silence."""
    return [p for p in packets if len(p) > 12 and
            np.abs(np.array([media._ulaw_to_linear(b) for b in p[12:]])).mean() > 1000]


def test_a_reinvite_removing_the_audio_is_answered_with_port_0_and_the_audio_comes_back(data_dir, audio):
    """RFC 3264 §8.2: a re-offer with `m=audio 0` removes the stream, and the answer must say
    port 0 too (refused with 488, the phone and SIPx would disagree on the media). While it is
    gone nothing goes to the phone, and 2 s of silence with a 1 s media timeout end nothing;
    the next offer brings the audio back."""
    sipx = echo_server(data_dir, SIPX_MEDIA__MEDIA_TIMEOUT_SECS="1")
    phone = RemovingPhone("127.0.0.133", sip_addr(sipx, "udp"))
    tone = pathlib.Path(audio["tone1000_8k.ulaw"]).read_bytes()
    try:
        answer = phone.call()
        assert len(loud(phone.talk(answer, tone, 1.0))) >= 30
        removed = phone.reinvite(0, 2)
        assert removed.startswith("SIP/2.0 200 "), removed
        assert re.search(r"^m=audio 0 RTP/AVP", removed, re.M), removed
        assert phone.listen(2.0) == [], "RTP to a removed stream"
        restored = phone.reinvite(phone.rtp.getsockname()[1], 3)
        assert restored.startswith("SIP/2.0 200 ") and not re.search(r"^m=audio 0 ", restored, re.M), restored
        assert len(loud(phone.talk(restored, tone, 1.0))) >= 30
        assert phone.request("BYE").startswith("SIP/2.0 200 ")
    finally:
        phone.close()
        sipx.stop()
    ended = logged(sipx, "call ended")
    assert [e.get("reason") for e in ended] == ["caller hung up"], ended
    directions = [e["direction"] for e in logged(sipx, "call media negotiated")]
    assert directions == ["sendrecv", "inactive", "sendrecv"], directions


def test_late_offer_takes_the_answer_from_the_ack(sipx, tmp_path, audio):
    back, tone = tone_call(sipx, tmp_path, "127.0.0.85", "uac_late_offer.xml", audio,
                           "-key", "pcmu_pt", "0", "-key", "te_pt", "101")
    answered = logged(sipx, "call answered by the echo test")
    assert answered and answered[0]["late_offer"] is True, answered
    assert back.packets >= 60 and tone.band_ratio >= 0.99, (back, tone)


def test_a_late_offer_answered_with_other_payload_numbers_is_heard_on_ours_and_answered_on_its(sipx, tmp_path,
                                                                                               audio):
    """SIPx offered PCMU as 0; the answer in the ACK calls it 98. The caller sends with 0 (the
    offer's numbers are what the offerer receives, RFC 3264 §5.1) and SIPx sends back with 98."""
    run, pcap = call(sipx, tmp_path, "127.0.0.197", "uac_late_offer.xml", "-d", "2000",
                     "-key", "pcmu_pt", "98", "-key", "te_pt", "96",
                     audio={"uac_audio.ulaw": audio["tone1000_8k.ulaw"]})
    assert run.returncode == 0, run.errors + run.stderr
    back = media.rtp_to_wav(pcap, tmp_path / "back.wav", dst=("127.0.0.197", SIPP_MEDIA_PORT), renumbered={98: 0})
    assert set(back.payload_types) == {98}, back
    tone = media.tone_check(back.wav, 1000, skip_s=0.2)
    assert back.packets >= 60 and tone.band_ratio >= 0.99, (back, tone)


def test_a_late_offer_left_unanswered_in_the_ack_ends_with_a_bye_naming_488(sipx, tmp_path):
    # The scenario fails unless SIPx's BYE arrives and its Reason carries cause=488 (RFC 3326).
    run, _ = call(sipx, tmp_path, "127.0.0.96", "uac_late_offer_no_answer.xml")
    assert run.returncode == 0, run.errors + run.stderr + run.logs[-2000:]
    ended = logged(sipx, "call ended")
    assert ended and ended[0]["reason"] == "no usable SDP answer in the ACK", ended


def test_an_unusable_answer_in_the_ack_to_a_reinvite_offer_ends_the_call_with_a_bye_naming_488(sipx, tmp_path):
    """A call up with PCMU; the caller re-INVITEs without SDP and answers SIPx's offer in the
    ACK with a codec SIPx did not offer. Kept, the old session would leave a call up with dead
    audio (the caller sends what its answer says); SIPx ends it, as for an initial late offer."""
    run, _ = call(sipx, tmp_path, "127.0.0.204", "uac_reinvite_no_sdp_bad_answer.xml")
    assert run.returncode == 0, run.errors + run.stderr + run.logs[-2000:]
    ended = logged(sipx, "call ended")
    assert ended and ended[0]["reason"] == "no usable SDP answer in the ACK", ended


def test_an_earlier_reinvites_ack_arriving_late_is_not_taken_for_the_answer_to_sipxs_offer(sipx, tmp_path):
    """Two re-INVITEs; the first one's ACK arrives after the second's 200, which carries SIPx's
    offer. Only the ACK with the second's CSeq answers it (RFC 3261 §13.2.2.4): its unusable
    answer must end the call with a BYE naming 488. Taken for the answer, the stale ACK (no
    body) would roll the offer back and the real answer would be ignored: no BYE."""
    run, _ = call(sipx, tmp_path, "127.0.0.223", "uac_reinvite_reordered_acks.xml")
    assert run.returncode == 0, run.errors + run.stderr + run.logs[-2000:]
    ended = logged(sipx, "call ended")
    assert ended and ended[0]["reason"] == "no usable SDP answer in the ACK", ended


@pytest.mark.parametrize("scenario, ip, expected", [
    ("uac_sdp_multi_crypto.xml", "127.0.0.86", "200"),
    ("uac_sdp_no_s_line.xml", "127.0.0.87", "200"),
    ("uac_sdp_trailing_spaces.xml", "127.0.0.88", "200"),
    # A SIP-I gateway's SDP beside an ISUP part it marks optional.
    ("uac_sdp_multipart_isup.xml", "127.0.0.94", "200"),
    # SIPx's media listens on IPv4 only: an IPv6-only offer is refused cleanly.
    ("uac_sdp_ipv6.xml", "127.0.0.89", "488"),
])
def test_odd_sdps_are_answered_or_refused_cleanly(sipx, tmp_path, scenario, ip, expected):
    run, _ = call(sipx, tmp_path, ip, scenario)
    assert run.returncode == 0, run.errors + run.stderr
    assert f"FINAL {expected}" in run.logs, run.logs


def test_an_answer_keeps_the_offers_time_and_unusable_keys_or_dispositions_are_refused(sipx):
    """Hand-written INVITEs to the echo test: an offer with NTP times in `t=` is answered with
    the same `t=` (RFC 3264 §6); a crypto line whose key lives 1 packet is refused (RFC 4568
    §6.1: 488, nothing else offered); an SDP body marked `render` is not a session
    description (RFC 3261 §20.11: 415). Address 127.0.0.251."""
    ip = "127.0.0.251"
    host, port = sip_addr(sipx)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 0))
    sock.settimeout(10)
    me = sock.getsockname()[1]
    key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"

    def invite(n, profile, lines, extra=""):
        sdp = (f"v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\n{lines[0]}\r\n"
               f"m=audio 40000 {profile} 0\r\n" + "".join(f"{l}\r\n" for l in lines[1:]))
        call_id, tag = f"t{n}-{time.monotonic_ns()}@{ip}", f"tag{n}"
        head = (f"sip:echo@{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {ip}:{me};branch=z9hG4bKt{n}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:a@{ip}>;tag={tag}\r\nTo: <sip:echo@{host}>\r\n"
                f"Call-ID: {call_id}\r\n")
        sock.sendto((f"INVITE {head}CSeq: 1 INVITE\r\nContact: <sip:a@{ip}:{me}>\r\n{extra}"
                     f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode(),
                    (host, port))
        while True:
            text = sock.recv(65535).decode(errors="replace")
            if not (text.startswith("SIP/2.0 ") and call_id in text and "CSeq: 1 INVITE" in text):
                continue  # the last call's BYE answered, or a request
            status = int(text.split(" ", 2)[1])
            if status >= 200:
                break
        to = re.search(r"^To: (.*)$", text, re.M).group(1).strip()
        end = head.replace(f"To: <sip:echo@{host}>", f"To: {to}")
        sock.sendto(f"ACK {end}CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n".encode(), (host, port))
        if status == 200:
            sock.sendto(f"BYE {end}CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n".encode(), (host, port))
        return status, text

    try:
        status, answer = invite(1, "RTP/AVP", ["t=3034423619 3042462419"])
        assert status == 200 and "\r\nt=3034423619 3042462419\r\n" in answer, answer
        status, answer = invite(2, "RTP/SAVP", ["t=0 0", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^0"])
        assert status == 488 and "Warning: 399" in answer, answer
        # The same key living 2^31 packets is taken.
        status, answer = invite(3, "RTP/SAVP", ["t=0 0", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^31"])
        assert status == 200 and "a=crypto:1 AES_CM_128_HMAC_SHA1_80" in answer, answer
        status, answer = invite(4, "RTP/AVP", ["t=0 0"], "Content-Disposition: render\r\n")
        assert status == 415, answer
        status, answer = invite(5, "RTP/AVP", ["t=0 0"], "Content-Disposition: session;handling=required\r\n")
        assert status == 200, answer
    finally:
        sock.close()


def test_srtp_required_refuses_plain_rtp_with_488_and_a_warning(data_dir, tmp_path):
    s = echo_server(data_dir, SIPX_MEDIA__SRTP="required")
    try:
        run, _ = call(s, tmp_path, "127.0.0.90", "uac_plain_rtp_offer.xml")
        assert run.returncode == 0, run.errors + run.stderr
        assert "FINAL 488" in run.logs, run.logs
        refused = logged(s, "call refused: media")
        assert refused and "SRTP" in refused[0]["rejection"], refused
    finally:
        s.stop()


@pytest.mark.parametrize("codec, rate, ip", [("pcmu", 8000, "127.0.0.91"), ("g722", 16000, "127.0.0.92")])
def test_baresip_srtp_call_is_encrypted_and_the_tone_comes_back(sipx, tmp_path, audio, codec, rate, ip):
    host, port = sip_addr(sipx, "udp")
    source = {8000: audio.tone1000_8k, 16000: audio.tone1000_16k}[rate]
    peer = Baresip(tmp_path / "bare", ip, source, mediaenc="srtp-mand", codecs=(codec,))
    # baresip sends from the wildcard address (127.0.0.1 on loopback): match SIPx's RTP ports.
    with Capture(tmp_path / "srtp.pcap", "udp portrange 31000-31999") as cap:
        with peer:
            peer.dial(f"sip:echo@{host}:{port}")
            threading.Event().wait(2.5)  # media time: nothing to wait for but the clock
            peer.hangup()
    media.assert_no_cleartext_rtp(cap.pcap, min_streams=2)
    # What baresip heard is its own tone, back through SIPx's decoder, jitter buffer and encoder.
    tone = media.tone_check(peer.recording("dec"), 1000)
    assert tone.band_ratio >= 0.9 and tone.active_s >= 1.0, tone
    negotiated = logged(sipx, "call media negotiated")
    assert negotiated and negotiated[0]["codec"].lower() == codec and negotiated[0]["srtp"], negotiated


def test_baresip_opus_call_gets_its_tone_back(sipx, tmp_path, audio):
    host, port = sip_addr(sipx, "udp")
    # baresip 1.0 offers opus/48000/2 and cannot resample its file source: 48 kHz stereo it is.
    peer = Baresip(tmp_path / "bare", "127.0.0.93", audio.tone1000_48k_stereo, codecs=("opus/48000/2",))
    with Capture(tmp_path / "opus.pcap", "host 127.0.0.93 or udp portrange 31000-31999") as cap:
        with peer:
            peer.dial(f"sip:echo@{host}:{port}")
            threading.Event().wait(2.5)  # media time: nothing to wait for but the clock
            peer.hangup()
    offer, answer = media.call_sdps(cap.pcap, "127.0.0.93")
    pt = re.search(r"a=rtpmap:(\d+) opus/48000/2", offer).group(1)
    # Its fmtp (stereo=1;sprop-stereo=1) needs nothing of SIPx: mono is what every Opus decoder
    # takes, and SIPx decodes stereo to mono.
    assert f"a=fmtp:{pt} stereo=1;sprop-stereo=1" in offer, offer
    assert re.search(rf"m=audio \d+ RTP/AVP {pt} ", answer) and f"a=rtpmap:{pt} opus/48000/2" in answer, answer
    negotiated = logged(sipx, "call media negotiated")
    assert [(e["codec"], e["payload_type"]) for e in negotiated] == [("opus", int(pt))], negotiated
    # From SIPx's ports: Opus only; perhaps a few packets to the SDP's address before SIPx
    # latched on to the one baresip sends from (127.0.0.1), then the echo.
    sent = [st for st in media.media_streams(cap.pcap) if st.key.startswith("127.0.0.1:31")]
    assert all(set(st.payload_types) == {pt} for st in sent), sent
    assert any(st.key.split("->")[1].startswith("127.0.0.1:") and st.packets >= 100 for st in sent), sent
    # What baresip decoded is its own tone, through SIPx's Opus decoder, jitter buffer and encoder.
    tone = media.tone_check(peer.recording("dec"), 1000)
    assert tone.band_ratio >= 0.9 and tone.active_s >= 1.5, tone


def test_a_stranger_spraying_the_rtp_ports_gets_no_audio_and_plays_none(sipx, tmp_path, audio):
    """RTP bleed: once SIPx knows where the caller sends from, packets from anywhere else that
    prove nothing (no SRTP, not the caller's SSRC) are dropped, and SIPx keeps sending to the
    caller. baresip sends from 127.0.0.1 while its SDP says 127.0.0.98, so SIPx has to latch:
    the NAT case, where the first packet decides."""
    host, port = sip_addr(sipx, "udp")
    peer = Baresip(tmp_path / "bare", "127.0.0.98", audio.tone1000_8k, codecs=("pcmu",))
    payload = pathlib.Path(audio["tone600_8k.ulaw"]).read_bytes()[:160]
    heard = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spray, peer:
        spray.bind(("127.0.0.99", 0))
        spray.setblocking(False)
        peer.dial(f"sip:echo@{host}:{port}")
        sipx.wait_log(lambda e: e.get("message") == "media latched to the address the peer sends from")
        # Two seconds of a 600 Hz tone from one stream at every even port of SIPx's range,
        # each 20 ms, as an attacker who does not know the port would send it.
        for seq in range(100):
            header = struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 0x5CA1AB1E)
            for rtp_port in range(31000, 32000, 2):
                spray.sendto(header + payload, ("127.0.0.1", rtp_port))
            with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                while True:
                    heard.append(spray.recvfrom(2048))
            time.sleep(0.02)  # the stream's pace, not a wait for anything
        peer.hangup()
    assert heard == [], heard[:3]
    back = media.tone_check(peer.recording("dec"), 1000)
    assert back.band_ratio >= 0.9 and back.active_s >= 1.5, back
    assert media.tone_check(peer.recording("dec"), 600).band_ratio < 0.01
    dropped = logged(sipx, "media from an address that is not the peer's dropped")
    assert dropped and dropped[0]["addr"].startswith("127.0.0.99:"), dropped
    # The ended leg's count reaches /metrics (once the media thread has removed it, polled):
    # the 100 packets aimed at its port.
    deadline, count = time.monotonic() + 5, None
    while count is None and time.monotonic() < deadline:
        metrics = requests.get(sipx.url("/metrics"), timeout=5).text
        count = re.search(r"^sipx_media_foreign_packets_total (\d+)", metrics, re.M)
    assert count and int(count.group(1)) == 100, metrics[-2000:]


# Linux's socket option for nanosecond arrival stamps (Python names only the microsecond one).
SO_TIMESTAMPNS = 35


class SdesCaller:
    """A caller written by hand: one UDP socket for SIP and one for SRTP, from `ip`, offering
    PCMU under AES_CM_128_HMAC_SHA1_80 with its own key. It keeps the rollover counter of what
    it sends, so its sequence can be made to wrap within a test."""

    def __init__(self, ip, target):
        self.ip, self.target = ip, target
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind((ip, 0))
        self.rtp.bind((ip, 0))
        self.sip.settimeout(5)
        self.rtp.setblocking(False)
        # The kernel stamps each datagram's arrival (SO_TIMESTAMPNS): reads come in batches.
        self.rtp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.inline = sdes.new_inline()
        self.ours, self.theirs = sdes.SrtpContext(self.inline), None
        self.call_id, self.tag, self.to_tag, self.cseq = f"sdes-{time.monotonic_ns()}", "c1", "", 0
        self.seq, self.roc, self.ts, self.remote = 65_536 - 50, 0, 0, None
        self.received = []  # (arrival, SRTP packet)
        self.stamps = []  # the kernel's arrival time of each, in seconds

    def close(self):
        self.sip.close()
        self.rtp.close()

    def _request(self, method, cseq, body=""):
        port = self.sip.getsockname()[1]
        to_tag = f";tag={self.to_tag}" if self.to_tag else ""
        kind = "Content-Type: application/sdp\r\n" if body else ""
        msg = (f"{method} sip:echo@{self.target[0]}:{self.target[1]} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {self.ip}:{port};branch=z9hG4bK{time.monotonic_ns():x};rport\r\n"
               f"Max-Forwards: 70\r\nTo: <sip:echo@{self.target[0]}>{to_tag}\r\n"
               f"From: <sip:caller@{self.ip}>;tag={self.tag}\r\nCall-ID: {self.call_id}\r\n"
               f"CSeq: {cseq} {method}\r\nContact: <sip:caller@{self.ip}:{port}>\r\n{kind}"
               f"Content-Length: {len(body)}\r\n\r\n{body}")
        self.sip.sendto(msg.encode(), self.target)

    def invite(self, version, extra=""):
        """INVITE (or re-INVITE) and its ACK; returns SIPx's answer."""
        self.cseq += 1
        rtp_port = self.rtp.getsockname()[1]
        self._request("INVITE", self.cseq,
                      f"v=0\r\no=caller 7 {version} IN IP4 {self.ip}\r\ns=-\r\nc=IN IP4 {self.ip}\r\nt=0 0\r\n"
                      f"m=audio {rtp_port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
                      f"a=crypto:1 {sdes.SUITE} inline:{self.inline}\r\n{extra}a=sendrecv\r\n")
        while True:
            text = self.sip.recv(65535).decode()
            if f"CSeq: {self.cseq} INVITE" in text and not text.startswith("SIP/2.0 1"):
                break
        assert text.startswith("SIP/2.0 200"), text
        self.to_tag = re.search(r"^To:.*;tag=([^;\s]+)", text, re.M | re.I).group(1)
        self._request("ACK", self.cseq)
        answer = text.partition("\r\n\r\n")[2]
        self.theirs = sdes.SrtpContext(re.search(rf"a=crypto:1 {sdes.SUITE} inline:([^|\s]+)", answer).group(1))
        host = re.search(r"^c=IN IP4 (\S+)", answer, re.M).group(1)
        self.remote = (host, int(re.search(r"^m=audio (\d+)", answer, re.M).group(1)))
        return answer

    def send_tone(self, frames, payloads):
        """`frames` packets of the tone at the stream's pace, keeping what comes back."""
        for _ in range(frames):
            header = struct.pack("!BBHII", 0x80, 0, self.seq, self.ts, 0x5DE5CA11)
            self.rtp.sendto(self.ours.protect(header + next(payloads), self.roc), self.remote)
            self.seq, self.ts = (self.seq + 1) & 0xFFFF, self.ts + 160
            self.roc += self.seq == 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    data, ancillary, _, _ = self.rtp.recvmsg(2048, 64)
                    self.received.append((time.monotonic(), data))
                    self.stamps.append(next(
                        (sec + nsec / 1e9 for level, kind, value in ancillary
                         if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS
                         for sec, nsec in [struct.unpack("qq", value[:16])]), None))
            time.sleep(0.02)  # the stream's pace, not a wait for anything

    def bye(self):
        self.cseq += 1
        self._request("BYE", self.cseq)


def test_an_srtp_call_renegotiated_after_the_callers_sequence_wrapped_keeps_its_audio(sipx, audio):
    """A crypto context lives as long as its key (RFC 3711 §3.3.1, RFC 4568 §7.1.4). The caller's
    sequence wraps, so its rollover counter is 1; then a re-INVITE keeps the key but asks for
    30 ms packets, which makes SIPx set up the call's media anew. SIPx must still verify the
    caller's packets and echo the tone, under its own unchanged context."""
    tone = pathlib.Path(audio["tone1000_8k.ulaw"]).read_bytes()
    payloads = (tone[i:i + 160] for i in range(0, len(tone) - 160, 160))
    caller = SdesCaller("127.0.0.199", sip_addr(sipx, "udp"))
    try:
        caller.invite(1)
        caller.send_tone(100, payloads)  # wraps after 50
        assert caller.roc == 1
        caller.invite(2, "a=ptime:30\r\n")
        renegotiated = time.monotonic()
        caller.send_tone(100, payloads)
        caller.bye()
    finally:
        caller.close()
    after = [p for at, p in caller.received if at > renegotiated + 0.3]
    assert len(after) >= 40, len(caller.received)
    plain = [caller.theirs.unprotect(p, 0) for p in after]
    assert None not in plain, f"{plain.count(None)} of SIPx's packets do not verify"
    assert {len(p) for p in plain} == {12 + 240}, "SIPx sends 30 ms packets as asked"
    # ... evenly spaced, not 20 and 40 ms apart in turn on its 20 ms tick.
    arrivals = [k for (at, _), k in zip(caller.received, caller.stamps) if at > renegotiated + 0.3]
    gaps = np.diff(arrivals) * 1000
    assert np.mean(np.abs(gaps - 30) <= 7) >= 0.7, np.round(gaps).tolist()
    pcm = media.G711_TABLES[0][np.frombuffer(b"".join(p[12:] for p in plain), dtype=np.uint8)]
    wav = pathlib.Path(sipx.data_dir) / "back.wav"
    media.write_wav(wav, 8000, pcm)
    back = media.tone_check(wav, 1000)
    assert back.band_ratio >= 0.9 and back.active_s >= 1.0, back
    # Nothing of the caller's was refused: the count reaches /metrics once the leg is gone.
    deadline, refused = time.monotonic() + 5, None
    while refused is None and time.monotonic() < deadline:
        metrics = requests.get(sipx.url("/metrics"), timeout=5).text
        refused = re.search(r'^sipx_media_dropped_total\{reason="srtp_authentication"\} (\d+)', metrics, re.M)
    assert refused and int(refused.group(1)) == 0, metrics[-3000:]
