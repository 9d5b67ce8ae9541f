#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! The transaction state machines, driven with simulated time: no sockets, no clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipx_sip::msg::{HasHeaders, Method, Request, SipMessage, parse_datagram};
use sipx_sip::{Endpoint, EndpointConfig, Event, FlowId, Output, Peer, Transport};

const T1: Duration = Duration::from_millis(500);

fn peer(transport: Transport) -> Peer {
    Peer {
        transport,
        flow: FlowId(1),
        addr: "127.0.0.1:5070".parse::<SocketAddr>().unwrap(),
    }
}

fn request(method: &str, branch: &str, extra: &str) -> Vec<u8> {
    format!(
        "{method} sip:sipx.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5070;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:sipx.test>{extra}\r\n\
         From: <sip:caller@10.0.0.1>;tag=from1\r\n\
         Call-ID: call-1\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A request of ours, to send in a client transaction.
fn outgoing(method: &str, branch: &str) -> Request {
    match parse_datagram(&request(method, branch, "")).unwrap() {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

/// Drains outputs: (transmitted messages, events).
fn drain(ep: &mut Endpoint) -> (Vec<SipMessage>, Vec<Event>) {
    let mut tx = Vec::new();
    let mut ev = Vec::new();
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit(t) => tx.push(parse_datagram(&t.bytes).unwrap()),
            Output::Event(e) => ev.push(e),
        }
    }
    (tx, ev)
}

fn to_tag(m: &SipMessage) -> Option<String> {
    match m {
        SipMessage::Response(r) => r.tag_of_to().map(str::to_owned),
        SipMessage::Request(r) => r.tag_of_to().map(str::to_owned),
    }
}

fn status(m: &SipMessage) -> u16 {
    match m {
        SipMessage::Response(r) => r.status,
        SipMessage::Request(_) => 0,
    }
}

fn the_request(ev: &[Event]) -> (sipx_sip::ServerTxnId, Request) {
    ev.iter()
        .find_map(|e| match e {
            Event::Request { txn, request, .. } => Some((*txn, request.clone())),
            _ => None,
        })
        .expect("a request event")
}

/// Runs timers until `until`, returning the times of retransmitted messages.
fn run_timers(ep: &mut Endpoint, from: Instant, until: Instant) -> (Vec<Duration>, Vec<Event>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        if at > until {
            break;
        }
        ep.handle_timeout(at);
        let (tx, ev) = drain(ep);
        sent.extend(tx.iter().map(|_| at - from));
        events.extend(ev);
    }
    (sent, events)
}

#[test]
fn non_invite_server_answers_retransmissions_and_expires() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(
        t0,
        peer(Transport::Udp),
        &request("OPTIONS", "z9hG4bKa", ""),
    );
    let (tx, ev) = drain(&mut ep);
    assert!(tx.is_empty());
    let (txn, req) = the_request(&ev);
    // rport and received were filled in from the real source.
    let via = req.top_via().unwrap();
    assert_eq!(via.param("rport"), Some(Some("5070")));
    assert_eq!(via.param("received"), Some(Some("127.0.0.1")));

    ep.respond(t0, txn, req.response(200, Some("totag")));
    let (tx, _) = drain(&mut ep);
    assert_eq!(status(&tx[0]), 200);
    // A retransmitted request gets the same answer, and no new event.
    ep.handle_datagram(
        t0 + T1,
        peer(Transport::Udp),
        &request("OPTIONS", "z9hG4bKa", ""),
    );
    let (tx, ev) = drain(&mut ep);
    assert_eq!(tx.len(), 1);
    assert_eq!(status(&tx[0]), 200);
    assert!(ev.is_empty());
    // Timer J: gone after 64*T1.
    run_timers(&mut ep, t0, t0 + 64 * T1);
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn invite_error_answer_is_retransmitted_until_ack() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(t0, peer(Transport::Udp), &request("INVITE", "z9hG4bKi", ""));
    let (tx, ev) = drain(&mut ep);
    assert_eq!(status(&tx[0]), 100, "100 Trying at once");
    let (txn, req) = the_request(&ev);
    ep.respond(t0, txn, req.response(486, Some("t")));
    drain(&mut ep);
    // Timer G: T1, 2T1, 4T1, then capped at T2 = 4 s.
    let (sent, _) = run_timers(&mut ep, t0, t0 + Duration::from_millis(7600));
    assert_eq!(
        sent,
        [500, 1500, 3500, 7500].map(Duration::from_millis).to_vec()
    );
    // The ACK (same branch) stops it; Timer I then ends the transaction.
    ep.handle_datagram(
        t0 + Duration::from_secs(8),
        peer(Transport::Udp),
        &request("ACK", "z9hG4bKi", ";tag=t"),
    );
    let (tx, ev) = drain(&mut ep);
    assert!(
        tx.is_empty() && ev.is_empty(),
        "ACK absorbed by the transaction"
    );
    let (sent, _) = run_timers(&mut ep, t0, t0 + Duration::from_secs(20));
    assert!(sent.is_empty());
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn invite_2xx_is_retransmitted_until_the_end_to_end_ack() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(t0, peer(Transport::Udp), &request("INVITE", "z9hG4bKj", ""));
    let (_, ev) = drain(&mut ep);
    let (txn, req) = the_request(&ev);
    ep.respond(t0, txn, req.response(200, Some("t")));
    drain(&mut ep);
    let (sent, _) = run_timers(&mut ep, t0, t0 + Duration::from_millis(1600));
    assert_eq!(sent, [500, 1500].map(Duration::from_millis).to_vec());
    // Retransmitted INVITE is absorbed in Accepted (RFC 6026).
    ep.handle_datagram(
        t0 + Duration::from_millis(1700),
        peer(Transport::Udp),
        &request("INVITE", "z9hG4bKj", ""),
    );
    let (tx, ev) = drain(&mut ep);
    assert!(tx.is_empty() && ev.is_empty());
    // The ACK of a 2xx has its own branch; it reaches the TU once and stops retransmissions.
    for _ in 0..2 {
        ep.handle_datagram(
            t0 + Duration::from_secs(2),
            peer(Transport::Udp),
            &request("ACK", "z9hG4bKack", ";tag=t"),
        );
    }
    let (_, ev) = drain(&mut ep);
    assert_eq!(
        ev.iter().filter(|e| matches!(e, Event::Ack { .. })).count(),
        1
    );
    // It names the INVITE transaction it acknowledges.
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Ack { acked: Some(t), .. } if *t == txn))
    );
    let (sent, ev) = run_timers(&mut ep, t0, t0 + Duration::from_secs(40));
    assert!(sent.is_empty());
    assert!(!ev.iter().any(|e| matches!(e, Event::AckTimeout { .. })));
}

