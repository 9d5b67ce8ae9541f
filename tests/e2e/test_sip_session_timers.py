"""RFC 4028 session timers on calls SIPx answers, with sipp as the caller: the 200 says the
interval and who refreshes; a caller that does not refresh gets a BYE before the interval
ends; a caller that refreshes by UPDATE keeps its call; a caller that asks SIPx to refresh gets
UPDATEs half-way through each interval, or re-INVITEs when the caller does not take UPDATE;
too short an interval gets 422 with SIPx's Min-SE. And on calls SIPx dials out, with sipp as
the phone: the INVITE offers a timer, a 422 raises it, and the phone's 200 decides who
refreshes, and how.
SIPx runs with `sip.session_min_se_secs` at 5 so that intervals of seconds can be tested.
Addresses 127.0.0.120-129 and 127.0.0.47-49 belong here."""

import datetime
import re
import socket
import time

import pytest

from conftest import SIP_ENV, Server, create_app, sip_addr
from media import run_sipp_call
from rooms import wait_until
from test_media_echo import echo_server, logged


@pytest.fixture
def sipx(data_dir):
    s = echo_server(data_dir, SIPX_SIP__SESSION_MIN_SE_SECS="5")
    yield s
    s.stop()


def sipp(server, tmp_path, ip, scenario, *args, timeout=40):
    run = run_sipp_call(scenario, tmp_path / ip, ip, sip_addr(server, "udp"), "-s", "echo", *args,
                        timeout=timeout)
    assert run.returncode == 0, run.errors + run.stderr + run.logs
    return run


def session_expires(run):
    """The Session-Expires values sipp saw, in order."""
    return [line.split(" ", 1)[1] for line in run.logs.splitlines() if line.startswith("SESSION-EXPIRES ")]


def ended(server):
    """The calls' ends SIPx logged, once it has logged one: a call's end is logged a moment
    after the last SIP message of it a test sees."""
    found = wait_until(lambda: logged(server, "call ended"), timeout=10, what="a call's end logged")
    return [(e["reason"], e["duration_s"]) for e in found]


def test_a_timer_nobody_refreshes_ends_the_call_before_the_interval(sipx, tmp_path):
    started = time.monotonic()
    run = sipp(sipx, tmp_path, "127.0.0.120", "uac_session_timer_expires.xml", "-set", "se", "6")
    took = time.monotonic() - started
    assert "FINAL 200" in run.logs and "BYE RECEIVED" in run.logs, run.logs
    assert session_expires(run) == ["6;refresher=uac"], run.logs
    # The BYE comes at 6 s less min(32, 6/3): 4 s after the answer, not at once, not after 6.
    assert 3.5 <= took < 6, took
    assert [reason for reason, _ in ended(sipx)] == ["session timer expired"], ended(sipx)


def test_refreshes_by_update_keep_the_call_past_its_interval(sipx, tmp_path):
    run = sipp(sipx, tmp_path, "127.0.0.121", "uac_session_timer_refreshes.xml", "-set", "se", "6")
    assert session_expires(run) == ["6;refresher=uac"] * 4, run.logs
    # 12 s in all, twice the interval, ended by the caller.
    [(reason, seconds)] = ended(sipx)
    assert reason == "caller hung up" and seconds >= 12, ended(sipx)


def test_sipx_refreshes_by_update_when_asked(sipx, tmp_path):
    run = sipp(sipx, tmp_path, "127.0.0.122", "uac_session_timer_sipx_refreshes.xml", "-set", "se", "6")
    assert run.logs.count("UPDATE RECEIVED") == 2, run.logs
    assert session_expires(run) == ["6;refresher=uas", "6;refresher=uac", "6;refresher=uac"], run.logs
    # The UPDATEs came at 3 s and 6 s: the caller hung up after the second.
    [(reason, seconds)] = ended(sipx)
    assert reason == "caller hung up" and seconds >= 6, ended(sipx)


def traced(text, start):
    """The SIP messages, bodies included, of a sipp -trace_msg log that begin with `start`
    (each is logged after a line of dashes and a line saying where it went or came from)."""
    blocks = re.split(r"^-{20,}.*$", text, flags=re.M)
    messages = [b.strip().split("\n", 1)[-1].strip() for b in blocks]
    return [m for m in messages if m.startswith(start)]


