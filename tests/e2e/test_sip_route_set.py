"""In-dialog requests follow the route set (RFC 3261 §12.2.1.1): a proxy that record-routes a
call on an address other than the one it sends from gets SIPx's BYE (and, on a dial-out, its
ACK) there, with the Route header. Without a route set they go to the peer's Contact (an SBC
cluster's other node), unless the peer is behind NAT (its Via names another address than the
one it sends from): then back where its messages came from. Addresses 127.0.0.182-185 belong
here."""

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


class ContactElsewhere(Phone):
    """A phone (an SBC cluster's node) whose INVITE names another node in its Contact; `via`
    overrides the sent-by its Via names (a NATed phone's inside address)."""

    def __init__(self, ip, target, contact, via=None):
        super().__init__(ip, target)
        self.contact, self.via = contact, via

    def head(self, method, uri, branch, tag, to, call_id, cseq, extra):
        text = super().head(method, uri, branch, tag, to, call_id, cseq, extra)
        text = text.replace(f"Contact: <sip:4915100@{self.ip}:{self.port}>", f"Contact: <{self.contact}>")
        if self.via:
            text = text.replace(f"Via: SIP/2.0/UDP {self.ip}:{self.port};", f"Via: SIP/2.0/UDP {self.via};")
        return text


def test_without_a_route_set_sipx_hangs_up_at_the_callers_contact(server):
    """The INVITE comes from one node (.182), its Contact names another (.185:5094): SIPx's BYE
    goes to the Contact (RFC 3261 §12.2.1.1), where it used to go back to the sender."""
    creds, _ = setup(server, "127.0.0.182", called("300", "cluster"))
    node = listener("127.0.0.185", 5094)
    phone = ContactElsewhere("127.0.0.182", sip_addr(server), "sip:4915100@127.0.0.185:5094")
    try:
        dialog, _, call = confirmed_call(server, creds, phone)
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        bye = next_request(node, "BYE")
        assert header(bye, "Call-ID") == dialog[0] and bye.startswith("BYE sip:4915100@127.0.0.185:5094 "), bye
        wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the call ended")
    finally:
        phone.close()
        node.close()


def test_a_caller_behind_nat_is_hung_up_where_it_sends_from(server):
    """A phone whose Via names an inside address (10.0.0.5:5060, no rport answer needed) and a
    Contact there: that Contact is no way to it, so the BYE goes back where it sends from."""
    creds, _ = setup(server, "127.0.0.182", called("300", "natted"))
    phone = ContactElsewhere("127.0.0.182", sip_addr(server), "sip:4915100@10.0.0.5:5060", via="10.0.0.5:5060")
    try:
        dialog, _, call = confirmed_call(server, creds, phone)
        api(server, creds, "DELETE", f"/v1/calls/{call['id']}", expect=202)
        bye = phone.wait_bye(dialog[0])
        assert bye.startswith("BYE sip:4915100@10.0.0.5:5060 "), bye
    finally:
        phone.close()


def test_a_dial_out_acks_and_hangs_up_at_the_callees_contact(server):
    """A SIP URI dialled straight: the 200 comes from .184:5096 and names .185:5098 in its
    Contact (a B2BUA's other node). The ACK and the BYE go to the Contact."""
    from raw_ua import RawUa

    creds = create_app(server)
    host, sip_port = sip_addr(server)
    ua = RawUa(f"{host}:{sip_port}", user="node", via=(host, sip_port), bind=("127.0.0.184", 5096),
               contact="sip:node@127.0.0.185:5098")
    node = listener("127.0.0.185", 5098)
    try:
        created = api(server, creds, "POST", "/v1/calls", {
            "to": "sip:callee@127.0.0.184:5096", "room": {"name": "b2bua"}}, expect=201).json()
        _, _, _, invite = ua.receive("INVITE ")
        body = ("v=0\r\no=n 1 1 IN IP4 127.0.0.184\r\ns=-\r\nc=IN IP4 127.0.0.184\r\nt=0 0\r\n"
                "m=audio 40230 RTP/AVP 0\r\n")
        ua.answer(invite, "200 OK", f"Contact: <sip:node@127.0.0.185:5098>\r\nContent-Type: application/sdp\r\n\r\n{body}")
        ack = next_request(node, "ACK")
        assert ack.startswith("ACK sip:node@127.0.0.185:5098 "), ack
        wait_any_call(server, creds, lambda c: c["id"] == created["id"] and c["state"] == "CONFIRMED",
                      "the dial-out confirmed")
        api(server, creds, "DELETE", f"/v1/calls/{created['id']}", expect=202)
        bye = next_request(node, "BYE")
        assert header(bye, "Call-ID") == header(invite, "Call-ID"), bye
    finally:
        ua.close()
        node.close()


def test_a_bye_ends_the_retransmissions_of_a_2xx_waiting_for_its_ack(server):
    """An offerless re-INVITE: SIPx's 200 carries its offer and waits for the ACK, going again
    at T1, 2·T1, … (RFC 3261 §13.3.1.4). The phone hangs up instead: after the BYE's 200 the
    re-INVITE's 200 goes no more (it used to go on for 32 s)."""
    import time

    from test_calls_phone_transfer import send_in_dialog, status_of

    creds, _ = setup(server, "127.0.0.182", called("300", "reinvite-bye"))
    phone = Phone("127.0.0.182", sip_addr(server))
    try:
        dialog, answer, call = confirmed_call(server, creds, phone)
        reinvite = send_in_dialog(phone, "INVITE", dialog, answer, "", cseq=2)
        seen = []
        while status_of(reinvite, seen) != 200:
            seen.append(phone.sock.recv(65535).decode(errors="replace"))
        bye = send_in_dialog(phone, "BYE", dialog, answer, "", cseq=3)
        while status_of(bye, seen) != 200:
            seen.append(phone.sock.recv(65535).decode(errors="replace"))
        # Absence has no event to wait for: listen past the next two retransmission times.
        phone.sock.settimeout(0.2)
        later, deadline = [], time.monotonic() + 2.2
        while time.monotonic() < deadline:
            try:
                later.append(phone.sock.recv(65535).decode(errors="replace"))
            except OSError:
                pass
        again = [m for m in later if m.startswith("SIP/2.0 200") and f"branch={reinvite}" in m]
        assert not again, again
        wait_call(server, creds, lambda c: c["id"] == call["id"] and c["done"], "the call ended")
    finally:
        phone.close()
