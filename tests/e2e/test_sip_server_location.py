"""Locating providers' servers (RFC 3263): a trunk whose host is given without a port is looked
up for SRV records first, its servers tried by priority, and one that fails (503, no answer, no
connection) gives way to the next, for calls and for registrations. The name server is real
(dnsmasq on 127.0.0.245:5399, `sip.dns_servers`), and so are the providers (sipp). The names
have no A record of their own: without SRV, nothing would be found. Addresses 127.0.0.240-249
belong here."""

import pytest

from conftest import SIP_ENV, Server, create_app
from name_server import dnsmasq
from test_calls_dialout import api, sipp_uas, tcp_accepts, wait_state
import rooms

DNS = ("127.0.0.245", 5399)
DOMAIN = "pbx.sipx.test"


def srv_records(service, primary, backup):
    """Two servers of `service` for DOMAIN: `primary` (priority 10) before `backup` (20)."""
    return dict(
        srv=[(f"{service}.{DOMAIN}", f"sbc1.{DOMAIN}", 5060, 10, 0),
             (f"{service}.{DOMAIN}", f"sbc2.{DOMAIN}", 5060, 20, 0)],
        hosts=[(f"sbc1.{DOMAIN}", primary), (f"sbc2.{DOMAIN}", backup)])


@pytest.fixture
def server(data_dir):
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__DNS_SERVERS": f'["{DNS[0]}:{DNS[1]}"]'})
    s.start()
    yield s
    s.stop()


def moves(server):
    """The calls SIPx moved to a host's next address: (failed, next, why)."""
    return [(e.get("failed"), e.get("next"), e.get("failure")) for e in server.events()
            if e.get("message") == "server failed: trying its next address"]


def place_and_hang_up(server, creds, numbers):
    """Dials `numbers` one after the other (each answered before the next), then hangs all up."""
    calls = []
    for number in numbers:
        call = api(server, creds, "POST", "/v1/calls", {"to": number, "room": {"name": "srv"}}, expect=201).json()
        calls.append(wait_state(server, creds, call["id"], "CONFIRMED", timeout=20))
    for call in calls:
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        wait_state(server, creds, call["id"], "DISCONNECTED")
    return calls


def invites(tmp_path, ip):
    path = tmp_path / f"sipp-{ip}-messages.log"
    text = path.read_text() if path.exists() else ""
    return text.count("INVITE sip:")


def test_a_call_goes_to_the_srv_backup_when_the_primary_answers_503_and_the_next_starts_there(server, tmp_path):
    creds = create_app(server)[:2]
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {"host": DOMAIN}},
                expect=201).json()
    with dnsmasq(*DNS, **srv_records("_sip._udp", "127.0.0.241", "127.0.0.242")), \
            sipp_uas(tmp_path, "127.0.0.241", "uas_reject.xml", CODE="503", REASON="Service Unavailable") as primary, \
            sipp_uas(tmp_path, "127.0.0.242", "uas_answer.xml", calls=2) as backup:
        # The second call starts at the server that works: the failed one is set aside.
        calls = place_and_hang_up(server, creds, ["+4930111", "+4930222"])
        assert [c["route"] for c in calls] == [f"trunk:{trunk['id']}"] * 2, calls
        assert primary.wait(10) == 0, "the primary saw the INVITE and answered 503"
        assert backup.wait(20) == 0
    assert moves(server) == [("127.0.0.241:5060", "127.0.0.242:5060", "Unavailable")]
    assert invites(tmp_path, "127.0.0.241") == 1
    assert invites(tmp_path, "127.0.0.242") == 2
    # The Request-URI names the domain the trunk gives, not the server it went to (RFC 3263 §4).
    log = (tmp_path / "sipp-127.0.0.242-messages.log").read_text()
    assert f"INVITE sip:+4930111@{DOMAIN} SIP/2.0" in log, log[:1500]


def test_a_registration_moves_to_the_srv_backup_when_the_primary_answers_503(server, tmp_path):
    creds = create_app(server)[:2]
    with dnsmasq(*DNS, **srv_records("_sip._udp", "127.0.0.243", "127.0.0.244")), \
            sipp_uas(tmp_path, "127.0.0.243", "uas_register_reply.xml", CODE="503", REASON="Service Unavailable"), \
            sipp_uas(tmp_path, "127.0.0.244", "uas_register_reply.xml", CODE="200", REASON="OK"):
        trunk = api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {
            "host": DOMAIN, "username": "4930123", "password": "s3cret-pass", "register": True}},
            expect=201).json()
        # The registration goes to the primary, then to the backup.
        registered = rooms.wait_until(
            lambda: (t := api(server, creds, "GET", f"/v1/trunks/{trunk['id']}", expect=200).json())
            ["registration"]["state"] == "registered" and t, timeout=30, what="trunk registered")
        assert registered["registration"]["last_status"] == 200, registered
    # Only the backup answers 200; the primary saw the first REGISTER and SIPx moved on.
    assert "REGISTER sip:" in (tmp_path / "sipp-127.0.0.243-messages.log").read_text()
    moved = [e for e in server.events() if e.get("message", "").startswith("provider server failed")]
    assert [e.get("failed") for e in moved] == ["127.0.0.243:5060"], moved


