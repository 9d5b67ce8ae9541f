//! Reliable provisional responses (RFC 3262), the caller's side: which 1xx answers to our
//! INVITE were sent reliably, which of them to acknowledge with a PRACK, and the PRACK itself.
//!
//! Networks that play ringback or announcements before the answer (IMS cores, many carrier
//! SBCs) send their 180/183 reliably and hold the call until the PRACK comes: a caller that
//! does not acknowledge them is failed after 64·T1. Each early dialog (one per To tag, as a
//! forked INVITE yields several) numbers its reliable answers with `RSeq` on its own, and its
//! PRACKs take CSeq numbers in that dialog, which the 2xx's dialog must then count on from.

use crate::dialog::Dialog;
use crate::msg::{HasHeaders, Headers, Method, NameAddr, Request, Response};

/// The option tag of reliable provisional responses.
pub const OPTION_TAG: &str = "100rel";

/// The highest `RSeq` an early dialog's first reliable answer may carry (RFC 3262 §3).
const FIRST_RSEQ_MAX: u32 = 0x7fff_ffff;

/// Early dialogs this many at most are acknowledged: a fork storm cannot grow the state.
const MAX_EARLY_DIALOGS: usize = 16;

/// The `RSeq` of a provisional response sent reliably: a 101–199 that requires `100rel` and
/// carries an `RSeq` (1 to 2^32 − 1, RFC 3262 §7.1: a dialog's first is at most 2^31 − 1, the
/// ones after it go up by one). A 1xx that requires `100rel` without one is taken as
/// unreliable: there is nothing to acknowledge it by.
pub fn rseq_of(response: &Response) -> Option<u32> {
    if !(101..200).contains(&response.status) || !requires_reliable(&response.headers) {
        return None;
    }
    let rseq: u32 = response.headers.get("RSeq")?.trim().parse().ok()?;
    (rseq >= 1).then_some(rseq)
}

/// Whether a message's `Require` names `100rel`: an INVITE's asks its provisional answers
/// to be sent reliably, a 1xx's says it was.
pub fn requires_reliable(headers: &Headers) -> bool {
    headers
        .list("Require")
        .iter()
        .any(|tag| tag.eq_ignore_ascii_case(OPTION_TAG))
}

/// What to do with a provisional answer to our INVITE.
#[derive(Debug, PartialEq)]
pub enum Provisional {
    /// Sent unreliably: act on it, nothing to acknowledge.
    Unreliable,
    /// A new reliable answer: act on it and send this PRACK (within its early dialog).
    Acknowledge(Box<Request>),
    /// A retransmission of one already acknowledged, or one out of order (the callee sends it
    /// again after the one before it is acknowledged): dropped, as RFC 3262 §4 says.
    Drop,
}

/// One early dialog's reliable answers: its dialog (for PRACK's CSeq, route and target), the
/// last `RSeq` acknowledged in order, and the SDP answer the first of them with one carried.
#[derive(Debug)]
struct EarlyDialog {
    dialog: Dialog,
    last_rseq: u32,
    answer: Option<Vec<u8>>,
}

/// The reliable provisional answers to one INVITE, per early dialog.
#[derive(Debug, Default)]
pub struct ReliableProvisionals {
    early: Vec<EarlyDialog>,
}

impl ReliableProvisionals {
    /// Sorts out `response`, a 1xx to `invite`; `via` is the Via value a PRACK would carry
    /// (a fresh branch). A reliable answer without To tag or Contact opens no dialog to send
    /// a PRACK in: it is acted on as if unreliable.
    pub fn on_provisional(
        &mut self,
        invite: &Request,
        response: &Response,
        via: &str,
    ) -> Provisional {
        let Some(rseq) = rseq_of(response) else {
            return Provisional::Unreliable;
        };
        let Some(tag) = response.tag_of_to() else {
            return Provisional::Unreliable;
        };
        let index = match self
            .early
            .iter()
            .position(|e| e.dialog.id.remote_tag == tag)
        {
            Some(i) => {
                // In order is one more than the last; anything else waits for its turn or
                // was already acknowledged.
                if self.early[i].last_rseq.checked_add(1) != Some(rseq) {
                    return Provisional::Drop;
                }
                i
            }
            None => {
                if rseq > FIRST_RSEQ_MAX {
                    return Provisional::Unreliable;
                }
                if self.early.len() >= MAX_EARLY_DIALOGS {
                    return Provisional::Drop;
                }
                let Some(dialog) = Dialog::from_uac(invite, response) else {
                    return Provisional::Unreliable;
                };
                self.early.push(EarlyDialog {
                    dialog,
                    last_rseq: rseq,
                    answer: None,
                });
                self.early.len() - 1
            }
        };
        let early = &mut self.early[index];
        early.last_rseq = rseq;
        let Some(cseq) = invite.cseq() else {
            return Provisional::Unreliable;
        };
        let mut prack = early.dialog.request(Method::Prack, via, None);
        prack
            .headers
            .push("RAck", format!("{rseq} {} {}", cseq.seq, cseq.method));
        prack.headers.push("Content-Length", "0");
        Provisional::Acknowledge(Box::new(prack))
    }

