"""The SRTP policy of a trunk or a SIP account overrides the server's (`media.srtp`, here the
default `allowed`) for the calls that come through it, checked on the wire: what sipp and baresip
get answered, and whether their media is encrypted. Addresses 127.0.0.100-109 belong to these
tests."""

import itertools
import threading

import requests

import media
from conftest import auth_header, create_app, sip_addr
from media import Baresip, Capture, run_sipp_call
from test_media_echo import echo_server, logged


def api(server, creds, method, path, body):
    """One API call; it answers once the SIP core has reloaded trunks and policies after it."""
    r = requests.request(method, server.url(path), headers=auth_header(*creds), json=body, timeout=5)
    assert r.status_code in (200, 201), r.text
    return r.json()


CALLS = itertools.count()


def sipp_call(server, tmp_path, ip, scenario, *args):
    # A folder per run: the outcome is read from the sipp logs found in it.
    workdir = tmp_path / f"sipp-{next(CALLS)}"
    run = run_sipp_call(scenario, workdir, ip, sip_addr(server, "udp"), "-s", "echo", *args)
    assert run.returncode == 0, run.errors + run.stderr
    return run


def test_trunk_requiring_srtp_refuses_plain_rtp_that_the_server_allows(data_dir, tmp_path):
    s = echo_server(data_dir)
    try:
        creds = create_app(s)[:2]
        trunk = api(s, creds, "POST", "/v1/trunks", {"name": "Carrier", "srtp": "required",
                                                    "inbound": {"allowed_cidrs": ["127.0.0.100/32"]}})
        # Through the trunk: refused, its policy named in the log.
        assert sipp_call(s, tmp_path, "127.0.0.100", "uac_plain_rtp_offer.xml").final_status() == 488
        refused = logged(s, "call refused: media")
        assert len(refused) == 1 and refused[0]["origin"] == f"trunk:{trunk['id']}" \
            and refused[0]["srtp"] == "required" and "SRTP" in refused[0]["rejection"], refused
        # The same offer from elsewhere: the server's policy, answered.
        assert sipp_call(s, tmp_path, "127.0.0.101", "uac_plain_rtp_offer.xml").final_status() == 200
        answered = logged(s, "call answered by the echo test")
        assert [(e["origin"], e["srtp"]) for e in answered] == [("unknown", "allowed")], answered
        # Back to the server's policy (null): the trunk's calls are answered too.
        api(s, creds, "PATCH", f"/v1/trunks/{trunk['id']}", {"srtp": None})
        assert sipp_call(s, tmp_path, "127.0.0.100", "uac_plain_rtp_offer.xml").final_status() == 200
        assert logged(s, "call answered by the echo test")[-1]["srtp"] == "allowed"
    finally:
        s.stop()


def register(server, tmp_path, ip, user, password):
    """sipp registers `user` from ip:5060, the address its calls then come from."""
    csv = tmp_path / f"{user}.csv"
    csv.write_text(f"SEQUENTIAL\n{user};sipx.test;[authentication username={user} password={password}]\n")
    run = run_sipp_call("register_auth.xml", tmp_path / f"reg-{ip}", ip, sip_addr(server, "udp"), "-inf", str(csv),
                        "-set", "expires", "300")
    assert run.returncode == 0, run.stdout[-2000:] + run.errors


def test_account_with_srtp_disabled_refuses_savp_and_answers_sdes_in_avp_without_crypto(data_dir, tmp_path):
    audio = media.make_audio()
    s = echo_server(data_dir)
    try:
        creds = create_app(s)[:2]
        for user in ("plainsipp", "plainbare"):
            api(s, creds, "POST", "/v1/sip-accounts", {"username": user, "password": "plain-pass-1",
                                                       "srtp": "disabled"})

        # sipp, registered as plainsipp, offers RTP/SAVP only: nothing plain to fall back to.
        register(s, tmp_path, "127.0.0.102", "plainsipp", "plain-pass-1")
        run = sipp_call(s, tmp_path, "127.0.0.102", "uac_sdp_multi_crypto.xml")
        assert run.final_status() == 488, run.logs
        refused = logged(s, "call refused: media")
        assert [(e["origin"], e["srtp"]) for e in refused] == [("account:plainsipp", "disabled")], refused
        # Unregistered, the same offer gets the server's policy and an SRTP answer.
        run = sipp_call(s, tmp_path, "127.0.0.103", "uac_sdp_multi_crypto.xml")
        assert run.final_status() == 200, run.logs

        # baresip, registered as plainbare, offers best-effort SRTP (RTP/AVP with crypto lines):
        # answered in plain RTP, which it then speaks; its tone still comes back.
        host, port = sip_addr(s, "udp")
        line = (f"<sip:plainbare@127.0.0.104>;auth_pass=plain-pass-1;outbound=\"sip:{host}:{port};transport=udp\";"
                "regint=300;audio_codecs=pcmu;mediaenc=srtp;answermode=auto")
        peer = Baresip(tmp_path / "bare", "127.0.0.104", audio.tone1000_8k, account=line)
        with Capture(tmp_path / "bare.pcap", "host 127.0.0.104 or udp portrange 31000-31999") as cap:
            with peer:
                s.wait_log(lambda e: e.get("message") == "registration" and e.get("username") == "plainbare", 10)
                peer.dial(f"sip:echo@{host}:{port}")
                threading.Event().wait(2.0)  # media time: nothing to wait for but the clock
                peer.hangup()
        answered = logged(s, "call answered by the echo test")[-1]
        assert (answered["origin"], answered["srtp"]) == ("account:plainbare", "disabled"), answered
        offer, answer = media.call_sdps(cap.pcap, "127.0.0.104")
        assert "RTP/AVP" in offer and "a=crypto:" in offer, offer
        assert "m=audio" in answer and "RTP/AVP" in answer and "a=crypto" not in answer, answer
        streams = media.media_streams(cap.pcap)
        assert len(streams) >= 2 and all(st.cleartext for st in streams), streams
        tone = media.tone_check(peer.recording("dec"), 1000)
        assert tone.band_ratio >= 0.9 and tone.active_s >= 1.0, tone
    finally:
        s.stop()
