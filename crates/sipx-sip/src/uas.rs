//! Checks a UAS makes before acting on a request (RFC 3261 §8.2): method, URI scheme,
//! required extensions, body type and acceptable answer types. Each failure is the response.

use crate::msg::lex::mime_type;
use crate::msg::{Method, Request, Response, Uri};

/// What this UAS supports.
#[derive(Debug, Clone)]
pub struct UasPolicy {
    pub allow: Vec<Method>,
    /// Option tags (`Supported`), e.g. `replaces`, `timer`: only what is implemented, since a
    /// peer that requires a tag relies on it (a `Require: outbound` SIPx ignored would strand the
    /// phone behind its proxy).
    pub supported: Vec<String>,
    /// Body types understood.
    pub accept: Vec<String>,
}

impl Default for UasPolicy {
    fn default() -> Self {
        UasPolicy {
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Register,
                Method::Info,
                Method::Update,
                // The progress of a transfer SIPx asked for (RFC 3515).
                Method::Notify,
                // With `100rel` supported (RFC 3262 §3); one that acknowledges nothing SIPx
                // sent gets 481.
                Method::Prack,
            ],
            supported: Vec::new(),
            accept: vec![
                "application/sdp".to_owned(),
                // SDP beside a part that may be ignored (SIP-I's ISUP): `msg::sdp_body`.
                "multipart/mixed".to_owned(),
                "application/dtmf-relay".to_owned(),
                "application/dtmf".to_owned(),
                "message/sipfrag".to_owned(),
            ],
        }
    }
}

impl UasPolicy {
    pub fn allow_header(&self) -> String {
        self.allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn is_standard(m: &Method) -> bool {
    !matches!(m, Method::Extension(_))
}

/// The error response this request deserves before any processing, if any.
pub fn precheck(req: &Request, policy: &UasPolicy, to_tag: &str) -> Option<Response> {
    let reply = |status| Some(req.response(status, Some(to_tag)));
    // 416: the Request-URI scheme must be one we route.
    if matches!(req.uri, Uri::Other { .. }) {
        return reply(416);
    }
    // 405 for a method we know but do not take; 501 for one we do not know (both with Allow).
    if !policy.allow.contains(&req.method) {
        let status = if is_standard(&req.method) { 405 } else { 501 };
        return reply(status).map(|r| r.with_header("Allow", policy.allow_header()));
    }
    // 420: every required option tag must be supported.
    let unsupported: Vec<&str> = req
        .headers
        .list("Require")
        .into_iter()
        .filter(|t| !t.is_empty() && !policy.supported.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if !unsupported.is_empty() && req.method != Method::Ack && req.method != Method::Cancel {
        return reply(420).map(|r| r.with_header("Unsupported", unsupported.join(", ")));
    }
    // 415: a body we cannot read (type or encoding).
    if !req.body.is_empty() && req.method != Method::Ack {
        let ctype = req.headers.get("Content-Type").map(mime_type);
        let type_ok = ctype
            .as_deref()
            .is_some_and(|c| policy.accept.iter().any(|a| a == c));
        let encoding_ok = req
            .headers
            .list("Content-Encoding")
            .iter()
            .all(|e| e.eq_ignore_ascii_case("identity"));
        if !type_ok || !encoding_ok {
            return reply(415).map(|r| {
                let r = r.with_header("Accept", policy.accept.join(", "));
                // What was wrong was the encoding: say the one we read (RFC 3261 §21.4.13).
                if encoding_ok {
                    r
                } else {
                    r.with_header("Accept-Encoding", "identity")
                }
            });
        }
    }
    // 406: an INVITE whose Accept excludes SDP, the only answer we could give.
    if req.method == Method::Invite && req.headers.get("Accept").is_some() {
        let accepts_sdp = req.headers.list("Accept").iter().any(|a| {
            let t = mime_type(a);
            t == "application/sdp" || t == "application/*" || t == "*/*"
        });
        if !accepts_sdp {
            return reply(406);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{SipMessage, parse_datagram};

    fn with_body(extra: &str) -> Request {
        let raw = format!(
            "INVITE sip:echo@sipx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@192.0.2.1>;tag=1\r\nTo: <sip:echo@sipx.test>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 3\r\n\r\nv=0"
        );
        match parse_datagram(raw.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extensions_sipx_lacks_are_refused_not_ignored() {
        let policy = UasPolicy::default();
        for tag in ["gruu", "outbound", "precondition"] {
            let req = with_body(&format!(
                "Require: {tag}\r\nContent-Type: application/sdp\r\n"
            ));
            let r = precheck(&req, &policy, "t").unwrap();
            assert_eq!(r.status, 420, "{tag}");
            assert_eq!(r.headers.get("Unsupported"), Some(tag));
        }
    }

    #[test]
    fn a_415_says_which_types_and_which_encoding_we_read() {
        let policy = UasPolicy::default();
        let gzip = with_body("Content-Type: application/sdp\r\nContent-Encoding: gzip\r\n");
        let r = precheck(&gzip, &policy, "t").unwrap();
        assert_eq!(r.status, 415);
        assert_eq!(r.headers.get("Accept-Encoding"), Some("identity"));
        assert!(r.headers.get("Accept").unwrap().contains("application/sdp"));
        let text = with_body("Content-Type: text/plain\r\n");
        let r = precheck(&text, &policy, "t").unwrap();
        assert_eq!(r.status, 415);
        assert_eq!(r.headers.get("Accept-Encoding"), None);
        let sdp = with_body("Content-Type: application/sdp\r\n");
        assert!(precheck(&sdp, &policy, "t").is_none());
        // White space around the slash is allowed (RFC 3261 §25.1), in Accept too.
        let spaced =
            with_body("Content-Type: Application / SDP ; x=1\r\nAccept: application /sdp\r\n");
        assert!(precheck(&spaced, &policy, "t").is_none());
    }
}