def traced_times(workdir, scenario, start):
    """When each traced message of a sipp run beginning with `start` was sent or received."""
    stem = scenario.removesuffix(".xml")
    text = "".join(p.read_text(errors="replace") for p in workdir.glob(f"{stem}_*_messages.log"))
    return traced_times_in(text, start)


def traced_times_in(text, start):
    """When each message of a sipp -trace_msg log beginning with `start` was sent or received
    (seconds, from the date on the line of dashes before it)."""
    parts = re.split(r"^-{20,} (\S+ \S+)$", text, flags=re.M)
    times = []
    for stamp, block in zip(parts[1::2], parts[2::2]):
        if block.strip().split("\n", 1)[-1].strip().startswith(start):
            times.append(datetime.datetime.fromisoformat(stamp).timestamp())
    return times


def traced_messages(workdir, scenario, start):
    stem = scenario.removesuffix(".xml")
    text = "".join(p.read_text(errors="replace") for p in workdir.glob(f"{stem}_*_messages.log"))
    return traced(text, start)


def sdp_line(message, prefix):
    return next(line.strip() for line in message.splitlines() if line.strip().startswith(prefix))


def test_sipx_refreshes_by_reinvite_a_caller_without_update(sipx, tmp_path):
    scenario = "uac_session_timer_sipx_reinvites.xml"
    run = sipp(sipx, tmp_path, "127.0.0.129", scenario, "-set", "se", "8", "-trace_msg")
    assert "LAST ACK RECEIVED" in run.logs, run.logs
    assert session_expires(run) == ["8;refresher=uas"] + ["8;refresher=uac"] * 3, run.logs
    [(reason, seconds)] = ended(sipx)
    # Re-INVITEs at 4 s (491), 4 to 6 s (the retry) and 4 s after it; the caller hung up after
    # the last.
    assert reason == "caller hung up" and seconds >= 8, ended(sipx)
    workdir = tmp_path / "127.0.0.129"
    # The caller generated the Call-ID, so SIPx retries within 0 to 2 s of the 491 (RFC 3261
    # §14.1), not in the 2.1 to 4 s kept for the caller: the two would cross again.
    [refused] = traced_times(workdir, scenario, "SIP/2.0 491")
    retried = [t for t in traced_times(workdir, scenario, "INVITE sip:sipp@") if t > refused]
    assert retried and retried[0] - refused <= 2.2, (refused, retried)
    # SIPx's answer to the call (sipp's own 200s answer CSeq 2 and later).
    [answer] = [m for m in traced_messages(workdir, scenario, "SIP/2.0 200") if "CSeq: 1 INVITE" in m]
    reinvites = traced_messages(workdir, scenario, "INVITE sip:sipp@")
    assert len(reinvites) == 3, reinvites
    for reinvite in reinvites:
        # The session as it stands: the same origin and version, port and codec.
        for prefix in ("o=", "m=audio", "c="):
            assert sdp_line(reinvite, prefix) == sdp_line(answer, prefix), (reinvite, answer)
        assert "UPDATE" not in reinvite.split("Allow:", 1)[0], reinvite
    cseqs = [int(sdp_line(r, "CSeq:").split()[1]) for r in reinvites]
    assert cseqs == sorted(set(cseqs)), cseqs


@pytest.mark.parametrize("late_answer", [487, 200])
def test_a_refresh_the_caller_answers_after_hanging_up_is_acknowledged(sipx, late_answer):
    """The caller hangs up while SIPx's re-INVITE waits, then answers it, as RFC 3261 §15.1.2
    asks (487) or too late (200): the 487 gets its ACK in the INVITE's transaction, the 200
    its own ACK and then a BYE (§13.2.2.4), not silence."""
    from test_calls_phone_transfer import send_in_dialog, status_of
    from test_calls_replaces import Phone, header, ok_for
    ip = "127.0.0.49"
    phone = Phone(ip, sip_addr(sipx, "udp"))
    try:
        status, dialog, answer = phone.invite(
            "echo", "Allow: INVITE, ACK, BYE, CANCEL\r\nSupported: timer\r\nSession-Expires: 6;refresher=uas\r\n")
        assert status == 200 and "6;refresher=uas" in header(answer, "Session-Expires"), answer
        reinvite, source = receive(phone.sock, "INVITE")
        branch = send_in_dialog(phone, "BYE", dialog, answer, "", 2)
        # Read, not answered: SIPx's re-INVITE must stay pending.
        seen = []
        for _ in range(20):
            seen.append(phone.sock.recv(65535).decode(errors="replace"))
            if status_of(branch, seen) is not None:
                break
        assert status_of(branch, seen) == 200, seen
        late = ok_for(reinvite).decode()
        if late_answer == 487:
            late = late.replace("SIP/2.0 200 OK", "SIP/2.0 487 Request Terminated")
        else:
            body = f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\n"
            late = late.replace("Content-Length: 0\r\n\r\n", f"Contact: <sip:4915100@{ip}:{phone.port}>\r\n"
                                f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}")
        phone.sock.sendto(late.encode(), source)
        ack, _ = receive(phone.sock, "ACK")
        assert header(ack, "CSeq") == header(reinvite, "CSeq").replace("INVITE", "ACK"), ack
        same_branch = header(ack, "Via") == header(reinvite, "Via")
        assert same_branch == (late_answer == 487), (ack, reinvite)
        if late_answer == 200:
            bye, _ = receive(phone.sock, "BYE")
            assert header(bye, "Call-ID") == dialog[0], bye
    finally:
        phone.close()
    assert [reason for reason, _ in ended(sipx)] == ["caller hung up"], ended(sipx)


