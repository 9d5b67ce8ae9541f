//! Keys carried in SIP INFO (the pre-RFC 6086 usage phones and gateways still send):
//! `application/dtmf-relay` (`Signal=5`, `Duration=160`) or `application/dtmf` (`5`), and
//! what each INFO gets back.

use sipx_media::dtmf::DtmfDigit;
use sipx_sip::msg::lex::mime_type;
use sipx_sip::msg::{Request, Response};

/// The bodies an INFO may carry here (the 415's `Accept`).
pub(super) const INFO_ACCEPT: &str = "application/dtmf-relay, application/dtmf";

/// A key's length when the INFO does not say (or says 0).
const DEFAULT_MS: u32 = 250;
/// Bounds of a key's length as reported: a peer's `Duration` outside them is taken as the
/// nearest (the shortest key a receiver must take, ITU-T Q.24; a minute of holding).
const SHORTEST_MS: u32 = 40;
const LONGEST_MS: u32 = 60_000;

/// What an INFO's body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InfoBody {
    /// A key and how long it was held (ms).
    Digit(DtmfDigit, u32),
    /// No body: a keep-alive some gateways send (RFC 2976 §2.2 answers it 200).
    Empty,
    /// A DTMF body SIPx reads but whose key it cannot make out: 400 with this reason.
    Unreadable(&'static str),
    /// A body of another type: 415 with [`INFO_ACCEPT`].
    Unsupported,
    /// An INFO for an Info Package (RFC 6086): SIPx takes none, so 469 (§4.2.2).
    OtherPackage,
}

/// What an INFO gets back (with our dialog `tag`), and what it said.
pub(super) fn answer_info(req: &Request, tag: &str) -> (Response, InfoBody) {
    let body = read_info(req);
    let resp = match body {
        InfoBody::Digit(..) | InfoBody::Empty => req.response(200, Some(tag)),
        InfoBody::Unreadable(why) => req.response(400, Some(tag)).with_reason(why),
        InfoBody::Unsupported => req
            .response(415, Some(tag))
            .with_header("Accept", INFO_ACCEPT),
        // `Recv-Info` lists the packages we take: none.
        InfoBody::OtherPackage => req.response(469, Some(tag)).with_header("Recv-Info", ""),
    };
    (resp, body)
}

pub(super) fn read_info(req: &Request) -> InfoBody {
    if req.headers.get("Info-Package").is_some() {
        return InfoBody::OtherPackage;
    }
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return InfoBody::Empty;
    }
    let content_type = mime_type(req.headers.get("Content-Type").unwrap_or_default());
    let Ok(body) = std::str::from_utf8(&req.body) else {
        return InfoBody::Unreadable("DTMF body is not text");
    };
    let (signal, duration) = if content_type == "application/dtmf-relay" {
        let mut signal = None;
        let mut duration = None;
        for line in body.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "signal" => signal = Some(v.trim()),
                "duration" => duration = v.trim().parse::<u32>().ok(),
                _ => {}
            }
        }
        let Some(signal) = signal else {
            return InfoBody::Unreadable("No Signal in the DTMF body");
        };
        (signal, duration)
    } else if content_type == "application/dtmf" {
        (body.trim(), None)
    } else {
        return InfoBody::Unsupported;
    };
    let mut chars = signal.chars();
    let digit = match (chars.next(), chars.next()) {
        (Some(c), None) => DtmfDigit::from_char(c.to_ascii_uppercase()),
        // Some gateways send the RFC 4733 event code instead of the character.
        _ => signal.parse().ok().and_then(DtmfDigit::from_event_code),
    };
    let Some(digit) = digit else {
        return InfoBody::Unreadable("Unknown DTMF signal");
    };
    let ms = match duration {
        None | Some(0) => DEFAULT_MS,
        Some(ms) => ms.clamp(SHORTEST_MS, LONGEST_MS),
    };
    InfoBody::Digit(digit, ms)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn info(content_type: Option<&str>, body: &str) -> Request {
        let content_type = content_type.map_or(String::new(), |c| format!("Content-Type: {c}\r\n"));
        let raw = format!(
            "INFO sip:echo@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
             From: <sip:a@x>;tag=1\r\nTo: <sip:echo@y>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INFO\r\n\
             Max-Forwards: 70\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sipx_sip::msg::parse_datagram(raw.as_bytes()).unwrap() {
            sipx_sip::msg::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn info_bodies_give_the_key_or_say_why_not() {
        let digit = |c: char, ms| InfoBody::Digit(DtmfDigit::from_char(c).unwrap(), ms);
        let relay = Some("application/dtmf-relay");
        let cases = [
            (relay, "Signal=5\r\nDuration=160\r\n", digit('5', 160)),
            (relay, "signal= #\nduration=100", digit('#', 100)),
            (relay, "Signal=11\r\n", digit('#', 250)),
            (Some("application/dtmf"), "*", digit('*', 250)),
            (
                Some("Application/DTMF-Relay"),
                "Signal=a\r\n",
                digit('A', 250),
            ),
            // Lengths out of bounds are brought in; 0 means "not said".
            (
                relay,
                "Signal=1\r\nDuration=999999999\r\n",
                digit('1', 60_000),
            ),
            (relay, "Signal=1\r\nDuration=0\r\n", digit('1', 250)),
            (relay, "Signal=1\r\nDuration=5\r\n", digit('1', 40)),
            (
                relay,
                "Duration=160\r\n",
                InfoBody::Unreadable("No Signal in the DTMF body"),
            ),
            (
                relay,
                "Signal=Z\r\n",
                InfoBody::Unreadable("Unknown DTMF signal"),
            ),
            (Some("application / dtmf ;x=1"), "7", digit('7', 250)),
            (Some("application/dtmf-relayx"), "7", InfoBody::Unsupported),
            (Some("text/plain"), "5", InfoBody::Unsupported),
            (None, "", InfoBody::Empty),
            (Some("application/dtmf-relay"), "", InfoBody::Empty),
        ];
        for (ct, body, want) in cases {
            assert_eq!(read_info(&info(ct, body)), want, "{ct:?} {body:?}");
        }
    }
}
