//! A REFER received in a dialog (RFC 3515): what it asks for, and the `message/sipfrag`
//! NOTIFYs that report on it. The `Refer-To` names someone to call. A `Replaces` among its
//! URI headers makes it an attended transfer (RFC 5589 §7): the referring phone talked to
//! that someone first, and the INVITE must take the place of that consultation call at the
//! someone's phone. The other URI headers are not copied into SIPx's INVITE: they would be
//! the phone's words in SIPx's request (RFC 3515 §2.1 leaves the choice to the referee).

use crate::msg::lex::{is_token, percent_decode};
use crate::msg::{HasHeaders, NameAddr, Request, Uri, reason_phrase};
use crate::replaces::Replaces;

/// A transfer a phone asked for: blind, or attended when it carries `replaces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// Who to call: the user part of a SIP URI (unescaped) or a tel URI's number.
    pub target: String,
    /// The target as a number a trunk can dial (`+`, digits, `*`, `#`; a tel URI's visual
    /// separators dropped), when it is one.
    pub number: Option<String>,
    /// The `Refer-To` as received, for logs and events.
    pub refer_to: String,
    /// The display name of the `Refer-To`, if any.
    pub display: Option<String>,
    /// The `id` of the `Event: refer` its NOTIFYs carry: the REFER's CSeq (RFC 3515 §2.4.6).
    pub event_id: u32,
    /// The referrer wants NOTIFYs (no `Refer-Sub: false`, RFC 4488).
    pub notify: bool,
    /// An attended transfer's `Replaces` value for the INVITE (RFC 3891), checked and written
    /// anew: the consultation call the new one takes the place of at the target's phone.
    pub replaces: Option<String>,
    /// The REFER's `Referred-By` (RFC 3892), written anew for the INVITE: who transferred the
    /// call, for the called party's display.
    pub referred_by: Option<String>,
}

/// Why a REFER is refused: its final status and reason phrase.
pub type Refusal = (u16, &'static str);

/// The longest target taken: numbers and account names, not prose.
const MAX_TARGET_LEN: usize = 64;
/// The longest tag taken into a `Replaces` (real ones are a few dozen characters; a huge one
/// would make SIPx's INVITE too big for a datagram).
const MAX_TAG_LEN: usize = 128;

/// Reads a REFER as a transfer, or says how to refuse it.
pub fn read_referral(req: &Request) -> Result<Referral, Refusal> {
    let mut values = req.headers.get_all("Refer-To");
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err((400, "A REFER carries exactly one Refer-To"));
    };
    let addr = NameAddr::parse(value).ok_or((400, "Unreadable Refer-To"))?;
    let event_id = req.cseq().map_or(0, |c| c.seq);
    let notify = !req
        .headers
        .get("Refer-Sub")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
    let replaces = match &addr.uri {
        Uri::Sip(u) => replaces_of(&u.headers)?,
        _ => None,
    };
    let target = match &addr.uri {
        Uri::Sip(u) => u
            .user
            .as_deref()
            .and_then(percent_decode)
            .ok_or((403, "Refer-To names no user to call"))?,
        Uri::Tel(t) => t.number.clone(),
        Uri::Other { .. } => return Err((416, "Refer-To scheme not supported")),
    };
    if !is_dialable(&target) {
        return Err((403, "Refer-To user is not a number or account name"));
    }
    Ok(Referral {
        number: dial_number(&target),
        target,
        refer_to: without_headers(&addr.uri),
        display: addr.display.filter(|d| !d.trim().is_empty()),
        event_id,
        notify,
        replaces,
        referred_by: referred_by_of(req),
    })
}

/// The longest `Referred-By` passed on: an address, not prose.
const MAX_REFERRED_BY_LEN: usize = 256;