    fn find(&self, tag: &str) -> Option<&EarlyDialog> {
        self.early.iter().find(|e| e.dialog.id.remote_tag == tag)
    }

    /// The last CSeq number our PRACKs took in the early dialog that `tag` names: the dialog
    /// the 2xx confirms must count on from it (RFC 3261 §12.2.1.1).
    pub fn last_cseq(&self, tag: &str) -> Option<u32> {
        self.find(tag).map(|e| e.dialog.local_cseq)
    }

    /// The route set of the early dialog `tag` names: its PRACKs' first hop is found from it.
    pub fn route_set(&self, tag: &str) -> Option<&[NameAddr]> {
        self.find(tag).map(|e| e.dialog.route_set.as_slice())
    }

    /// Keeps `sdp`, the SDP answer of a reliable answer in the early dialog `tag` names, unless
    /// one came before: the first is the dialog's answer (RFC 3262 §5, RFC 3261 §13.2.1).
    pub fn keep_answer(&mut self, tag: &str, sdp: &[u8]) {
        if let Some(e) = self
            .early
            .iter_mut()
            .find(|e| e.dialog.id.remote_tag == tag)
            && e.answer.is_none()
        {
            e.answer = Some(sdp.to_vec());
        }
    }

    /// The SDP answer a reliable answer of the early dialog `tag` names carried: the answer of
    /// that dialog's 2xx too, whether it repeats it, leaves it out or (wrongly) differs.
    pub fn answer(&self, tag: &str) -> Option<&[u8]> {
        self.find(tag).and_then(|e| e.answer.as_deref())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::msg::{SipMessage, parse_datagram};

    const INVITE: &str = "INVITE sip:+4930123@carrier.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv;rport\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:sipx@192.0.2.1>;tag=ours\r\n\
        To: <sip:+4930123@carrier.example>\r\n\
        Call-ID: rel-1@192.0.2.1\r\n\
        CSeq: 3 INVITE\r\n\
        Contact: <sip:sipx@192.0.2.1:5060>\r\n\
        Supported: 100rel\r\n\
        Content-Length: 0\r\n\r\n";

    fn invite() -> Request {
        match parse_datagram(INVITE.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn provisional(status: &str, tag: &str, extra: &str) -> Response {
        let raw = format!(
            "SIP/2.0 {status}\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv;rport\r\n\
             Record-Route: <sip:sbc.carrier.example;lr>\r\n\
             From: <sip:sipx@192.0.2.1>;tag=ours\r\n\
             To: <sip:+4930123@carrier.example>;tag={tag}\r\n\
             Call-ID: rel-1@192.0.2.1\r\n\
             CSeq: 3 INVITE\r\n\
             Contact: <sip:callee@198.51.100.7:5060>\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        );
        match parse_datagram(raw.as_bytes()) {
            Ok(SipMessage::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn prack(p: Provisional) -> Request {
        match p {
            Provisional::Acknowledge(r) => *r,
            other => panic!("no PRACK: {other:?}"),
        }
    }

    const RELIABLE: &str = "Require: 100rel\r\nRSeq: 7\r\n";

    #[test]
    fn a_reliable_183_is_acknowledged_in_its_early_dialog() {
        let mut rel = ReliableProvisionals::default();
        let r = provisional("183 Session Progress", "a", RELIABLE);
        let p =
            prack(rel.on_provisional(&invite(), &r, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp1"));
        assert_eq!(p.method, Method::Prack);
        assert_eq!(p.uri.to_string(), "sip:callee@198.51.100.7:5060");
        assert_eq!(p.headers.get("RAck"), Some("7 3 INVITE"));
        assert_eq!(p.headers.get("CSeq"), Some("4 PRACK"));
        assert_eq!(p.headers.get("Route"), Some("<sip:sbc.carrier.example;lr>"));
        assert!(p.headers.get("To").unwrap().contains("tag=a"));
        assert!(p.headers.get("From").unwrap().contains("tag=ours"));
        assert_eq!(rel.last_cseq("a"), Some(4));
    }

    #[test]
    fn retransmissions_and_answers_out_of_order_are_dropped() {
        let mut rel = ReliableProvisionals::default();
        let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp";
        let first = provisional("180 Ringing", "a", "Require: 100rel\r\nRSeq: 1\r\n");
        prack(rel.on_provisional(&invite(), &first, via));
        assert_eq!(
            rel.on_provisional(&invite(), &first, via),
            Provisional::Drop
        );
        let third = provisional(
            "183 Session Progress",
            "a",
            "Require: 100rel\r\nRSeq: 3\r\n",
        );
        assert_eq!(
            rel.on_provisional(&invite(), &third, via),
            Provisional::Drop
        );
        let second = provisional(
            "183 Session Progress",
            "a",
            "Require: 100rel\r\nRSeq: 2\r\n",
        );
        let p = prack(rel.on_provisional(&invite(), &second, via));
        assert_eq!(p.headers.get("RAck"), Some("2 3 INVITE"));
        assert_eq!(p.headers.get("CSeq"), Some("5 PRACK"));
        assert_eq!(rel.last_cseq("a"), Some(5));
    }

    #[test]
    fn the_first_reliable_answer_of_a_dialog_is_its_answer() {
        let mut rel = ReliableProvisionals::default();
        let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp";
        prack(rel.on_provisional(
            &invite(),
            &provisional("183 Session Progress", "a", RELIABLE),
            via,
        ));
        rel.keep_answer("a", b"first");
        rel.keep_answer("a", b"second");
        rel.keep_answer("b", b"no such dialog");
        assert_eq!(rel.answer("a"), Some(&b"first"[..]));
        assert_eq!(rel.answer("b"), None);
        let routes: Vec<String> = rel
            .route_set("a")
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(routes, ["<sip:sbc.carrier.example;lr>"]);
    }

    #[test]
    fn each_fork_numbers_its_answers_and_its_pracks_on_its_own() {
        let mut rel = ReliableProvisionals::default();
        let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp";
        prack(rel.on_provisional(&invite(), &provisional("180 Ringing", "a", RELIABLE), via));
        let b =
            prack(rel.on_provisional(&invite(), &provisional("180 Ringing", "b", RELIABLE), via));
        assert_eq!(b.headers.get("CSeq"), Some("4 PRACK"));
        assert!(b.headers.get("To").unwrap().contains("tag=b"));
        assert_eq!(rel.last_cseq("b"), Some(4));
        assert_eq!(rel.last_cseq("c"), None);
    }

    #[test]
    fn unreliable_and_unnumbered_answers_are_not_acknowledged() {
        let mut rel = ReliableProvisionals::default();
        let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp";
        for extra in [
            "",
            "RSeq: 5\r\n",
            "Require: 100rel\r\n",
            "Require: 100rel\r\nRSeq: 0\r\n",
            "Require: 100rel\r\nRSeq: 2147483648\r\n",
            "Require: 100rel\r\nRSeq: x\r\n",
        ] {
            let r = provisional("180 Ringing", "a", extra);
            assert_eq!(
                rel.on_provisional(&invite(), &r, via),
                Provisional::Unreliable,
                "{extra}"
            );
        }
        // Past 2^31 − 1 only after a first answer below it.
        let first = provisional(
            "180 Ringing",
            "z",
            "Require: 100rel\r\nRSeq: 2147483647\r\n",
        );
        let next = provisional(
            "183 Progress",
            "z",
            "Require: 100rel\r\nRSeq: 2147483648\r\n",
        );
        assert!(matches!(
            rel.on_provisional(&invite(), &first, via),
            Provisional::Acknowledge(_)
        ));
        let Provisional::Acknowledge(prack) = rel.on_provisional(&invite(), &next, via) else {
            panic!("the second reliable answer is acknowledged");
        };
        assert!(
            prack
                .headers
                .get("RAck")
                .unwrap()
                .starts_with("2147483648 ")
        );
        // Another tag in the Require list, spelled in capitals: still reliable.
        let r = provisional("180 Ringing", "a", "Require: timer, 100REL\r\nRSeq: 9\r\n");
        assert_eq!(rseq_of(&r), Some(9));
        // A 100 is never reliable, whatever it says.
        let trying = provisional("100 Trying", "a", RELIABLE);
        assert_eq!(
            rel.on_provisional(&invite(), &trying, via),
            Provisional::Unreliable
        );
    }

    #[test]
    fn a_reliable_answer_without_contact_opens_no_dialog_to_acknowledge_in() {
        let mut rel = ReliableProvisionals::default();
        let raw = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv\r\n\
            From: <sip:sipx@192.0.2.1>;tag=ours\r\nTo: <sip:+4930123@carrier.example>;tag=a\r\n\
            Call-ID: rel-1@192.0.2.1\r\nCSeq: 3 INVITE\r\nRequire: 100rel\r\nRSeq: 1\r\n\
            Content-Length: 0\r\n\r\n";
        let Ok(SipMessage::Response(r)) = parse_datagram(raw.as_bytes()) else {
            panic!()
        };
        let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp";
        assert_eq!(
            rel.on_provisional(&invite(), &r, via),
            Provisional::Unreliable
        );
    }

    #[test]
    fn forks_past_the_bound_are_not_acknowledged() {
        let mut rel = ReliableProvisionals::default();
        let via = "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp";
        for i in 0..MAX_EARLY_DIALOGS {
            let r = provisional("180 Ringing", &format!("t{i}"), RELIABLE);
            prack(rel.on_provisional(&invite(), &r, via));
        }
        let r = provisional("180 Ringing", "one-too-many", RELIABLE);
        assert_eq!(rel.on_provisional(&invite(), &r, via), Provisional::Drop);
    }
}