#[test]
fn unacknowledged_2xx_reports_ack_timeout() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(t0, peer(Transport::Udp), &request("INVITE", "z9hG4bKk", ""));
    let (_, ev) = drain(&mut ep);
    let (txn, req) = the_request(&ev);
    ep.respond(t0, txn, req.response(200, Some("t")));
    drain(&mut ep);
    let (sent, ev) = run_timers(&mut ep, t0, t0 + Duration::from_secs(40));
    assert!(sent.len() >= 7);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::AckTimeout { txn: t } if *t == txn))
    );
}

#[test]
fn cancel_matches_the_invite_or_gets_481() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(t0, peer(Transport::Udp), &request("INVITE", "z9hG4bKc", ""));
    let (_, ev) = drain(&mut ep);
    let (invite, req) = the_request(&ev);
    ep.respond(t0, invite, req.response(180, Some("sipx-tag")));
    drain(&mut ep);
    ep.handle_datagram(t0, peer(Transport::Udp), &request("CANCEL", "z9hG4bKc", ""));
    let (tx, ev) = drain(&mut ep);
    assert_eq!(status(&tx[0]), 200);
    // Tagged as the INVITE's answers are (RFC 3261 §8.2.6.2, §9.2).
    assert_eq!(to_tag(&tx[0]).as_deref(), Some("sipx-tag"));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Cancelled { invite: i } if *i == invite))
    );
    ep.handle_datagram(
        t0,
        peer(Transport::Udp),
        &request("CANCEL", "z9hG4bKnone", ""),
    );
    let (tx, _) = drain(&mut ep);
    assert_eq!(status(&tx[0]), 481);
    assert!(to_tag(&tx[0]).is_some());
}

