"""In-dialog requests follow the route set (RFC 3261 §12.2.1.1): a proxy that record-routes a
call on an address other than the one it sends from gets SIPx's BYE (and, on a dial-out, its
ACK) there, with the Route header; without a route set they go back where the peer's messages
came from (a NATed phone's flow). Addresses 127.0.0.182-184 belong here."""

import socket

import rooms
from conftest import create_app, sip_addr
from test_calls_inbound import api, called, setup, wait_call
from test_calls_phone_transfer import Answerer, all_calls, wait_any_call
from test_calls_replaces import Phone, header, ok_for


def listener(ip, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ip, port))
    s.settimeout(10)
    return s


def next_request(sock, method):
    """The next `method` request on `sock`, answered 200."""
    for _ in range(50):
        text, source = sock.recvfrom(65535)
        text = text.decode(errors="replace")
        if text.startswith(f"{method} "):
            sock.sendto(ok_for(text), source)
            return text
    raise AssertionError(f"no {method}")


def test_sipx_hangs_up_through_the_proxy_that_record_routed_the_call(server):
    proxy_out, proxy_hop = "127.0.0.182", ("127.0.0.183", 5080)
    creds, _ = setup(server, proxy_out, called("300", "routed"))
    phone = Phone(proxy_out, sip_addr(server))
    hop = listener(*proxy_hop)
    try:
        status, dialog, answer = phone.invite("300", f"Record-Route: <sip:{proxy_hop[0]}:{proxy_hop[1]};lr>\r\n")
        assert status == 200, answer
        assert header(answer, "Record-Route"), answer
        call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                         "the call confirmed")
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        bye = next_request(hop, "BYE")
        assert header(bye, "Call-ID") == dialog[0], bye
        assert header(bye, "Route") == f"<sip:{proxy_hop[0]}:{proxy_hop[1]};lr>", bye
        # Loose routing: the Request-URI stays the phone's Contact.
        assert bye.startswith(f"BYE sip:4915100@{proxy_out}:{phone.port}"), bye
        wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the call ended")
    finally:
        phone.close()
        hop.close()


def test_a_dial_out_acks_and_hangs_up_through_the_proxy_that_record_routed_it(server):
    """The called side's proxy answers from its usual address but record-routes another."""
    ip, proxy_hop = "127.0.0.184", ("127.0.0.183", 5081)
    creds = create_app(server)
    trunk = api(server, creds, "POST", "/v1/trunks", {"name": "carrier", "outbound": {"host": ip, "port": 5060}},
                expect=201).json()
    phone = Answerer(ip)
    phone.record_route = f"<sip:{proxy_hop[0]}:{proxy_hop[1]};lr>"
    hop = listener(*proxy_hop)
    try:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "4930222", "room": {"name": "routed-out"}, "route": {"trunk_id": trunk["id"]}}, expect=201).json()
        phone.serve(lambda ms: any(m.startswith("INVITE ") for m in ms), "the INVITE")
        ack = next_request(hop, "ACK")
        assert header(ack, "Route") == phone.record_route, ack
        wait_any_call(server, creds, lambda c: c["id"] == created["id"] and c["state"] == "CONFIRMED",
                      "the dial-out confirmed")
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        bye = next_request(hop, "BYE")
        assert header(bye, "Route") == phone.record_route, bye
        rooms.wait_until(lambda: [c for c in all_calls(server, creds) if c["id"] == created["id"] and c["done"]],
                         what="the dial-out ended")
    finally:
        phone.close()
        hop.close()


def confirmed_call(server, creds, phone):
    """The phone's call to 300, answered and confirmed: (dialog, SIPx's 200, the call's row)."""
    status, dialog, answer = phone.invite("300")
    assert status == 200, answer
    call = wait_call(server, creds, lambda c: c["sip_call_id"] == dialog[0] and c["state"] == "CONFIRMED",
                     "the call confirmed")
    return dialog, answer, call


def test_after_a_phone_moves_sipx_follows_it(server):
    """Without a route set, requests go back where the phone's messages come from: an UPDATE
    from a new address with a new Contact (a phone that changed network) moves SIPx's BYE."""
    from test_calls_phone_transfer import send_in_dialog, status_of

    creds, _ = setup(server, "127.0.0.182", called("300", "roaming"))
    before, after = Phone("127.0.0.182", sip_addr(server)), Phone("127.0.0.182", sip_addr(server))
    try:
        dialog, answer, call = confirmed_call(server, creds, before)
        branch = send_in_dialog(after, "UPDATE", dialog, answer, "", cseq=2)
        for _ in range(20):
            text = after.sock.recv(65535).decode(errors="replace")
            if status_of(branch, [text]):
                break
        assert status_of(branch, [text]) == 200, text
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        bye = after.wait_bye(dialog[0])
        assert bye.startswith(f"BYE sip:4915100@127.0.0.182:{after.port} "), bye
    finally:
        before.close()
        after.close()


def test_a_refused_or_stranger_target_refresh_moves_nothing(server):
    """Only a target refresh that succeeds, from an address SIPx takes requests from, moves
    where the call's requests go: one refused packet, or one from elsewhere, must not."""
    import random
    import re

    creds, _ = setup(server, "127.0.0.182", called("300", "steady"))
    phone = Phone("127.0.0.182", sip_addr(server))
    same_ip, stranger = Phone("127.0.0.182", sip_addr(server)), Phone("127.0.0.184", sip_addr(server))
    try:
        dialog, answer, call = confirmed_call(server, creds, phone)
        target = re.search(r"<([^>]+)>", header(answer, "Contact")).group(1)
        to = re.sub(r";tag=[^;>\s]+", "", header(answer, "To"))
        for cseq, (ua, body, expected) in enumerate([(same_ip, "v=0\r\nbad\r\n", 488), (stranger, "", 200)], start=2):
            branch = f"z9hG4bK{random.getrandbits(48):x}"
            head = ua.head("UPDATE", target, branch, dialog[1], f"{to};tag={dialog[2]}", dialog[0], cseq, "")
            extra = "Content-Type: application/sdp\r\n" if body else ""
            ua.sock.sendto(f"{head}{extra}Content-Length: {len(body)}\r\n\r\n{body}".encode(), ua.target)
            text = ""
            while f"branch={branch}" not in text:
                text = ua.sock.recv(65535).decode(errors="replace")
            assert text.startswith(f"SIP/2.0 {expected} "), text
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        bye = phone.wait_bye(dialog[0])
        assert header(bye, "Call-ID") == dialog[0], bye
    finally:
        for ua in (phone, same_ip, stranger):
            ua.close()
