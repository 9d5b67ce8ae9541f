//! Who a call is from: as the network asserts it (`P-Asserted-Identity`, RFC 3325) and as
//! the caller wants it shown or withheld (`Privacy`, RFC 3323).
//!
//! A carrier's From is what the caller chose to present (a company's main number, or
//! `anonymous`); the identity it asserts is the line that calls. SIPx believes an assertion
//! only from a peer it trusts (a trunk), and never passes on one whose caller asked for it to
//! be withheld (`Privacy: id`).

use std::borrow::Cow;

use crate::msg::{HasHeaders, Headers, NameAddr, Request, Uri};

/// The From of a caller who withholds its identity (RFC 3323 §4.1.1.3), at `host`: a
/// provider that checks the From domain of its customers' calls (the reason a trunk names
/// one) refuses `anonymous.invalid`, the host for every other route.
pub fn anonymous_from(host: Option<&str>) -> String {
    let host = host
        .filter(|h| !h.is_empty())
        .unwrap_or("anonymous.invalid");
    format!("\"Anonymous\" <sip:anonymous@{host}>")
}

/// The name shown for a caller who withholds its identity.
pub const ANONYMOUS_NAME: &str = "Anonymous";

/// Whether `Privacy` asks for the asserted identity to be withheld: it lists `id` (RFC 3325
/// §9.3). Values are separated by `;` (RFC 3323 §4.2); commas and repeated headers are read
/// too, as some carriers write them.
pub fn identity_withheld(headers: &Headers) -> bool {
    headers.get_all("Privacy").any(|line| {
        line.split([';', ','])
            .any(|v| v.trim().eq_ignore_ascii_case("id"))
    })
}

/// The first identity `P-Asserted-Identity` asserts with a SIP, SIPS or tel URI (one header
/// may carry a SIP and a tel URI of one caller, RFC 3325 §9.1).
pub fn asserted_identity(headers: &Headers) -> Option<NameAddr> {
    headers
        .list("P-Asserted-Identity")
        .into_iter()
        .filter_map(NameAddr::parse)
        .find(|a| matches!(a.uri, Uri::Sip(_) | Uri::Tel(_)))
}

/// The caller's name as others see it (in a room): the display name, else the number, in the
/// form `number_form` gives it (a trunk's number rules); or [`ANONYMOUS_NAME`] when withheld.
/// A carrier may mark a withheld number by `Privacy: id` alone and leave it in From, where it
/// is the called side's to keep (its call records and routing) but not to show around
/// (RFC 3323 §4.1.1.3).
pub fn shown_name(
    request: &Request,
    trusted: bool,
    number_form: impl FnOnce(&str) -> String,
) -> Option<String> {
    if identity_withheld(&request.headers) {
        return Some(ANONYMOUS_NAME.to_owned());
    }
    let caller = caller(request, trusted)?;
    caller
        .display
        .filter(|n| !n.is_empty())
        .or_else(|| Some(number_form(&number_of(&caller.uri))).filter(|n| !n.is_empty()))
}

/// The user part of a SIP URI, or "", unescaped: `%36666` is `6666` (RFC 3261 §19.1.4), as a
/// phone writing `#` as `%23` means `#`. An escape that does not decode stays as written.
pub fn user_of(uri: &Uri) -> Cow<'_, str> {
    let user = uri.as_sip().and_then(|u| u.user.as_deref()).unwrap_or("");
    match user.contains('%') {
        true => crate::msg::lex::percent_decode(user).map_or(user.into(), Into::into),
        false => user.into(),
    }
}

/// The number a URI names: a SIP URI's user part, a tel URI's number.
/// A SIP user part's own parameters (`+4930123456;phone-context=+49`, `…;npdi`) are not part of
/// the number: left in, they would reach the rules (a room named by the called number would
/// take the caller's digits after the number).
pub fn number_of(uri: &Uri) -> Cow<'_, str> {
    match uri {
        Uri::Tel(t) => t.number.as_str().into(),
        _ => {
            let user = user_of(uri);
            match user.find(';') {
                Some(end) => user[..end].to_owned().into(),
                None => user,
            }
        }
    }
}