#[test]
fn merged_request_gets_482() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(
        t0,
        peer(Transport::Udp),
        &request("OPTIONS", "z9hG4bKm1", ""),
    );
    drain(&mut ep);
    ep.handle_datagram(
        t0,
        peer(Transport::Udp),
        &request("OPTIONS", "z9hG4bKm2", ""),
    );
    let (tx, ev) = drain(&mut ep);
    assert_eq!(status(&tx[0]), 482);
    assert!(ev.is_empty());
}

#[test]
fn a_retransmitted_request_answered_statelessly_gets_the_same_answer_again() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let register = request("REGISTER", "z9hG4bKs1", "");
    ep.handle_datagram(t0, peer(Transport::Udp), &register);
    let (_, ev) = drain(&mut ep);
    let (txn, req) = the_request(&ev);
    let mut challenge = req.response(401, Some("first"));
    challenge
        .headers
        .push("WWW-Authenticate", "Digest nonce=\"n1\"".to_owned());
    ep.respond_stateless(t0, txn, challenge);
    // (bytes sent, events)
    let outputs = |ep: &mut Endpoint| {
        let (mut sent, mut events) = (Vec::new(), Vec::new());
        while let Some(o) = ep.poll_output() {
            match o {
                Output::Transmit(t) => sent.push(t.bytes),
                Output::Event(e) => events.push(e),
            }
        }
        (sent, events)
    };
    let (first, _) = outputs(&mut ep);
    assert_eq!(first.len(), 1);
    assert_eq!(ep.transaction_count(), 0, "no transaction is kept");
    // The retransmission gets the very same bytes (same nonce, same tag), and no event.
    ep.handle_datagram(t0 + T1, peer(Transport::Udp), &register);
    let (again, events) = outputs(&mut ep);
    assert_eq!(again, first);
    assert!(events.is_empty(), "{events:?}");
    // After Timer J (64·T1) it would have been a new transaction: it is a new request.
    ep.handle_datagram(t0 + 64 * T1, peer(Transport::Udp), &register);
    let (sent, events) = outputs(&mut ep);
    assert!(sent.is_empty());
    assert_eq!(events.len(), 1, "a new request reaches the TU");
}

#[test]
fn a_reused_branch_or_a_stream_is_not_answered_from_memory() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let answer = |ep: &mut Endpoint, bytes: &[u8], transport| {
        ep.handle_datagram(t0, peer(transport), bytes);
        let (tx, ev) = drain(ep);
        assert!(tx.is_empty());
        let (txn, req) = the_request(&ev);
        ep.respond_stateless(t0, txn, req.response(401, Some("t")));
        drain(ep);
    };
    let first = request("REGISTER", "z9hG4bKr1", "");
    answer(&mut ep, &first, Transport::Udp);
    // The same branch on the next REGISTER (CSeq 2, with credentials): a new request.
    let next = String::from_utf8(first.clone())
        .unwrap()
        .replace("CSeq: 1 REGISTER", "CSeq: 2 REGISTER");
    ep.handle_datagram(t0, peer(Transport::Udp), next.as_bytes());
    let (tx, ev) = drain(&mut ep);
    assert!(tx.is_empty());
    assert_eq!(ev.len(), 1);
    // Over a stream nothing is retransmitted: the same request again is new.
    let tcp = request("REGISTER", "z9hG4bKt1", "");
    answer(&mut ep, &tcp, Transport::Tcp);
    ep.handle_datagram(t0, peer(Transport::Tcp), &tcp);
    let (tx, ev) = drain(&mut ep);
    assert!(tx.is_empty());
    assert_eq!(ev.len(), 1);
}

#[test]
fn register_is_never_treated_as_merged() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    for branch in ["z9hG4bKr1", "z9hG4bKr2"] {
        ep.handle_datagram(t0, peer(Transport::Udp), &request("REGISTER", branch, ""));
    }
    let (tx, ev) = drain(&mut ep);
    assert!(tx.is_empty(), "no 482");
    assert_eq!(ev.len(), 2, "both reach the registrar");
}

