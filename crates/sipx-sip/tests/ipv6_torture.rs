#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! IPv6 in SIP messages, the cases RFC 5118 lists (its section 4), in messages written for
//! these tests: bracketed references in the Request-URI, Via, Contact and Route; a port inside
//! or outside the brackets; `received` with and without brackets; IPv4 and IPv6 hops in one
//! message; IPv4-mapped addresses; and the malformed forms (a bare IPv6 address in a URI, an
//! address with three colons in a row) that must be refused with 400.

use sipx_sip::msg::{SipMessage, Uri, Via, parse_datagram};

mod torture;
use torture::{Outcome, run};

/// A message from header lines (CRLF-joined) and a body, with its Content-Length.
fn message(start: &str, headers: &[&str], body: &str) -> Vec<u8> {
    message_text(start, headers, body).into_bytes()
}

fn message_text(start: &str, headers: &[&str], body: &str) -> String {
    let mut text = format!("{start}\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text
}

fn register(uri: &str) -> Vec<u8> {
    register_text(uri).into_bytes()
}

fn register_text(uri: &str) -> String {
    let headers = [
        "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKv6reg1",
        "Max-Forwards: 70",
        "From: <sip:gw@[2001:db8::10]>;tag=v6a",
        "To: <sip:gw@[2001:db8::10]>",
        "Call-ID: v6-register@2001:db8::9:1",
        "CSeq: 1 REGISTER",
        "Contact: \"Gateway\" <sip:gw@[2001:db8::9:1]:6060>",
    ];
    message_text(&format!("REGISTER {uri} SIP/2.0"), &headers, "")
}

fn request_uri(bytes: &[u8]) -> Uri {
    match parse_datagram(bytes).unwrap() {
        SipMessage::Request(r) => r.uri,
        SipMessage::Response(_) => panic!("a request"),
    }
}

fn sip_host_port(uri: &Uri) -> (String, Option<u16>) {
    let sip = uri.as_sip().unwrap();
    (sip.host.clone(), sip.port)
}

#[test]
fn a_register_with_ipv6_references_everywhere_is_taken() {
    let bytes = register("sip:[2001:db8::10]");
    assert_eq!(run(&bytes), Outcome::Answered(200, None));
    let SipMessage::Request(r) = parse_datagram(&bytes).unwrap() else {
        panic!("a request")
    };
    let via = Via::parse(r.headers.get("Via").unwrap()).unwrap();
    assert_eq!((via.host.as_str(), via.port), ("[2001:db8::9:1]", None));
    let contact = r.headers.get("Contact").unwrap();
    assert!(contact.contains("[2001:db8::9:1]:6060"), "{contact}");
}

#[test]
fn an_ipv6_address_without_brackets_in_a_uri_is_refused() {
    for uri in [
        "sip:2001:db8::10",
        "sip:gw@2001:db8::10",
        "sip:[2001:db8::10",
    ] {
        assert_eq!(run(&register(uri)), Outcome::Refused(400), "{uri}");
    }
    // The same in the Contact of a well-formed REGISTER: the registrar cannot use it.
    let bytes = register_text("sip:[2001:db8::10]")
        .replace("[2001:db8::9:1]:6060", "2001:db8::9:1:6060")
        .into_bytes();
    assert!(
        matches!(
            run(&bytes),
            Outcome::Answered(400, _) | Outcome::Refused(400)
        ),
        "{:?}",
        run(&bytes)
    );
}

#[test]
fn a_port_inside_the_brackets_is_part_of_the_address_and_one_outside_is_a_port() {
    // Inside: eight groups' worth of address, no port (RFC 5118 §4.3).
    let inside = register("sip:[2001:db8::10:5070]");
    assert_eq!(run(&inside), Outcome::Answered(200, None));
    assert_eq!(
        sip_host_port(&request_uri(&inside)),
        ("[2001:db8::10:5070]".to_owned(), None)
    );
    // Outside: the address and port 5070 (§4.4).
    let outside = register("sip:[2001:db8::10]:5070");
    assert_eq!(run(&outside), Outcome::Answered(200, None));
    assert_eq!(
        sip_host_port(&request_uri(&outside)),
        ("[2001:db8::10]".to_owned(), Some(5070))
    );
}

#[test]
fn received_is_taken_with_or_without_brackets() {
    for received in ["2001:db8::9:255", "[2001:db8::9:255]"] {
        let via = format!(
            "Via: SIP/2.0/UDP [2001:db8::9:1]:6050;received={received};branch=z9hG4bKv6bye"
        );
        let bytes = message(
            "BYE sip:[2001:db8::10] SIP/2.0",
            &[
                &via,
                "Max-Forwards: 70",
                "From: <sip:alice@[2001:db8::9:1]>;tag=v6b",
                "To: <sip:gw@[2001:db8::10]>;tag=v6c",
                "Call-ID: v6-bye@2001:db8::9:1",
                "CSeq: 2 BYE",
            ],
            "",
        );
        assert_eq!(run(&bytes), Outcome::Answered(200, None), "{received}");
        let parsed = Via::parse(via.trim_start_matches("Via: ")).unwrap();
        assert_eq!(
            (parsed.host.as_str(), parsed.port),
            ("[2001:db8::9:1]", Some(6050))
        );
        let got = parsed.params.iter().find(|(k, _)| k == "received");
        let address = got.and_then(|(_, v)| v.as_deref()).unwrap_or("");
        assert_eq!(
            address
                .trim_matches(['[', ']'])
                .parse::<std::net::Ipv6Addr>(),
            "2001:db8::9:255".parse::<std::net::Ipv6Addr>(),
            "{received}"
        );
    }
}

#[test]
fn ipv4_and_ipv6_hops_mix_in_one_message() {
    let bytes = message(
        "BYE sip:user@[2001:db8::10] SIP/2.0",
        &[
            "Via: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKv6mix1",
            "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKv4mix2",
            "Via: SIP/2.0/TCP [2001:db8::9:2]:5061;branch=z9hG4bKv6mix3",
            "Route: <sip:[2001:db8::20];lr>, <sip:192.0.2.30;lr>",
            "Max-Forwards: 70",
            "From: <sip:alice@192.0.2.1>;tag=v6d",
            "To: <sip:user@[2001:db8::10]>;tag=v6e",
            "Call-ID: v6-mixed@192.0.2.1",
            "CSeq: 3 BYE",
        ],
        "",
    );
    assert_eq!(run(&bytes), Outcome::Answered(200, None));
    let SipMessage::Request(r) = parse_datagram(&bytes).unwrap() else {
        panic!("a request")
    };
    let hosts: Vec<String> = r
        .headers
        .list("Via")
        .iter()
        .map(|v| Via::parse(v).unwrap().host)
        .collect();
    assert_eq!(hosts, ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:2]"]);
}

#[test]
fn ipv4_mapped_ipv6_addresses_are_addresses_like_any_other() {
    let bytes = message(
        "INVITE sip:user@[::ffff:192.0.2.10] SIP/2.0",
        &[
            "Via: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bKv6map",
            "Max-Forwards: 70",
            "From: <sip:alice@[::ffff:192.0.2.1]>;tag=v6f",
            "To: <sip:user@[::ffff:192.0.2.10]>",
            "Call-ID: v6-mapped@192.0.2.1",
            "CSeq: 1 INVITE",
            "Contact: <sip:alice@[::ffff:192.0.2.1]>",
            "Content-Type: application/sdp",
        ],
        "v=0\r\no=alice 1 1 IN IP6 ::ffff:192.0.2.1\r\ns=-\r\nc=IN IP6 ::ffff:192.0.2.1\r\n\
         t=0 0\r\nm=audio 49170 RTP/AVP 0\r\n",
    );
    assert_eq!(run(&bytes), Outcome::Answered(200, None));
    assert_eq!(
        sip_host_port(&request_uri(&bytes)),
        ("[::ffff:192.0.2.10]".to_owned(), None)
    );
}

#[test]
fn an_address_with_three_colons_in_a_row_is_refused_and_its_correct_form_taken() {
    // RFC 3261's ABNF lets `2001:db8:::192.0.2.1` through; it is no address (RFC 5118 §4.10).
    assert_eq!(
        run(&register("sip:[2001:db8:::192.0.2.1]")),
        Outcome::Refused(400)
    );
    let good = register("sip:[2001:db8::192.0.2.1]");
    assert_eq!(run(&good), Outcome::Answered(200, None));
    assert_eq!(
        sip_host_port(&request_uri(&good)),
        ("[2001:db8::192.0.2.1]".to_owned(), None)
    );
    // The same in the top Via: a response could not be sent back by it.
    let bytes = register_text("sip:[2001:db8::10]")
        .replace("[2001:db8::9:1];branch", "[2001:db8:::9:1];branch")
        .into_bytes();
    assert_eq!(run(&bytes), Outcome::Refused(400));
}

#[test]
fn a_response_with_ipv6_vias_parses() {
    let bytes = message(
        "SIP/2.0 200 OK",
        &[
            "Via: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKv6resp;received=2001:db8::9:255",
            "From: <sip:alice@[2001:db8::9:1]>;tag=v6g",
            "To: <sip:user@[2001:db8::10]>;tag=v6h",
            "Call-ID: v6-response@2001:db8::9:1",
            "CSeq: 1 OPTIONS",
        ],
        "",
    );
    assert_eq!(run(&bytes), Outcome::ParsedResponse);
}
