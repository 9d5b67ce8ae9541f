#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.
//! RFC 4475 torture tests: all 49 messages, through the real transaction layer and the UAS
//! checks, each answered as the RFC says (see tests/data/rfc4475/EXPECTED.tsv).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use sipx_sip::msg::Method;
use sipx_sip::registrar::{self, RegisterPolicy};
use sipx_sip::uas::{UasPolicy, precheck};
use sipx_sip::{Endpoint, EndpointConfig, Event, FlowId, Output, Peer, Transport};

#[derive(Debug, PartialEq)]
enum Outcome {
    /// The request reached the application and was answered with this status.
    Answered(u16, Option<String>),
    /// A parse-level error response.
    Refused(u16),
    /// A response that parsed (and, matching no transaction, was passed up as stray).
    ParsedResponse,
    /// Nothing was sent and nothing parsed.
    Silent,
}

fn run(bytes: &[u8]) -> Outcome {
    let peer = Peer {
        transport: Transport::Udp,
        flow: FlowId(1),
        addr: "192.0.2.1:5060".parse::<SocketAddr>().unwrap(),
    };
    let mut ep = Endpoint::new(EndpointConfig::default());
    let now = Instant::now();
    ep.handle_datagram(now, peer, bytes);
    let mut outcome = Outcome::Silent;
    let policy = UasPolicy::default();
    while let Some(out) = ep.poll_output() {
        match out {
            Output::Transmit(t) => {
                // Read the status line only: an error response copies the request's headers,
                // malformed ones included (RFC 3261 §8.2.6), so it may not parse as a whole.
                let status = std::str::from_utf8(&t.bytes[..t.bytes.len().min(12)])
                    .ok()
                    .and_then(|l| l.strip_prefix("SIP/2.0 "))
                    .and_then(|c| c.get(..3))
                    .and_then(|c| c.parse::<u16>().ok());
                if let Some(status) = status
                    && status != 100
                    && outcome == Outcome::Silent
                {
                    outcome = Outcome::Refused(status);
                }
            }
            Output::Event(Event::StrayResponse { .. }) => outcome = Outcome::ParsedResponse,
            Output::Event(Event::Request { txn, request, peer }) => {
                // A minimal UAS application: the checks, then the registrar or a 200.
                let response = precheck(&request, &policy, "uas-tag").unwrap_or_else(|| {
                    if request.method == Method::Register {
                        match registrar::apply(
                            &request,
                            &[],
                            &RegisterPolicy::default(),
                            1_000_000,
                            peer.addr,
                            peer.transport,
                            "uas-tag",
                        ) {
                            Ok(b) => registrar::ok_response(&request, &b, 1_000_000, "uas-tag"),
                            Err(r) => r,
                        }
                    } else {
                        request.response(200, Some("uas-tag"))
                    }
                });
                let extra = response
                    .headers
                    .get("Unsupported")
                    .or(response.headers.get("Allow"))
                    .map(str::to_owned);
                let status = response.status;
                ep.respond(now, txn, response);
                while let Some(o) = ep.poll_output() {
                    let _ = o;
                }
                return Outcome::Answered(status, extra);
            }
            Output::Event(_) => {}
        }
    }
    outcome
}

/// Whether `outcome` is one the RFC allows for `expectation`.
fn allowed(expectation: &str, outcome: &Outcome) -> bool {
    use Outcome::*;
    let uas = expectation
        .split(';')
        .find_map(|p| p.strip_prefix("uas="))
        .unwrap_or(expectation.split(';').next().unwrap_or(""));
    match uas {
        // Parsing is what these test; the application may then answer as it likes (mpart01 is
        // a MESSAGE, which SIPx answers 405).
        "parse-ok" => matches!(outcome, Answered(..) | ParsedResponse),
        "accept-rfc2543" => matches!(outcome, Answered(200, _)),
        "501-with-Allow" => matches!(outcome, Answered(501, Some(_))),
        "501" => matches!(outcome, Answered(501, _)),
        "400" | "400-at-registrar-or-proxy-forward" => {
            matches!(outcome, Refused(400) | Answered(400, _))
        }
        "400-or-accept" => matches!(outcome, Refused(400) | Answered(400 | 200, _)),
        "505" => matches!(outcome, Refused(505)),
        "501-or-400" => matches!(outcome, Refused(400) | Answered(501 | 400, _)),
        "discard" => matches!(outcome, Silent | ParsedResponse),
        "416" | "416-or-404" => matches!(outcome, Answered(416 | 404, _)),
        "420-with-Unsupported" => matches!(outcome, Answered(420, Some(u))
            if u.contains("nothingSupportsThis") && u.contains("nothingSupportsThisEither")),
        "415" => matches!(outcome, Answered(415, _)),
        "401-or-ignore-auth-or-405" => matches!(outcome, Answered(401 | 200 | 405, _)),
        "483-at-proxy-or-process-at-uas" => matches!(outcome, Answered(200, _)),
        "200-contact-param" | "200-uri-param" | "200-keep-escaped-header" => {
            matches!(outcome, Answered(200, _))
        }
        "406-or-400" => matches!(outcome, Answered(406 | 400, _) | Refused(400)),
        other => panic!("unknown expectation {other}"),
    }
}

#[test]
fn all_49_torture_messages_are_answered_as_the_rfc_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    let table = std::fs::read_to_string(dir.join("EXPECTED.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in table.lines().filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (name, expectation) = (cols[0], cols[3]);
        let bytes = std::fs::read(dir.join(format!("{name}.sip"))).unwrap();
        let outcome = run(&bytes);
        count += 1;
        if !allowed(expectation, &outcome) {
            failures.push(format!("{name}: expected {expectation}, got {outcome:?}"));
        }
    }
    assert_eq!(count, 49, "all 49 RFC 4475 messages are in the table");
    assert!(
        failures.is_empty(),
        "{} of 49 wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_torture_message_panics_when_truncated_or_mutated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rfc4475");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sip") {
            let bytes = std::fs::read(&path).unwrap();
            for cut in (0..bytes.len()).step_by(7) {
                let _ = run(&bytes[..cut]);
                let mut flipped = bytes.clone();
                flipped[cut] ^= 0x20;
                let _ = run(&flipped);
            }
        }
    }
}

/// The fuzz bodies over the torture corpus and the committed fuzz seeds: the round-trip
/// invariant holds for every message there, in every CI run (the fuzzer explores further).
#[test]
fn fuzz_invariants_hold_on_the_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("tests/data/rfc4475")];
    dirs.push(root.join("../../fuzz/corpus/sip_message"));
    // Every crash the fuzzer found, kept so it can never come back.
    dirs.push(root.join("tests/data/fuzz-regressions"));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            sipx_sip::fuzz::sip_message(&bytes);
            sipx_sip::fuzz::sip_framer(&bytes);
        }
    }
}
