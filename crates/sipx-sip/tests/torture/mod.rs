//! The harness torture tests share: one datagram through the real transaction layer and the
//! UAS checks (a registrar for REGISTER, 200 for anything else), and what came of it.

use std::net::SocketAddr;
use std::time::Instant;

use sipx_sip::msg::Method;
use sipx_sip::registrar::{self, RegisterPolicy};
use sipx_sip::uas::{UasPolicy, precheck};
use sipx_sip::{Endpoint, EndpointConfig, Event, FlowId, Output, Peer, Transport};

#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The request reached the application and was answered with this status.
    Answered(u16, Option<String>),
    /// A parse-level error response.
    Refused(u16),
    /// A response that parsed (and, matching no transaction, was passed up as stray).
    ParsedResponse,
    /// Nothing was sent and nothing parsed.
    Silent,
}

pub fn run(bytes: &[u8]) -> Outcome {
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
