//! `Replaces` (RFC 3891): naming a dialog so that a new INVITE takes its place. An attended
//! transfer puts it in a REFER's `Refer-To` URI as a header (RFC 3515 §2.1), which the
//! referred phone copies into its INVITE.

use crate::dialog::{Dialog, DialogId};
use crate::msg::Uri;

/// The `Replaces` value that names `id` to the *peer* of the dialog. The peer matches the
/// tags as if they came in a request (RFC 3891 §3): `to-tag` is its own (our remote) tag,
/// `from-tag` ours.
pub fn replaces_value(id: &DialogId) -> String {
    format!(
        "{};to-tag={};from-tag={}",
        id.call_id, id.remote_tag, id.local_tag
    )
}

/// The `Refer-To` URI that sends a referred phone to `dialog`'s peer with a `Replaces` of
/// that dialog: the peer's contact (its remote target) with the header escaped into it.
/// `None` when the peer's contact is not a SIP URI.
pub fn refer_to_replacing(dialog: &Dialog) -> Option<String> {
    let Uri::Sip(mut target) = dialog.remote_target.clone() else {
        return None;
    };
    // Headers of the contact itself have no meaning in a new request to it (RFC 3261 §19.1.5
    // lets a URI carry them; a Contact's never should).
    target.headers = vec![(
        "Replaces".to_owned(),
        escape_header_value(&replaces_value(&dialog.id)),
    )];
    Some(target.to_string())
}

/// Escapes a URI header value (RFC 3261 §25.1 `hvalue`): unreserved characters and
/// `hnv-unreserved` stay, everything else (`;`, `=`, `@`, `%`, spaces…) becomes `%XX`.
pub fn escape_header_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 16);
    for b in value.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'/'
                    | b'?'
                    | b':'
                    | b'+'
                    | b'$'
            );
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A received `Replaces` header (RFC 3891 §6.1): the dialog it names, from the point of view
/// of the UA that received it (`to-tag` is that UA's local tag), and `early-only`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub dialog: DialogId,
    pub early_only: bool,
}

impl Replaces {
    /// Parses a header value; `None` when the Call-ID or either tag is missing, or a tag is
    /// given twice (which of them would be meant?).
    pub fn parse(value: &str) -> Option<Replaces> {
        let mut parts = value.split(';');
        let call_id = parts.next()?.trim();
        if call_id.is_empty() {
            return None;
        }
        let (mut to_tag, mut from_tag, mut early_only) = (None, None, false);
        for param in parts {
            let (name, val) = match param.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (param.trim(), None),
            };
            let tag = match (name.to_ascii_lowercase().as_str(), val) {
                ("to-tag", Some(v)) => Some((&mut to_tag, v)),
                ("from-tag", Some(v)) => Some((&mut from_tag, v)),
                ("early-only", None) => {
                    early_only = true;
                    None
                }
                _ => None,
            };
            if let Some((slot, v)) = tag {
                if slot.is_some() {
                    return None;
                }
                *slot = Some(v.to_owned());
            }
        }
        Some(Replaces {
            dialog: DialogId {
                call_id: call_id.to_owned(),
                local_tag: to_tag.filter(|t| !t.is_empty())?,
                remote_tag: from_tag.filter(|t| !t.is_empty())?,
            },
            early_only,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::msg::lex::percent_decode;
    use crate::msg::{SipMessage, parse_datagram};

    fn dialog_with_contact(contact: &str) -> Dialog {
        let resp = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:sipx@10.0.0.1>;tag=ours\r\nTo: <sip:bob@10.0.0.2>;tag=theirs\r\n\
             Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 1 INVITE\r\n\
             Contact: <{contact}>\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(SipMessage::Response(resp)) = parse_datagram(resp.as_bytes()) else {
            panic!("test response does not parse");
        };
        let req = "INVITE sip:bob@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
             From: <sip:sipx@10.0.0.1>;tag=ours\r\nTo: <sip:bob@10.0.0.2>\r\n\
             Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:sipx@10.0.0.1>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        let Ok(SipMessage::Request(req)) = parse_datagram(req.as_bytes()) else {
            panic!("test request does not parse");
        };
        Dialog::from_uac(&req, &resp).unwrap()
    }

    #[test]
    fn the_refer_to_names_the_dialog_from_the_peers_side_escaped() {
        let d = dialog_with_contact("sip:bob@10.0.0.2:5070;transport=tcp");
        let refer_to = refer_to_replacing(&d).unwrap();
        assert_eq!(
            refer_to,
            "sip:bob@10.0.0.2:5070;transport=tcp?Replaces=a84b4c76e66710%40pc33.example.com\
             %3Bto-tag%3Dtheirs%3Bfrom-tag%3Dours"
        );
        // The URI parses back with the header, which unescapes to a Replaces the peer matches
        // against its own dialog (its local tag is our remote one).
        let Uri::Sip(u) = Uri::parse(&refer_to).unwrap() else {
            panic!("not a SIP URI");
        };
        let raw = &u.headers[0].1;
        let unescaped = percent_decode(raw).unwrap();
        let r = Replaces::parse(&unescaped).unwrap();
        assert_eq!(r.dialog.call_id, "a84b4c76e66710@pc33.example.com");
        assert_eq!(r.dialog.local_tag, "theirs");
        assert_eq!(r.dialog.remote_tag, "ours");
        assert!(!r.early_only);
    }

    #[test]
    fn a_tel_contact_cannot_be_replaced() {
        let mut d = dialog_with_contact("sip:bob@10.0.0.2");
        d.remote_target = Uri::parse("tel:+4930123").unwrap();
        assert_eq!(refer_to_replacing(&d), None);
    }

    #[test]
    fn received_replaces_headers() {
        let r =
            Replaces::parse("98732@sip.example.com ; from-tag=r33th4x0r;to-tag=ff87ff ;early-only")
                .unwrap();
        assert_eq!(r.dialog.call_id, "98732@sip.example.com");
        assert_eq!(r.dialog.local_tag, "ff87ff");
        assert_eq!(r.dialog.remote_tag, "r33th4x0r");
        assert!(r.early_only);
        assert_eq!(Replaces::parse("x;to-tag=a"), None);
        assert_eq!(Replaces::parse(";to-tag=a;from-tag=b"), None);
        assert_eq!(Replaces::parse("x;to-tag=;from-tag=b"), None);
        assert_eq!(Replaces::parse(""), None);
        assert_eq!(Replaces::parse("x;to-tag=a;from-tag=b;TO-TAG=c"), None);
    }
}
