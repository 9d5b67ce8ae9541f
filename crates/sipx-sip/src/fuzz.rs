//! Fuzz target bodies. The `fuzz/` crate wraps each in one line; keeping them here means the
//! normal build compiles them and they cannot rot.

use crate::msg::{Framed, Framer, HasHeaders, SipMessage, parse_datagram};

/// Any bytes: parsing never panics, and whatever parses survives a serialise/parse round trip
/// with the same start line, Call-ID, CSeq and body.
pub fn sip_message(data: &[u8]) {
    let Ok(msg) = parse_datagram(data) else {
        return;
    };
    // Whatever the body, finding its SDP never panics and yields bytes of the body.
    if let SipMessage::Request(r) = &msg
        && let crate::msg::SdpBody::Sdp(sdp) = crate::msg::sdp_body(&r.headers, &r.body)
    {
        assert!(sdp.len() <= r.body.len());
    }
    // Whatever its Session-Expires, reading it never panics, and an interval taken is never
    // below the minimum.
    if let SipMessage::Request(r) = &msg {
        use crate::session_timer::{MIN_SE_FLOOR, UasTimer, negotiate_uas};
        if let UasTimer::On { interval, .. } = negotiate_uas(r, MIN_SE_FLOOR) {
            assert!(interval >= MIN_SE_FLOOR);
        }
    }
    // Whatever its Refer-To, reading a REFER never panics, and a target taken is short and
    // dialable (it becomes a dial-out's number).
    if let SipMessage::Request(r) = &msg
        && let Ok(referral) = crate::refer::read_referral(r)
    {
        assert!(!referral.target.is_empty() && referral.target.len() <= 64);
        assert!(referral.target.is_ascii());
        // An attended transfer's Replaces goes into SIPx's INVITE: one header line that reads
        // back as the dialog it names.
        if let Some(replaces) = &referral.replaces {
            assert!(
                !replaces
                    .bytes()
                    .any(|b| b.is_ascii_control() || b == b' ' || b == b',')
            );
            let read = crate::replaces::Replaces::parse(replaces);
            assert!(read.is_some_and(|r| replaces.starts_with(&r.dialog.call_id)));
        }
        // So does the Referred-By: one line, an address without parameters.
        if let Some(by) = &referral.referred_by {
            assert!(by.len() <= 256 && !by.chars().any(char::is_control));
            assert!(crate::msg::NameAddr::parse(by).is_some_and(|a| a.params.is_empty()));
        }
    }
    let bytes = msg.to_bytes();
    let again = match parse_datagram(&bytes) {
        Ok(m) => m,
        Err(e) => panic!(
            "serialised message does not parse ({}): {:?}",
            e.reason,
            String::from_utf8_lossy(&bytes)
        ),
    };
    match (&msg, &again) {
        (SipMessage::Request(a), SipMessage::Request(b)) => {
            assert_eq!(a.method, b.method);
            assert_eq!(a.uri.to_string(), b.uri.to_string());
            assert_eq!(a.call_id(), b.call_id());
            assert_eq!(a.cseq(), b.cseq());
            assert_eq!(a.body, b.body);
        }
        (SipMessage::Response(a), SipMessage::Response(b)) => {
            assert_eq!(a.status, b.status);
            assert_eq!(a.call_id(), b.call_id());
            assert_eq!(a.body, b.body);
        }
        _ => panic!("round trip changed the kind of message"),
    }
}

/// Any bytes cut at any points: the framer never panics and never yields more bytes than fed.
pub fn sip_framer(data: &[u8]) {
    let Some((&cuts, rest)) = data.split_first() else {
        return;
    };
    let mut framer = Framer::new();
    let step = usize::from(cuts % 16) + 1;
    for chunk in rest.chunks(step) {
        framer.push(chunk);
        loop {
            match framer.next_unit() {
                Ok(Some(Framed::Message(_) | Framed::Ping)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Digest credentials and challenges: parsing never panics.
pub fn digest(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::digest::DigestParams::parse(text);
    }
}