def test_too_short_an_interval_gets_422_with_min_se(sipx, tmp_path):
    run = sipp(sipx, tmp_path, "127.0.0.123", "uac_session_timer_expires.xml", "-set", "se", "3")
    assert "FINAL 422 Min-SE 5" in run.logs, run.logs
    assert not logged(sipx, "call answered by the echo test")


def test_the_bye_of_a_call_ended_before_its_ack_waits_for_the_ack(sipx, tmp_path):
    """RFC 3261 §15: the 5 s timer ends the call at 3.3 s, while sipp holds its ACK until
    4.5 s; the BYE must wait for the ACK (one during the pause fails the scenario)."""
    run = sipp(sipx, tmp_path, "127.0.0.124", "uac_session_timer_late_ack.xml", "-set", "se", "5")
    assert "FINAL 200" in run.logs and "BYE RECEIVED" in run.logs, run.logs
    assert [reason for reason, _ in ended(sipx)] == ["session timer expired"], ended(sipx)


@pytest.fixture
def dialer(data_dir):
    """SIPx with the rooms, offering a 6 s session timer on its dial-outs."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__SESSION_MIN_SE_SECS": "5",
                              "SIPX_SIP__SESSION_EXPIRES_SECS": "6"}).start()
    yield s
    s.stop()


def dial(server, creds, to):
    from test_calls_dialout import api
    return api(server, creds, "POST", "/v1/calls", {"to": to, "room": {"name": "timers"}}, expect=201).json()


def dial_until_the_phone_hangs_up(server, tmp_path, ip, number, scenario, lasts=20):
    """Dials a sipp phone on ip:5060 playing `scenario` to its end, which is its hang-up
    within `lasts` seconds; returns every SIP message the phone saw."""
    from test_calls_dialout import sipp_uas, wait_state
    creds = create_app(server)[:2]
    with sipp_uas(tmp_path, ip, scenario) as uas:
        created = dial(server, creds, f"sip:{number}@{ip}:5060")
        wait_state(server, creds, created["id"], "CONFIRMED", timeout=10)
        assert uas.wait(lasts) == 0, (tmp_path / f"sipp-{ip}-errors.log").read_text()
    ended = wait_state(server, creds, created["id"], "DISCONNECTED", timeout=10)
    assert ended["end"]["cause"] == "remote_hangup", ended
    return (tmp_path / f"sipp-{ip}-messages.log").read_text()


def test_a_dial_out_offers_a_timer_takes_a_422_and_refreshes_when_the_phone_says_so(dialer, tmp_path):
    # Two UPDATEs, 4 s apart, then the phone hangs up: the scenario fails on anything else.
    messages = dial_until_the_phone_hangs_up(dialer, tmp_path, "127.0.0.125", "+4930555",
                                             "uas_session_timer_sipx_refreshes.xml")
    invites = [m for m in messages.split("\n\n") if m.lstrip().startswith("INVITE ")]
    assert len(invites) == 2, messages[:3000]
    assert "Session-Expires: 6;refresher=uas" in invites[0] and "Min-SE: 5" in invites[0], invites[0]
    assert "Session-Expires: 8;refresher=uas" in invites[1] and "Min-SE: 8" in invites[1], invites[1]
    updates = [m for m in messages.split("\n\n") if m.lstrip().startswith("UPDATE ")]
    assert len(updates) == 2 and all("Session-Expires: 8;refresher=uac" in u and "Min-SE: 8" in u
                                     for u in updates), updates


def test_a_dial_out_refreshes_by_reinvite_a_phone_without_update(dialer, tmp_path):
    # Two re-INVITEs, 3 s apart, each acknowledged, then the phone hangs up: the scenario
    # fails on anything else.
    messages = dial_until_the_phone_hangs_up(dialer, tmp_path, "127.0.0.47", "+4930558",
                                             "uas_session_timer_sipx_reinvites.xml")
    invites = traced(messages, "INVITE ")
    assert len(invites) == 3, messages[:3000]
    first, refreshes = invites[0], invites[1:]
    for refresh in refreshes:
        assert "Session-Expires: 6;refresher=uac" in refresh, refresh
        for prefix in ("o=", "m=audio"):
            assert sdp_line(refresh, prefix) == sdp_line(first, prefix), (refresh, first)
    assert len(traced(messages, "ACK ")) == 3, messages


@pytest.fixture
def slow_dialer(data_dir):
    """SIPx offering a 30 s session timer on its dial-outs: room for a 491's whole wait
    between its refresh (15 s) and the moment the phone would give up (20 s)."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__SESSION_MIN_SE_SECS": "5",
                              "SIPX_SIP__SESSION_EXPIRES_SECS": "30"}).start()
    yield s
    s.stop()