#[test]
fn client_non_invite_retransmits_then_times_out() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let req = outgoing("OPTIONS", "z9hG4bKc1");
    let txn = ep.send_request(t0, peer(Transport::Udp), req);
    drain(&mut ep);
    let (sent, ev) = run_timers(&mut ep, t0, t0 + 64 * T1);
    // Timer E: 0.5, 1.5, 3.5, 7.5, then every 4 s; Timer F at 32 s.
    assert_eq!(
        &sent[..4],
        &[500, 1500, 3500, 7500].map(Duration::from_millis)
    );
    assert!(
        sent.windows(2)
            .skip(3)
            .all(|w| w[1] - w[0] == Duration::from_secs(4))
    );
    assert!(matches!(ev.as_slice(), [Event::ClientTimeout { txn: t }] if *t == txn));
    assert_eq!(ep.transaction_count(), 0);
}

#[test]
fn a_ringing_invite_waits_past_timer_b_for_its_final_answer() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKring");
    let txn = ep.send_request(t0, peer(Transport::Udp), req.clone());
    drain(&mut ep);
    let ringing = req.response(180, Some("callee")).to_bytes();
    ep.handle_datagram(t0 + T1 / 2, peer(Transport::Udp), &ringing);
    drain(&mut ep);
    // Five minutes of ringing: no retransmission, no timeout (Timer B stopped at the 180).
    let (sent, ev) = run_timers(&mut ep, t0, t0 + Duration::from_secs(300));
    assert!(sent.is_empty() && ev.is_empty(), "{sent:?} {ev:?}");
    let answer = req.response(200, Some("callee")).to_bytes();
    ep.handle_datagram(t0 + Duration::from_secs(300), peer(Transport::Udp), &answer);
    let (_, ev) = drain(&mut ep);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Response { txn: t, response, .. } if *t == txn && response.status == 200)),
        "{ev:?}"
    );
    // A UAS that rings and then never answers at all is given up on in the end.
    let req = outgoing("INVITE", "z9hG4bKmute");
    let t1 = t0 + Duration::from_secs(400);
    let txn = ep.send_request(t1, peer(Transport::Udp), req.clone());
    ep.handle_datagram(
        t1,
        peer(Transport::Udp),
        &req.response(180, Some("c")).to_bytes(),
    );
    drain(&mut ep);
    let (_, ev) = run_timers(&mut ep, t1, t1 + Duration::from_secs(3600));
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ClientTimeout { txn: t } if *t == txn)),
        "{ev:?}"
    );
}

#[test]
fn client_invite_acks_error_answers_once_per_retransmission() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let req = outgoing("INVITE", "z9hG4bKci");
    ep.send_request(t0, peer(Transport::Udp), req.clone());
    drain(&mut ep);
    let busy = req.response(486, Some("callee")).to_bytes();
    ep.handle_datagram(t0, peer(Transport::Udp), &busy);
    let (tx, ev) = drain(&mut ep);
    let SipMessage::Request(ack) = &tx[0] else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKci"));
    assert_eq!(ack.to().unwrap().tag(), Some("callee"));
    assert_eq!(ev.len(), 1);
    ep.handle_datagram(t0, peer(Transport::Udp), &busy);
    let (tx, ev) = drain(&mut ep);
    assert_eq!(tx.len(), 1, "ACK resent for the retransmitted 486");
    assert!(ev.is_empty(), "the TU hears of the 486 once");
}