/// The REFER's `Referred-By`, for the INVITE it triggers (RFC 3892 §3: the referee copies it):
/// its display name and SIP or tel URI, without URI headers, password or header parameters (a `cid`
/// would name a signed token in the REFER's body, which SIPx does not carry over). A value
/// that cannot be read, or two of them, is left out rather than refused: it only informs the
/// called party.
fn referred_by_of(req: &Request) -> Option<String> {
    let mut values = req.headers.get_all("Referred-By");
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let addr = NameAddr::parse(value)?;
    if matches!(addr.uri, Uri::Other { .. }) {
        return None;
    }
    let bare = NameAddr {
        // A display name with control characters is dropped (not all peers take them quoted).
        display: addr
            .display
            .filter(|d| !d.trim().is_empty() && !d.chars().any(char::is_control)),
        uri: match &addr.uri {
            Uri::Sip(u) => {
                // No URI headers, and no password (RFC 3261 §19.1.1: never to be sent on).
                let mut u = u.clone();
                u.headers.clear();
                u.password = None;
                Uri::Sip(u)
            }
            other => other.clone(),
        },
        params: Vec::new(),
    }
    .to_string();
    // Control characters can hide in a URI too (C1 ones, as UTF-8): none goes out.
    (bare.len() <= MAX_REFERRED_BY_LEN && !bare.chars().any(char::is_control)).then_some(bare)
}

/// The `Refer-To` URI for logs and events, without its headers: they were the phone's words
/// for an INVITE (only a checked `Replaces` was used), of any length.
fn without_headers(uri: &Uri) -> String {
    match uri {
        Uri::Sip(u) if !u.headers.is_empty() => {
            let mut bare = u.clone();
            bare.headers.clear();
            bare.to_string()
        }
        other => other.to_string(),
    }
}

/// The `Replaces` among a `Refer-To`'s URI headers (escaped, RFC 3261 §19.1.1), checked and
/// written anew so that nothing but a dialog's name reaches SIPx's INVITE; `None` without one.
fn replaces_of(headers: &[(String, String)]) -> Result<Option<String>, Refusal> {
    let mut values = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("Replaces"))
        .map(|(_, value)| value);
    let (value, more) = (values.next(), values.next());
    let Some(value) = value else {
        return Ok(None);
    };
    if more.is_some() {
        return Err((400, "Refer-To with more than one Replaces"));
    }
    let malformed = (400, "Malformed Replaces in Refer-To");
    let decoded = percent_decode(value).ok_or(malformed)?;
    let replaces = Replaces::parse(&decoded).ok_or(malformed)?;
    let id = &replaces.dialog;
    // RFC 3261 §25.1: a Call-ID is `word [@ word]`, tags are tokens. Anything else (spaces,
    // line breaks, separators) would change the INVITE's meaning or its framing.
    let tag = |t: &str| is_token(t) && t.len() <= MAX_TAG_LEN;
    if !is_call_id(&id.call_id) || !tag(&id.local_tag) || !tag(&id.remote_tag) {
        return Err(malformed);
    }
    let early_only = if replaces.early_only {
        ";early-only"
    } else {
        ""
    };
    Ok(Some(format!(
        "{};to-tag={};from-tag={}{early_only}",
        id.call_id, id.local_tag, id.remote_tag
    )))
}

/// `word ["@" word]` (RFC 3261 §25.1), at most 256 bytes.
fn is_call_id(value: &str) -> bool {
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b))
    };
    value.len() <= 256
        && match value.split_once('@') {
            Some((a, b)) => word(a) && word(b),
            None => word(value),
        }
}

/// A number (`+`, digits, `*`, `#`, visual separators of tel URIs) or an account name.
fn is_dialable(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= MAX_TARGET_LEN
        && target.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'+' | b'*' | b'#' | b'.' | b'-' | b'_')
        })
}

/// `target` as a dialable number: visual separators (`-`, `.`, `(`, `)`) dropped, then an
/// optional `+` and 1–32 of digits, `*` and `#`; `None` for a name.
fn dial_number(target: &str) -> Option<String> {
    let number: String = target
        .chars()
        .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
        .collect();
    let digits = number.strip_prefix('+').unwrap_or(&number);
    let dialable = !digits.is_empty()
        && digits.len() <= 32
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'*' || b == b'#');
    dialable.then_some(number)
}