def test_a_dial_outs_refresh_that_meets_a_491_goes_again_2_1_to_4_s_later(slow_dialer, tmp_path):
    """SIPx dialled out, so it generated the Call-ID: after a 491 it waits 2.1 to 4 s (RFC 3261
    §14.1), leaving 0 to 2 s to the phone, whose own request crossed SIPx's. (With less time
    left before the phone gives up, the retry comes sooner: session_timer's unit tests.)"""
    ip = "127.0.0.237"
    scenario = "uas_session_timer_sipx_reinvite_glare.xml"
    messages = dial_until_the_phone_hangs_up(slow_dialer, tmp_path, ip, "+4930559", scenario, lasts=35)
    assert len(traced(messages, "INVITE ")) == 3, messages[:3000]
    log = (tmp_path / f"sipp-{ip}-messages.log").read_text()
    times = traced_times_in(log, "SIP/2.0 491")
    assert len(times) == 1, log[:3000]
    retried = [t for t in traced_times_in(log, "INVITE ") if t > times[0]]
    assert retried and 2.1 <= retried[0] - times[0] <= 4.3, (times, retried)


def receive(sock, method):
    """The next `method` request on `sock` (others are ignored), with its source."""
    for _ in range(50):
        text, source = sock.recvfrom(65535)
        text = text.decode(errors="replace")
        if text.startswith(f"{method} "):
            return text, source
    raise AssertionError(f"no {method}")