#[test]
fn malformed_requests_get_400_with_the_reason() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let bad = String::from_utf8(request("OPTIONS", "z9hG4bKb", ""))
        .unwrap()
        .replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE");
    ep.handle_datagram(Instant::now(), peer(Transport::Udp), bad.as_bytes());
    let (tx, ev) = drain(&mut ep);
    let SipMessage::Response(r) = &tx[0] else {
        panic!()
    };
    assert_eq!(r.status, 400);
    assert_eq!(r.reason, "CSeq method does not match the Request-Line");
    // Even a 400 tags the To (RFC 3261 §8.2.6.2), with the same tag for a retransmission.
    let to = r.headers.get("To").unwrap();
    assert!(to.contains(";tag="), "{to}");
    assert!(matches!(ev[0], Event::Malformed { .. }));
    ep.handle_datagram(Instant::now(), peer(Transport::Udp), bad.as_bytes());
    let (again, _) = drain(&mut ep);
    let SipMessage::Response(again) = &again[0] else {
        panic!()
    };
    assert_eq!(again.headers.get("To"), Some(to));
}

#[test]
fn a_malformed_ack_is_dropped_unanswered() {
    // No ACK is ever answered (RFC 3261 §17): not even a 400 for a bad one.
    let mut ep = Endpoint::new(EndpointConfig::default());
    let bad = String::from_utf8(request("ACK", "z9hG4bKa", ""))
        .unwrap()
        .replace("CSeq: 1 ACK", "CSeq: 1 INVITE");
    ep.handle_datagram(Instant::now(), peer(Transport::Udp), bad.as_bytes());
    let (tx, ev) = drain(&mut ep);
    assert!(tx.is_empty(), "{tx:?}");
    assert!(matches!(ev[0], Event::Malformed { .. }));
}

#[test]
fn reliable_transports_do_not_retransmit() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(t0, peer(Transport::Tcp), &request("INVITE", "z9hG4bKt", ""));
    let (_, ev) = drain(&mut ep);
    let (txn, req) = the_request(&ev);
    ep.respond(t0, txn, req.response(603, Some("t")));
    drain(&mut ep);
    let (sent, _) = run_timers(&mut ep, t0, t0 + Duration::from_secs(10));
    assert!(sent.is_empty());
}

#[test]
fn a_2xx_is_retransmitted_over_a_stream_too() {
    // The 2xx is end to end (RFC 3261 §13.3.1.4): a proxy past the TCP hop may use UDP, so
    // it goes again until the ACK whatever the transport, unlike a non-2xx answer.
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    ep.handle_datagram(t0, peer(Transport::Tcp), &request("INVITE", "z9hG4bKs", ""));
    let (_, ev) = drain(&mut ep);
    let (txn, req) = the_request(&ev);
    ep.respond(t0, txn, req.response(200, Some("t")));
    drain(&mut ep);
    let (sent, _) = run_timers(&mut ep, t0, t0 + Duration::from_millis(3600));
    assert_eq!(sent, [500, 1500, 3500].map(Duration::from_millis).to_vec());
    ep.handle_datagram(
        t0 + Duration::from_secs(4),
        peer(Transport::Tcp),
        &request("ACK", "z9hG4bKsack", ";tag=t"),
    );
    drain(&mut ep);
    let (sent, _) = run_timers(
        &mut ep,
        t0 + Duration::from_secs(4),
        t0 + Duration::from_secs(40),
    );
    assert!(sent.is_empty());
}

#[test]
fn a_response_with_two_vias_is_not_ours_to_act_on() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let req = outgoing("OPTIONS", "z9hG4bKv1");
    ep.send_request(t0, peer(Transport::Udp), req.clone());
    drain(&mut ep);
    let two_vias = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKv1\r\n\
         Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKother\r\nTo: <sip:sipx.test>;tag=t\r\n\
         From: <sip:caller@10.0.0.1>;tag=from1\r\nCall-ID: call-1\r\nCSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n";
    ep.handle_datagram(t0, peer(Transport::Udp), two_vias.as_bytes());
    let (_, ev) = drain(&mut ep);
    assert!(ev.is_empty(), "{ev:?}");
    // The one-Via answer is taken.
    let one_via = two_vias.replace("Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKother\r\n", "");
    ep.handle_datagram(t0, peer(Transport::Udp), one_via.as_bytes());
    let (_, ev) = drain(&mut ep);
    assert!(matches!(ev.as_slice(), [Event::Response { .. }]), "{ev:?}");
}