/// The caller of `request` as SIPx reports it: the asserted identity when the request comes
/// from a peer SIPx trusts (`trusted`) and its caller does not withhold it, else From.
pub fn caller(request: &Request, trusted: bool) -> Option<NameAddr> {
    let believed = trusted && !identity_withheld(&request.headers);
    believed
        .then(|| asserted_identity(&request.headers))
        .flatten()
        .or_else(|| request.from())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::msg::{SipMessage, parse_datagram};

    fn invite(extra: &str) -> Request {
        let raw = format!(
            "INVITE sip:800@sipx.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: \"Reception\" <sip:+4930100@carrier.example>;tag=1\r\n\
             To: <sip:800@sipx.test>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}\
             Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(raw.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn shown(request: &Request, trusted: bool) -> String {
        caller(request, trusted).unwrap().uri.to_string()
    }

    #[test]
    fn a_trusted_peers_assertion_names_the_caller() {
        let r = invite("P-Asserted-Identity: \"Desk 7\" <sip:+4930107@carrier.example>\r\n");
        assert_eq!(shown(&r, true), "sip:+4930107@carrier.example");
        assert_eq!(caller(&r, true).unwrap().display.as_deref(), Some("Desk 7"));
        // From anyone else, an assertion is only a claim: From stands.
        assert_eq!(shown(&r, false), "sip:+4930100@carrier.example");
    }

    #[test]
    fn a_withheld_identity_is_not_passed_on() {
        for privacy in ["id", "ID", "header;id", "user; id", "none,id"] {
            let r = invite(&format!(
                "Privacy: {privacy}\r\nP-Asserted-Identity: <sip:+4930107@carrier.example>\r\n"
            ));
            assert!(identity_withheld(&r.headers), "{privacy}");
            assert_eq!(shown(&r, true), "sip:+4930100@carrier.example", "{privacy}");
        }
        for privacy in ["none", "user", "identity", "header"] {
            let r = invite(&format!("Privacy: {privacy}\r\n"));
            assert!(!identity_withheld(&r.headers), "{privacy}");
        }
    }

    #[test]
    fn others_are_shown_a_name_a_number_or_anonymous() {
        let name = |extra: &str, trusted| shown_name(&invite(extra), trusted, str::to_owned);
        let desk = "P-Asserted-Identity: \"Desk 7\" <sip:+4930107@carrier.example>\r\n";
        assert_eq!(name(desk, true).as_deref(), Some("Desk 7"));
        assert_eq!(name(desk, false).as_deref(), Some("Reception"));
        let tel = "P-Asserted-Identity: <tel:+4930107>\r\n";
        assert_eq!(name(tel, true).as_deref(), Some("+4930107"));
        let escaped = "P-Asserted-Identity: <sip:%2B4930107;npdi@carrier.example>\r\n";
        assert_eq!(name(escaped, true).as_deref(), Some("+4930107"));
        // A number is shown in the form its trunk's rules give; a display name is not a number.
        let national = "P-Asserted-Identity: <tel:030107>\r\n";
        let e164 = |n: &str| n.replacen('0', "+49", 1);
        let shown_as = |extra: &str| shown_name(&invite(extra), true, e164);
        assert_eq!(shown_as(national).as_deref(), Some("+4930107"));
        assert_eq!(shown_as(desk).as_deref(), Some("Desk 7"));
        // Withheld: the number From still shows is not shown on.
        assert_eq!(
            name("Privacy: id\r\n", true).as_deref(),
            Some(ANONYMOUS_NAME)
        );
        assert_eq!(
            name("Privacy: id\r\n", false).as_deref(),
            Some(ANONYMOUS_NAME)
        );
    }

    #[test]
    fn the_called_user_is_read_unescaped() {
        let user = |s: &str| user_of(&Uri::parse(s).unwrap()).into_owned();
        assert_eq!(user("sip:%36666@192.0.2.1"), "6666");
        assert_eq!(user("sip:%65cho@192.0.2.1"), "echo");
        assert_eq!(user("sip:12%2334@192.0.2.1"), "12#34");
        assert_eq!(user("sip:%zz@192.0.2.1"), "%zz");
        assert_eq!(user("sip:192.0.2.1"), "");
    }

    #[test]
    fn an_anonymous_from_is_at_the_given_host() {
        assert_eq!(
            anonymous_from(Some("sip.carrier.example")),
            "\"Anonymous\" <sip:anonymous@sip.carrier.example>"
        );
        assert_eq!(
            anonymous_from(None),
            "\"Anonymous\" <sip:anonymous@anonymous.invalid>"
        );
        assert_eq!(anonymous_from(Some("")), anonymous_from(None));
    }

    #[test]
    fn the_first_sip_or_tel_identity_is_taken() {
        let r = invite(
            "P-Asserted-Identity: <mailto:x@example.com>, <tel:+4930107>\r\n\
             P-Asserted-Identity: <sip:+4930108@carrier.example>\r\n",
        );
        assert_eq!(shown(&r, true), "tel:+4930107");
        let junk = invite("P-Asserted-Identity: <<<\r\n");
        assert_eq!(shown(&junk, true), "sip:+4930100@carrier.example");
    }
}