@pytest.fixture
def fast_server(data_dir):
    """Timers 10 times faster (T1 = 50 ms: a request unanswered fails in 3.2 s)."""
    s = Server(data_dir, env={**SIP_ENV, "SIPX_SIP__DNS_SERVERS": f'["{DNS[0]}:{DNS[1]}"]',
                              "SIPX_SIP__T1_MS": "50"})
    s.start()
    yield s
    s.stop()


def test_a_primary_that_never_answers_gives_way_for_registrations_and_calls(fast_server, tmp_path):
    """Nothing listens at the primary (127.0.0.246): the REGISTER times out and the trunk
    registers at the backup; its calls, sent to the same server, start at the backup too."""
    server = fast_server
    creds = create_app(server)[:2]
    with dnsmasq(*DNS, **srv_records("_sip._udp", "127.0.0.246", "127.0.0.247")):
        with sipp_uas(tmp_path, "127.0.0.247", "uas_register_reply.xml", CODE="200", REASON="OK"):
            trunk = api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {
                "host": DOMAIN, "username": "4930123", "password": "s3cret-pass", "register": True}},
                expect=201).json()
            rooms.wait_until(
                lambda: api(server, creds, "GET", f"/v1/trunks/{trunk['id']}", expect=200).json()
                ["registration"]["state"] == "registered", timeout=30, what="trunk registered at the backup")
        moved = [e for e in server.events() if e.get("message", "").startswith("provider server failed")]
        assert [e.get("failed") for e in moved] == ["127.0.0.246:5060"], moved
        with sipp_uas(tmp_path, "127.0.0.247", "uas_answer.xml") as backup:
            [answered] = place_and_hang_up(server, creds, ["+4930333"])
            assert answered["route"] == f"trunk:{trunk['id']}", answered
            assert backup.wait(20) == 0
    # Straight to the backup, where the registration is: the primary was not tried again.
    assert moves(server) == []


def test_a_call_to_a_primary_that_never_answers_goes_to_the_backup(fast_server, tmp_path):
    """A trunk that does not register: its first call's INVITE goes unanswered at the primary
    (127.0.0.248) until Timer B, then goes to the backup (127.0.0.249), where it is answered."""
    server = fast_server
    creds = create_app(server)[:2]
    api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {"host": DOMAIN}}, expect=201)
    with dnsmasq(*DNS, **srv_records("_sip._udp", "127.0.0.248", "127.0.0.249")), \
            sipp_uas(tmp_path, "127.0.0.249", "uas_answer.xml") as backup:
        place_and_hang_up(server, creds, ["+4930444"])
        assert backup.wait(20) == 0
    assert moves(server) == [("127.0.0.248:5060", "127.0.0.249:5060", "NoAnswer")]


def test_a_tcp_trunk_connects_to_the_srv_backup_when_the_primary_refuses(server, tmp_path):
    """A TCP trunk that does not register: nothing listens at the primary (127.0.0.240), so
    the connection its first call needs is refused; the call connects to the backup
    (127.0.0.242) and is answered there, and the next call uses that connection."""
    creds = create_app(server)[:2]
    api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {"host": DOMAIN, "transport": "tcp"}},
        expect=201)
    with dnsmasq(*DNS, **srv_records("_sip._tcp", "127.0.0.240", "127.0.0.242")), \
            sipp_uas(tmp_path, "127.0.0.242", "uas_answer.xml", calls=2, args=("-t", "t1")) as backup:
        rooms.wait_until(lambda: tcp_accepts(("127.0.0.242", 5060)), timeout=10, what="sipp listening on TCP")
        place_and_hang_up(server, creds, ["+4930555", "+4930666"])
        assert backup.wait(20) == 0
    assert moves(server) == [("127.0.0.240:5060", "127.0.0.242:5060", "NoConnection")]


def test_a_call_hung_up_before_any_answer_is_not_sent_to_the_next_server(fast_server, tmp_path):
    """Hung up while the primary (127.0.0.248, a socket that reads and never answers) has not
    answered at all: no CANCEL can go yet, and when Timer B ends the INVITE the call ends; it is
    not sent to the backup (127.0.0.249)."""
    import socket

    server = fast_server
    creds = create_app(server)[:2]
    api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {"host": DOMAIN}}, expect=201)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.248", 5060))
    silent.settimeout(10)
    try:
        with dnsmasq(*DNS, **srv_records("_sip._udp", "127.0.0.248", "127.0.0.249")), \
                sipp_uas(tmp_path, "127.0.0.249", "uas_answer.xml"):
            call = api(server, creds, "POST", "/v1/calls", {"to": "+4930777", "room": {"name": "srv"}},
                       expect=201).json()
            assert silent.recv(65535).startswith(b"INVITE "), "the INVITE reached the primary"
            api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
            ended = wait_state(server, creds, call["id"], "DISCONNECTED", timeout=20)
            assert "CONFIRMED" not in [h["state"] for h in ended["history"]], ended
    finally:
        silent.close()
    assert moves(server) == []