#[test]
fn udp_responses_go_to_the_via_port_unless_rport_or_nat_says_otherwise() {
    let from = |port: u16| Peer {
        transport: Transport::Udp,
        flow: FlowId(1),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let options = |via: &str, branch: &str| {
        format!(
            "OPTIONS sip:sipx.test SIP/2.0\r\nVia: SIP/2.0/UDP {via};branch={branch}\r\n\
             Max-Forwards: 70\r\nTo: <sip:sipx.test>\r\nFrom: <sip:c@127.0.0.1>;tag=f\r\n\
             Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let answered_at = |via: &str, branch: &str| {
        let mut ep = Endpoint::new(EndpointConfig::default());
        let t0 = Instant::now();
        ep.handle_datagram(t0, from(40000), options(via, branch).as_bytes());
        let (txn, req, reach) = {
            let mut found = None;
            while let Some(o) = ep.poll_output() {
                if let Output::Event(Event::Request { txn, request, peer }) = o {
                    found = Some((txn, request, peer.addr.port()));
                }
            }
            found.expect("the request")
        };
        ep.respond(t0, txn, req.response(200, Some("t")));
        let mut dest = None;
        while let Some(o) = ep.poll_output() {
            if let Output::Transmit(t) = o {
                dest = Some(t.peer.addr.port());
            }
        }
        // The TU reaches the requester where its responses go (its BYE, a call to it).
        assert_eq!(dest, Some(reach));
        reach
    };
    // RFC 3261 §18.2.2: the sent-by port.
    assert_eq!(answered_at("127.0.0.1:5999", "z9hG4bKp1"), 5999);
    assert_eq!(answered_at("127.0.0.1", "z9hG4bKp2"), 5060);
    // RFC 3581: the source port.
    assert_eq!(answered_at("127.0.0.1:5999;rport", "z9hG4bKp3"), 40000);
    // A private sent-by (NAT): back to the source, where the NAT's mapping is.
    assert_eq!(answered_at("10.0.0.7:5060", "z9hG4bKp4"), 40000);
    // Port 0 reaches nobody: the source.
    assert_eq!(answered_at("127.0.0.1:0", "z9hG4bKp5"), 40000);
}

#[test]
fn a_400_for_a_malformed_request_says_where_it_came_from() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let bad = "OPTIONS sip:[::1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKbad;rport\r\n\
               Max-Forwards: 70\r\nTo: <sip:sipx.test>\r\nFrom: <sip:c@10.0.0.1>;tag=f\r\n\
               Call-ID: bad\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    ep.handle_datagram(t0, peer(Transport::Udp), bad.as_bytes());
    let (tx, _) = drain(&mut ep);
    let [SipMessage::Response(r)] = tx.as_slice() else {
        panic!("{tx:?}");
    };
    assert_eq!(r.status, 400);
    let via = r.headers.get("Via").unwrap();
    assert!(
        via.contains("received=127.0.0.1") && via.contains("rport=5070"),
        "{via}"
    );
}

#[test]
fn the_100_trying_carries_the_invites_timestamp() {
    let mut ep = Endpoint::new(EndpointConfig::default());
    let t0 = Instant::now();
    let invite = String::from_utf8(request("INVITE", "z9hG4bKts", ""))
        .unwrap()
        .replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nTimestamp: 54.21 0.3\r\n",
        );
    ep.handle_datagram(t0, peer(Transport::Udp), invite.as_bytes());
    let (tx, _) = drain(&mut ep);
    let SipMessage::Response(trying) = &tx[0] else {
        panic!("no response");
    };
    assert_eq!(trying.status, 100);
    assert_eq!(trying.headers.get("Timestamp"), Some("54.21 0.3"));
    // Without one in the request, there is none in the answer.
    let plain = String::from_utf8(request("INVITE", "z9hG4bKnts", ""))
        .unwrap()
        .replace("call-1", "call-2");
    ep.handle_datagram(t0, peer(Transport::Udp), plain.as_bytes());
    let (tx, _) = drain(&mut ep);
    let SipMessage::Response(trying) = &tx[0] else {
        panic!("no response");
    };
    assert_eq!(trying.status, 100);
    assert_eq!(trying.headers.get("Timestamp"), None);
}