/// The body of a NOTIFY reporting `status` (RFC 3515 §2.4.5): a sipfrag status line.
pub fn sipfrag(status: u16) -> String {
    format!("SIP/2.0 {status} {}\r\n", reason_phrase(status))
}

/// The `Subscription-State` of a NOTIFY reporting `status`: a final status ends the implicit
/// subscription (RFC 3515 §2.4.7, RFC 6665 §4.1.3).
pub fn subscription_state(status: u16) -> &'static str {
    if status >= 200 {
        "terminated;reason=noresource"
    } else {
        // Long enough for the new call to ring out (60 s) and be placed.
        "active;expires=180"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{SipMessage, parse_datagram};

    fn refer(extra: &str) -> Request {
        let text = format!(
            "REFER sip:sipx@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1\r\n\
             From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:sipx@127.0.0.1>;tag=2\r\nCall-ID: c1\r\n\
             CSeq: 7 REFER\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(text.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn a_blind_transfer_names_a_number_or_an_account() {
        let r = read_referral(&refer(
            "Refer-To: \"Bob\" <sip:%2B4930123@pbx.example;user=phone>\r\n",
        ))
        .unwrap();
        assert_eq!(r.target, "+4930123");
        assert_eq!(r.number.as_deref(), Some("+4930123"));
        assert_eq!(r.display.as_deref(), Some("Bob"));
        assert_eq!(r.event_id, 7);
        assert!(r.notify);
        let r = read_referral(&refer("r: tel:+1-555-0100\r\nRefer-Sub: False\r\n")).unwrap();
        assert_eq!(r.target, "+1-555-0100");
        assert_eq!(r.number.as_deref(), Some("+15550100"));
        assert!(!r.notify);
        let r = read_referral(&refer("Refer-To: sip:alice@example.com\r\n")).unwrap();
        assert_eq!(
            (r.target.as_str(), r.refer_to.as_str()),
            ("alice", "sip:alice@example.com")
        );
        assert_eq!(r.number, None);
        for name in ["..", "alice-other", "a.b", "*#"] {
            let r = read_referral(&refer(&format!("Refer-To: <sip:{name}@x>\r\n"))).unwrap();
            assert_eq!(r.number, None, "{name}");
        }
    }

    #[test]
    fn an_attended_transfer_carries_the_consultation_calls_name_and_nothing_else() {
        let r = read_referral(&refer(
            "Refer-To: <sip:4930555@pbx.example;user=phone?Replaces=c2%40pbx.example%3Bto-tag%3Dt1\
             %3Bfrom-tag%3Df2&Require=replaces&Contact=%3Csip%3Aevil%40x%3E>\r\n",
        ))
        .unwrap();
        assert_eq!(r.number.as_deref(), Some("4930555"));
        assert_eq!(
            r.replaces.as_deref(),
            Some("c2@pbx.example;to-tag=t1;from-tag=f2")
        );
        assert_eq!(r.refer_to, "sip:4930555@pbx.example;user=phone");
        // The name matched case-blind; early-only kept; unknown parameters dropped.
        let r = read_referral(&refer(
            "Refer-To: <sip:alice@x?replaces=k%3BFrom-Tag%3Da%3Bearly-only%3Bx%3Dy%3Bto-tag%3Db>\r\n",
        ))
        .unwrap();
        assert_eq!(
            r.replaces.as_deref(),
            Some("k;to-tag=b;from-tag=a;early-only")
        );
        // Headers without a Replaces: a blind transfer, the headers left out.
        let r = read_referral(&refer("Refer-To: <sip:alice@x?Subject=hi>\r\n")).unwrap();
        assert_eq!((r.target.as_str(), r.replaces), ("alice", None));
    }

    #[test]
    fn the_referred_by_is_passed_on_as_an_address_and_nothing_else() {
        let by = |extra: &str| {
            read_referral(&refer(&format!("Refer-To: <sip:bob@x>\r\n{extra}")))
                .unwrap()
                .referred_by
        };
        assert_eq!(by(""), None);
        assert_eq!(
            by("Referred-By: \"Alice\" <sip:alice@pbx.example>;cid=\"20398823.2UWQFN309shb3@pbx\"\r\n")
                .as_deref(),
            Some("\"Alice\" <sip:alice@pbx.example>")
        );
        assert_eq!(
            by("b: <sip:+4930111@pbx.example;user=phone?Subject=x>\r\n").as_deref(),
            Some("<sip:+4930111@pbx.example;user=phone>")
        );
        assert_eq!(
            by("Referred-By: tel:+15550100\r\n").as_deref(),
            Some("<tel:+15550100>")
        );
        assert_eq!(
            by("Referred-By: <sip:alice:secret@pbx.example;transport=tcp>\r\n").as_deref(),
            Some("<sip:alice@pbx.example;transport=tcp>")
        );
        // Unreadable, two of them, another scheme, too long: left out, the REFER still taken.
        for bad in [
            "Referred-By: <sip:alice@x\r\n".to_owned(),
            "Referred-By: <sip:a@x>\r\nReferred-By: <sip:b@x>\r\n".to_owned(),
            "Referred-By: <mailto:alice@example.com>\r\n".to_owned(),
            format!("Referred-By: <sip:{}@x>\r\n", "a".repeat(300)),
            "Referred-By: <sip:a\u{85}b@x>\r\n".to_owned(),
        ] {
            assert_eq!(by(&bad), None, "{bad}");
        }
    }

    #[test]
    fn what_cannot_be_a_transfer_is_refused() {
        let status = |extra: &str| {
            read_referral(&refer(extra))
                .map(|_| 0)
                .unwrap_or_else(|e| e.0)
        };
        assert_eq!(status(""), 400);
        assert_eq!(
            status("Refer-To: <sip:a@x>\r\nRefer-To: <sip:b@x>\r\n"),
            400
        );
        assert_eq!(status("Refer-To: <sip:a@x\r\n"), 400);
        for bad in [
            // No from-tag; an empty Call-ID; a line break or a space smuggled in by escaping;
            // a bad escape; two of them.
            "abc%3Bto-tag%3D1",
            "%3Bto-tag%3D1%3Bfrom-tag%3D2",
            "abc%0D%0AContact%3A%20x%3Bto-tag%3D1%3Bfrom-tag%3D2",
            "abc%3Bto-tag%3D1%20x%3Bfrom-tag%3D2",
            "abc%3Bto-tag%3D1%3Bfrom-tag%3D%2",
            "a%3Bto-tag%3D1%3Bfrom-tag%3D2&Replaces=b%3Bto-tag%3D1%3Bfrom-tag%3D2",
            // A tag twice; a tag too long to be one.
            "abc%3Bto-tag%3D1%3Bto-tag%3D3%3Bfrom-tag%3D2",
            &format!("abc%3Bto-tag%3D{}%3Bfrom-tag%3D2", "t".repeat(129)),
        ] {
            assert_eq!(
                status(&format!("Refer-To: <sip:bob@10.0.0.9?Replaces={bad}>\r\n")),
                400,
                "{bad}"
            );
        }
        assert_eq!(status("Refer-To: <sip:pbx.example>\r\n"), 403);
        assert_eq!(status("Refer-To: <sip:a%20b@x>\r\n"), 403);
        assert_eq!(status("Refer-To: <sip:%ff@x>\r\n"), 403);
        assert_eq!(
            status(&format!("Refer-To: <sip:{}@x>\r\n", "1".repeat(65))),
            403
        );
        assert_eq!(status("Refer-To: <mailto:bob@example.com>\r\n"), 416);
    }

    #[test]
    fn notify_bodies_report_a_status_and_end_on_a_final_one() {
        assert_eq!(sipfrag(100), "SIP/2.0 100 Trying\r\n");
        assert_eq!(sipfrag(486), "SIP/2.0 486 Busy Here\r\n");
        assert_eq!(subscription_state(180), "active;expires=180");
        assert_eq!(subscription_state(200), "terminated;reason=noresource");
        assert_eq!(subscription_state(503), "terminated;reason=noresource");
    }
}
