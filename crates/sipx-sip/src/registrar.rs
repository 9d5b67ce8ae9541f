//! Registrar logic (RFC 3261 §10.3), pure: a REGISTER and the current bindings of an
//! address-of-record in, the new bindings (or the error response) out. Authentication, storage
//! and the clock belong to the caller.

use std::net::SocketAddr;

use crate::msg::lex::parse_u32;
use crate::msg::{HasHeaders, NameAddr, Request, Response, Uri};
use crate::transport::Transport;

/// One registered contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// The Contact URI as registered.
    pub contact: String,
    /// Unix time (s) when the binding lapses.
    pub expires_at: u64,
    /// Preference, 0.0–1.0 (RFC 3261 §20.10); `None` when not given.
    pub q: Option<f32>,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from: calls to a NATed gateway go back there (RFC 5626 idea).
    pub source: SocketAddr,
    pub transport: Transport,
    pub user_agent: Option<String>,
    /// The REGISTER's `Path` values, in order (RFC 3327): the proxies a request to this contact
    /// must pass through, the first one nearest to SIPx. Empty when the device registered
    /// directly.
    pub path: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RegisterPolicy {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_bindings: u32,
}

impl Default for RegisterPolicy {
    fn default() -> Self {
        RegisterPolicy {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_bindings: 5,
        }
    }
}

/// The most proxies a `Path` may name, and the most bytes it may take: every request to the
/// device carries it as its `Route`, and over UDP an INVITE must stay well within a datagram
/// (a deployment has one edge proxy, two at most).
const MAX_PATH_HOPS: usize = 8;
const MAX_PATH_BYTES: usize = 1024;

/// A `Path` value (RFC 3327 §4): a name-addr, so in angle brackets (a bare URI would turn its
/// `;lr` into a header parameter), naming a SIP proxy, with no control characters.
fn is_path_value(value: &str) -> bool {
    // `<` cannot appear in a bare URI.
    let bracketed = value.contains('<');
    let clean = !value.bytes().any(|b| b == 0x7f || (b < 0x20 && b != b'\t'));
    bracketed && clean && NameAddr::parse(value).is_some_and(|a| matches!(a.uri, Uri::Sip(_)))
}

/// Syntax a registrar needs beyond the message grammar: a SIP AOR in To, and Contacts that
/// parse (RFC 4475 unksm2, regbadct). `Some(reason)` means 400.
/// Whether To holds a `sip:`/`sips:` URI. A received request's To is well-formed (the parser
/// checks it), so its scheme is enough and the address need not be parsed again; anything
/// that does not look like a name-addr takes the full parse.
fn to_is_sip(req: &Request) -> bool {
    let Some(to) = req.headers.get("To") else {
        return false;
    };
    let simple = !to.contains('"');
    if simple && let Some(lt) = to.find('<') {
        let uri = to[lt + 1..].trim_start();
        let scheme = uri.split(':').next().unwrap_or("");
        return scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
    }
    matches!(req.to().map(|t| t.uri), Some(Uri::Sip(_)))
}

pub fn check_syntax(req: &Request) -> Option<&'static str> {
    if !to_is_sip(req) {
        return Some("To is not a SIP address-of-record");
    }
    for c in req.headers.list("Contact") {
        if c == "*" {
            continue;
        }
        match NameAddr::parse(c) {
            Some(a) if matches!(a.uri, Uri::Sip(_)) => {}
            _ => return Some("Malformed Contact"),
        }
    }
    None
}