@pytest.fixture
def quick_dialer(data_dir):
    """SIPx offering a 20 s timer on its dial-outs, with T1 at 50 ms: its transactions end
    (Timer M, 64 x T1) long before a refresh is due."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__SESSION_MIN_SE_SECS": "5",
                              "SIPX_SIP__SESSION_EXPIRES_SECS": "20", "SIPX_SIP__T1_MS": "50"}).start()
    yield s
    s.stop()


def test_a_retransmitted_2xx_to_our_refreshing_reinvite_is_acknowledged_again(quick_dialer):
    """A phone whose ACKs were lost sends its 2xx again: each copy gets the same ACK (RFC 3261
    §13.2.2.4), within the transaction and after it ended, and the re-INVITE is not sent
    again."""
    from test_calls_dialout import wait_state
    from test_calls_replaces import header, ok_for
    server = quick_dialer
    creds = create_app(server)[:2]
    ip = "127.0.0.48"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ip, 5060))
    sock.settimeout(15)
    body = (f"v=0\r\no=- 7 7 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
            "m=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

    def answered(request, to_tag=""):
        ok = ok_for(request).decode()
        if to_tag:
            to = header(request, "To")
            ok = ok.replace(f"To: {to}\r\n", f"To: {to};tag={to_tag}\r\n")
        return ok.replace("Content-Length: 0\r\n\r\n",
                          f"Contact: <sip:phone@{ip}:5060>\r\nAllow: INVITE, ACK, BYE, CANCEL\r\n"
                          "Require: timer\r\nSession-Expires: 20;refresher=uac\r\n"
                          f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()

    try:
        created = dial(server, creds, f"sip:+4930559@{ip}:5060")
        invite, source = receive(sock, "INVITE")
        sock.sendto(answered(invite, to_tag="ph1"), source)
        receive(sock, "ACK")
        wait_state(server, creds, created["id"], "CONFIRMED", timeout=10)
        reinvite, source = receive(sock, "INVITE")
        assert "Session-Expires: 20;refresher=uac" in reinvite and "o=" in reinvite, reinvite
        ok = answered(reinvite)
        sock.sendto(ok, source)
        first, _ = receive(sock, "ACK")
        sock.sendto(ok, source)
        again, _ = receive(sock, "ACK")
        # Past Timer M (3.2 s here) the transaction is gone: the 2xx is acknowledged all the same.
        time.sleep(4)
        sock.sendto(ok, source)
        stale, _ = receive(sock, "ACK")
        assert header(first, "CSeq") == header(reinvite, "CSeq").replace("INVITE", "ACK")
        assert first == again == stale, (first, again, stale)
        # The next refresh comes half an interval after the 2xx, not at once.
        sock.settimeout(3)
        with pytest.raises(TimeoutError):
            receive(sock, "INVITE")
    finally:
        sock.close()
    api_hang_up(server, creds, created["id"])


def api_hang_up(server, creds, call_id):
    from test_calls_dialout import api, wait_state
    api(server, creds, "DELETE", f"/v1/calls/{call_id}", expect=202)
    wait_state(server, creds, call_id, "DISCONNECTED", timeout=40)


def test_a_dial_out_whose_phone_never_refreshes_ends_session_expired(dialer, tmp_path):
    from test_calls_dialout import sipp_uas, wait_state
    creds = create_app(dialer)[:2]
    with sipp_uas(tmp_path, "127.0.0.126", "uas_session_timer_peer_silent.xml") as uas:
        created = dial(dialer, creds, "sip:+4930556@127.0.0.126:5060")
        wait_state(dialer, creds, created["id"], "CONFIRMED", timeout=10)
        answered = time.monotonic()
        assert uas.wait(15) == 0, (tmp_path / "sipp-127.0.0.126-errors.log").read_text()
        took = time.monotonic() - answered
    ended = wait_state(dialer, creds, created["id"], "DISCONNECTED", timeout=10)
    # 6 s less min(32, 6/3): the BYE about 4 s after the answer, not at once, not after 6.
    assert 3 <= took < 6, took
    assert ended["end"]["cause"] == "session_expired" and ended["history"][-1]["code"] == 408, ended


def test_a_caller_hanging_up_before_its_ack_while_our_bye_waits_gets_200(sipx, tmp_path):
    """The timer ends the call at 3.3 s while the caller holds its ACK; at 4.5 s the caller
    sends BYE instead: the dialog is still its own, so 200, and SIPx's own BYE is dropped."""
    run = sipp(sipx, tmp_path, "127.0.0.127", "uac_session_timer_bye_before_ack.xml", "-set", "se", "5")
    assert "BYE ANSWERED 200" in run.logs, run.logs
    assert [reason for reason, _ in ended(sipx)] == ["session timer expired"], ended(sipx)


def test_a_422_crossing_our_cancel_does_not_dial_the_phone_again(dialer, tmp_path):
    from test_calls_dialout import api, sipp_uas, wait_state
    import rooms
    creds = create_app(dialer)[:2]
    messages = tmp_path / "sipp-127.0.0.128-messages.log"
    with sipp_uas(tmp_path, "127.0.0.128", "uas_422_after_cancel.xml") as uas:
        created = dial(dialer, creds, "sip:+4930557@127.0.0.128:5060")
        rooms.wait_until(lambda: messages.exists() and "SIP/2.0 100 Trying" in messages.read_text(),
                         timeout=10, what="the phone's 100")
        api(dialer, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        # The 422 is acknowledged and no new INVITE follows: the scenario fails on one.
        assert uas.wait(15) == 0, (tmp_path / "sipp-127.0.0.128-errors.log").read_text()
    ended = wait_state(dialer, creds, created["id"], "DISCONNECTED", timeout=5)
    assert ended["end"]["cause"] == "local_hangup", ended
    assert messages.read_text().count("INVITE sip:") == 1