/// Applies a REGISTER to `current` (the AOR's live bindings). Returns the new set, or the
/// response refusing the request.
pub fn apply(
    req: &Request,
    current: &[Binding],
    policy: &RegisterPolicy,
    now_secs: u64,
    source: SocketAddr,
    transport: Transport,
    to_tag: &str,
) -> Result<Vec<Binding>, Response> {
    let refuse = |status: u16, reason: Option<&str>| {
        let r = req.response(status, Some(to_tag));
        match reason {
            Some(reason) => r.with_reason(reason),
            None => r,
        }
    };
    if let Some(reason) = check_syntax(req) {
        return Err(refuse(400, Some(reason)));
    }
    let call_id = req.call_id().unwrap_or("").to_owned();
    let cseq = req.cseq().map_or(0, |c| c.seq);
    // Expires header: an overlarge value is read as the default (RFC 4475 scalar02).
    let header_expires = req
        .headers
        .get("Expires")
        .map(|e| parse_u32(e).unwrap_or(policy.default_expires));
    let contacts = req.headers.list("Contact");
    let mut bindings: Vec<Binding> = current
        .iter()
        .filter(|b| b.expires_at > now_secs)
        .cloned()
        .collect();

    if contacts.contains(&"*") {
        // `*` removes everything, and only with Expires: 0 and nothing else (§10.3 step 6).
        if contacts.len() != 1 || header_expires != Some(0) {
            return Err(refuse(
                400,
                Some("Wildcard Contact needs Expires: 0 and no other Contact"),
            ));
        }
        if bindings
            .iter()
            .any(|b| b.call_id == call_id && b.cseq >= cseq)
        {
            return Err(refuse(500, Some("Out-of-order REGISTER")));
        }
        return Ok(Vec::new());
    }

    let user_agent = req.headers.get("User-Agent").map(str::to_owned);
    let path = req.headers.list("Path");
    if path.len() > MAX_PATH_HOPS || path.iter().map(|p| p.len()).sum::<usize>() > MAX_PATH_BYTES {
        return Err(refuse(400, Some("Path too long")));
    }
    if !path.iter().all(|p| is_path_value(p)) {
        return Err(refuse(400, Some("Malformed Path")));
    }
    // A strict router would have to become the Request-URI of every request to the device
    // (RFC 3261 §12.2.1.1); proxies that add a Path are loose routers (RFC 3327 §5.1).
    let loose = |p: &&str| {
        NameAddr::parse(p)
            .and_then(|a| a.uri.as_sip().map(|u| u.param("lr").is_some()))
            .unwrap_or(false)
    };
    if !path.iter().all(loose) {
        return Err(refuse(400, Some("Path entry without lr (strict routing)")));
    }
    let path: Vec<String> = path.into_iter().map(str::to_owned).collect();
    for c in contacts {
        let Some(addr) = NameAddr::parse(c) else {
            return Err(refuse(400, Some("Malformed Contact")));
        };
        let expires = addr
            .param("expires")
            .flatten()
            .map(|e| parse_u32(e).unwrap_or(policy.default_expires))
            .or(header_expires)
            .unwrap_or(policy.default_expires);
        if expires != 0 && expires < policy.min_expires {
            return Err(
                refuse(423, None).with_header("Min-Expires", policy.min_expires.to_string())
            );
        }
        let expires = expires.min(policy.max_expires);
        let contact = addr.uri.to_string();
        let q = addr
            .param("q")
            .flatten()
            .and_then(|q| q.parse::<f32>().ok())
            .filter(|q| (0.0..=1.0).contains(q));
        // Matched by URI equivalence (§10.3 step 7, §19.1.4), not as written.
        let same = |b: &Binding| Uri::parse(&b.contact).is_some_and(|u| u.equivalent(&addr.uri));
        if let Some(existing) = bindings.iter().position(same) {
            let b = &bindings[existing];
            if b.call_id == call_id && b.cseq >= cseq {
                return Err(refuse(500, Some("Out-of-order REGISTER")));
            }
            if expires == 0 {
                bindings.remove(existing);
                continue;
            }
        } else if expires == 0 {
            continue;
        }
        let binding = Binding {
            contact: contact.clone(),
            expires_at: now_secs + u64::from(expires),
            q,
            call_id: call_id.clone(),
            cseq,
            source,
            transport,
            user_agent: user_agent.clone(),
            path: path.clone(),
        };
        match bindings.iter_mut().find(|b| same(b)) {
            Some(b) => *b = binding,
            None => bindings.push(binding),
        }
    }
    // Over the limit, the bindings this REGISTER did not name give way, those lapsing first
    // first: a device that rebooted (new port, new Call-ID) leaves its old binding behind,
    // and refusing it would lock it out of its own account until that one lapses. Only a
    // REGISTER that alone names too many contacts is refused.
    let limit = policy.max_bindings as usize;
    while bindings.len() > limit {
        let stale = bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.call_id != call_id || b.cseq != cseq)
            .min_by_key(|(_, b)| b.expires_at)
            .map(|(i, _)| i);
        match stale {
            Some(i) => {
                bindings.remove(i);
            }
            None => {
                return Err(refuse(
                    403,
                    Some("Too many registered contacts for this account"),
                ));
            }
        }
    }
    Ok(bindings)
}

/// The 200 OK listing every current binding with its remaining time, and the request's `Path`
/// when the device says it supports `path` (RFC 3327 §5.3: it then learns the route requests
/// to it will take; a device that does not know the extension gets none, as its proxy stays
/// on the path all the same).
pub fn ok_response(req: &Request, bindings: &[Binding], now_secs: u64, to_tag: &str) -> Response {
    let mut r = req.response(200, Some(to_tag));
    for b in bindings {
        let left = b.expires_at.saturating_sub(now_secs);
        let q = b.q.map(|q| format!(";q={q}")).unwrap_or_default();
        r.headers
            .push("Contact", format!("<{}>;expires={left}{q}", b.contact));
    }
    let supports_path = ["Supported", "Require"].iter().any(|h| {
        req.headers
            .list(h)
            .iter()
            .any(|t| t.eq_ignore_ascii_case("path"))
    });
    if supports_path {
        for p in req.headers.list("Path") {
            r.headers.push("Path", p);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{SipMessage, parse_datagram};

    fn register(contact: &str, expires: Option<u32>, cseq: u32) -> Request {
        let exp = expires
            .map(|e| format!("Expires: {e}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:sipx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK{cseq}\r\n\
             To: <sip:gw1@sipx.test>\r\nFrom: <sip:gw1@sipx.test>;tag=f\r\nCall-ID: reg-1\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {contact}\r\n{exp}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn run(req: &Request, current: &[Binding], now: u64) -> Result<Vec<Binding>, Response> {
        let src: SocketAddr = "10.0.0.2:5070".parse().unwrap();
        apply(
            req,
            current,
            &RegisterPolicy::default(),
            now,
            src,
            Transport::Udp,
            "t",
        )
    }

    #[test]
    fn adds_refreshes_and_removes() {
        let b = run(
            &register("<sip:gw1@10.0.0.2:5070>", Some(300), 1),
            &[],
            1000,
        )
        .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].expires_at, 1300);
        let b = run(
            &register("<sip:gw1@10.0.0.2:5070>;expires=600", Some(300), 2),
            &b,
            1100,
        )
        .unwrap();
        assert_eq!(b[0].expires_at, 1700);
        let two = run(&register("<sip:gw1@10.0.0.3>;q=0.5", None, 3), &b, 1100).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].q, Some(0.5));
        let ok = ok_response(&register("*", Some(0), 9), &two, 1100, "t");
        assert_eq!(ok.headers.count("Contact"), 2);
        let gone = run(&register("<sip:gw1@10.0.0.2:5070>", Some(0), 4), &two, 1100).unwrap();
        assert_eq!(gone.len(), 1);
        assert!(
            run(&register("*", Some(0), 5), &two, 1100)
                .unwrap()
                .is_empty()
        );
    }

    /// A device that writes its contact another way when it refreshes or removes it (host
    /// case, escapes, parameter order and case) still names the same binding (§19.1.4).
    #[test]
    fn a_contact_written_another_way_names_the_same_binding() {
        let first = "<sip:%67w1@GW.Example:5009;transport=udp;x=1>";
        let b = run(&register(first, Some(300), 1), &[], 1000).unwrap();
        let again = "<sip:gw1@gw.example:5009;x=1;transport=UDP>";
        let refreshed = run(&register(again, Some(600), 2), &b, 1100).unwrap();
        assert_eq!(refreshed.len(), 1, "no second binding");
        assert_eq!(refreshed[0].expires_at, 1700);
        let removed = run(&register(again, Some(0), 3), &refreshed, 1200).unwrap();
        assert!(removed.is_empty(), "{removed:?}");
        // Another port, or another transport, is another contact.
        for other in [
            "<sip:gw1@gw.example:5010;transport=udp>",
            "<sip:gw1@gw.example:5009>",
        ] {
            let two = run(&register(other, Some(300), 4), &refreshed, 1200).unwrap();
            assert_eq!(two.len(), 2, "{other}");
        }
    }

    #[test]
    fn a_rebooted_device_takes_the_place_of_the_binding_that_lapses_first() {
        let policy = RegisterPolicy {
            max_bindings: 2,
            ..RegisterPolicy::default()
        };
        let src: SocketAddr = "10.0.0.2:5070".parse().unwrap();
        let reg = |contact: &str, call_id: &str, current: &[Binding], now: u64| {
            let req = register(contact, Some(300), 1);
            let text = String::from_utf8(req.to_bytes())
                .unwrap()
                .replace("Call-ID: reg-1", &format!("Call-ID: {call_id}"));
            let SipMessage::Request(req) = parse_datagram(text.as_bytes()).unwrap() else {
                unreachable!()
            };
            apply(&req, current, &policy, now, src, Transport::Udp, "t")
        };
        let b = reg("<sip:gw1@10.0.0.2:4001>", "boot-1", &[], 1000).unwrap();
        let b = reg("<sip:gw1@10.0.0.2:4002>", "boot-2", &b, 1010).unwrap();
        let b = reg("<sip:gw1@10.0.0.2:4003>", "boot-3", &b, 1020).unwrap();
        let contacts: Vec<&str> = b.iter().map(|b| b.contact.as_str()).collect();
        assert_eq!(contacts, ["sip:gw1@10.0.0.2:4002", "sip:gw1@10.0.0.2:4003"]);
        // One REGISTER naming more contacts than allowed is still refused.
        let three = "<sip:gw1@10.0.0.5>, <sip:gw1@10.0.0.6>, <sip:gw1@10.0.0.7>";
        assert_eq!(reg(three, "boot-4", &b, 1030).unwrap_err().status, 403);
    }

    #[test]
    fn refuses_what_the_rfc_refuses() {
        let b = run(&register("<sip:gw1@10.0.0.2>", Some(300), 5), &[], 1000).unwrap();
        assert_eq!(
            run(&register("<sip:gw1@10.0.0.2>", Some(300), 5), &b, 1000)
                .unwrap_err()
                .status,
            500
        );
        assert_eq!(
            run(&register("*", Some(300), 6), &b, 1000)
                .unwrap_err()
                .status,
            400
        );
        let brief = run(&register("<sip:gw1@10.0.0.2>", Some(10), 7), &[], 1000).unwrap_err();
        assert_eq!(brief.status, 423);
        assert_eq!(brief.headers.get("Min-Expires"), Some("60"));
        assert_eq!(
            run(&register("sip:x@y?Route=z", Some(60), 8), &[], 1000)
                .unwrap_err()
                .status,
            400
        );
        let many: Vec<String> = (0..6).map(|i| format!("<sip:gw1@10.0.0.{i}>")).collect();
        assert_eq!(
            run(&register(&many.join(", "), Some(300), 9), &[], 1000)
                .unwrap_err()
                .status,
            403
        );
        // Expired bindings are dropped on the way.
        assert!(
            run(&register("<sip:gw1@10.0.0.9>", Some(0), 10), &b, 5000)
                .unwrap()
                .is_empty()
        );
    }

    /// `register`'s message with `extra` header lines before Content-Length.
    fn register_with(extra: &str, cseq: u32) -> Request {
        let text = format!(
            "REGISTER sip:sipx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5070;branch=z9hG4bK{cseq}\r\n\
             To: <sip:gw1@sipx.test>\r\nFrom: <sip:gw1@sipx.test>;tag=f\r\nCall-ID: reg-1\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:gw1@192.168.1.9:5060>\r\nExpires: 300\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_path_is_kept_in_order_and_returned_only_to_a_device_that_supports_it() {
        let two = "Path: <sip:edge2.test;lr>\r\nPath: <sip:p1@10.0.0.1:5080;lr;ob>, <sip:edge1.test;lr>\r\n";
        let req = register_with(&format!("Supported: path, outbound\r\n{two}"), 1);
        let b = run(&req, &[], 1000).unwrap();
        assert_eq!(
            b[0].path,
            [
                "<sip:edge2.test;lr>",
                "<sip:p1@10.0.0.1:5080;lr;ob>",
                "<sip:edge1.test;lr>"
            ]
        );
        let ok = ok_response(&req, &b, 1000, "t");
        assert_eq!(ok.headers.list("Path"), b[0].path);

        let unaware = register_with(two, 2);
        let b = run(&unaware, &[], 1000).unwrap();
        assert_eq!(b[0].path.len(), 3, "the path is used all the same");
        assert!(
            ok_response(&unaware, &b, 1000, "t")
                .headers
                .get("Path")
                .is_none()
        );

        let direct = register_with("Supported: path\r\n", 3);
        let b = run(&direct, &[], 1000).unwrap();
        assert!(b[0].path.is_empty());
        assert!(
            ok_response(&direct, &b, 1000, "t")
                .headers
                .get("Path")
                .is_none()
        );

        for bad in [
            "<sip:edge.test;lr",
            "sip:edge.test;lr",
            "<tel:+123>",
            "\"Ed\x00ge\" <sip:edge.test;lr>",
        ] {
            let req = register_with(&format!("Path: {bad}\r\n"), 4);
            let refused = run(&req, &[], 1000).unwrap_err();
            assert_eq!(
                (refused.status, refused.reason.as_str()),
                (400, "Malformed Path"),
                "{bad:?}"
            );
        }
        let hops: Vec<String> = (0..9).map(|i| format!("<sip:p{i}.test;lr>")).collect();
        let long = register_with(&format!("Path: {}\r\n", hops.join(", ")), 5);
        let refused = run(&long, &[], 1000).unwrap_err();
        assert_eq!(
            (refused.status, refused.reason.as_str()),
            (400, "Path too long")
        );
        let strict = register_with("Path: <sip:edge.test>\r\n", 6);
        let refused = run(&strict, &[], 1000).unwrap_err();
        assert_eq!(refused.reason, "Path entry without lr (strict routing)");
        let eight = register_with(&format!("Path: {}\r\n", hops[..8].join(", ")), 7);
        assert_eq!(run(&eight, &[], 1000).unwrap()[0].path.len(), 8);
    }
}
