//! Dialogs (RFC 3261 §12): the state two user agents share between an INVITE and its BYE.
//!
//! A [`Dialog`] is made from the INVITE and a response carrying a To tag (UAC side), or from a
//! received INVITE and our tag (UAS side). It remembers the route set, the remote target and
//! both CSeq counters; it builds in-dialog requests with the right Request-URI and Route
//! headers (loose or strict routing) and checks those it receives. A forked INVITE yields one
//! early dialog per remote tag; the caller keeps them by [`DialogId`] and confirms the one that
//! answers 2xx.

use crate::msg::{HasHeaders, Headers, Method, NameAddr, Request, Response, Uri};

/// Call-ID plus both tags, from this side's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a received request belongs to (we are the UAS of it): local = To tag.
    pub fn of_request(req: &Request) -> Option<DialogId> {
        Some(DialogId {
            call_id: req.call_id()?.to_owned(),
            local_tag: req.tag_of_to()?.to_owned(),
            remote_tag: req.tag_of_from().unwrap_or_default().to_owned(),
        })
    }

    /// The dialog a received response belongs to (we sent the request): local = From tag.
    pub fn of_response(resp: &Response) -> Option<DialogId> {
        Some(DialogId {
            call_id: resp.call_id()?.to_owned(),
            local_tag: resp.tag_of_from()?.to_owned(),
            remote_tag: resp.tag_of_to()?.to_owned(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response with a tag.
    Early,
    Confirmed,
}

/// Why an in-dialog request is refused, as the status to answer it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogError {
    /// CSeq not higher than the last one (RFC 3261 §12.2.2): 500.
    OutOfOrder,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dialog {
    pub id: DialogId,
    pub state: DialogState,
    /// Our URI with our tag (From in requests we send).
    pub local: NameAddr,
    /// The peer's URI with its tag (To in requests we send).
    pub remote: NameAddr,
    /// Where in-dialog requests go: the peer's Contact, updated by target refreshes.
    pub remote_target: Uri,
    /// Route set, in the order requests must traverse it.
    pub route_set: Vec<NameAddr>,
    pub local_cseq: u32,
    pub remote_cseq: Option<u32>,
    /// Whether the dialog was set up with a `sips:` Request-URI.
    pub secure: bool,
}

/// The Contact of a request or answer that sets up or refreshes a dialog: a SIP or SIPS URI
/// (RFC 3261 §8.1.1.8; a `tel:` one names nowhere to send requests).
fn contact_uri(headers: &Headers) -> Option<Uri> {
    headers
        .list("Contact")
        .first()
        .and_then(|c| NameAddr::parse(c))
        .map(|c| c.uri)
        .filter(|u| matches!(u, Uri::Sip(_)))
}

/// The Record-Route values, or `None` when one does not parse: a dialog whose route set is
/// partly unreadable would send its requests past a proxy that asked to see them.
fn routes(headers: &Headers) -> Option<Vec<NameAddr>> {
    headers
        .list("Record-Route")
        .iter()
        .map(|r| NameAddr::parse(r))
        .collect()
}

impl Dialog {
    /// The UAC's dialog from its INVITE and a 1xx (with To tag) or 2xx answer (§12.1.2).
    /// A forked INVITE calls this once per distinct To tag.
    pub fn from_uac(invite: &Request, response: &Response) -> Option<Dialog> {
        let id = DialogId::of_response(response)?;
        let state = match response.status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            _ => return None,
        };
        let mut route_set = routes(&response.headers)?;
        route_set.reverse();
        Some(Dialog {
            id,
            state,
            local: invite.from()?,
            remote: response.to()?,
            remote_target: contact_uri(&response.headers)?,
            route_set,
            local_cseq: invite.cseq()?.seq,
            remote_cseq: None,
            secure: matches!(&invite.uri, Uri::Sip(u) if u.secure),
        })
    }

    /// The UAS's dialog from a received INVITE and the tag it answers with (§12.1.1).
    /// `provisional`: the dialog is early until the 2xx is sent. Without one, the first fault
    /// found, named as the reason phrase of the INVITE's 400 (a UA's log then says what to fix).
    pub fn from_uas(
        invite: &Request,
        local_tag: &str,
        provisional: bool,
    ) -> Result<Dialog, &'static str> {
        const MISSING: &str = "Missing dialog headers";
        let mut local = invite.to().ok_or(MISSING)?;
        local.set_param("tag", Some(local_tag.to_owned()));
        let remote = invite.from().ok_or(MISSING)?;
        // An RFC 2543 peer sends no From tag: its tag is null (RFC 3261 §12.1.1), and its
        // requests in the dialog carry none either (`DialogId::of_request`).
        let remote_tag = remote.tag().unwrap_or_default().to_owned();
        // An RFC 2543 peer (no magic cookie in its branch) may send no Contact: its requests
        // come from, and ours go to, its From address (RFC 4475 §3.4.1 asks for leniency).
        let rfc2543 = invite.top_via().is_none_or(|v| {
            !v.branch()
                .is_some_and(|b| b.starts_with(crate::msg::MAGIC_COOKIE))
        });
        let contact = contact_uri(&invite.headers);
        let remote_target = match (contact, invite.headers.list("Contact").is_empty()) {
            (Some(target), _) => target,
            (None, true) if rfc2543 => remote.uri.clone(),
            (None, true) => return Err("Missing Contact"),
            (None, false) => return Err("Contact not a SIP address"),
        };
        Ok(Dialog {
            id: DialogId {
                call_id: invite.call_id().ok_or(MISSING)?.to_owned(),
                local_tag: local_tag.to_owned(),
                remote_tag,
            },
            state: if provisional {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            local,
            remote,
            remote_target,
            route_set: routes(&invite.headers).ok_or("Bad Record-Route")?,
            local_cseq: 0,
            remote_cseq: Some(invite.cseq().ok_or(MISSING)?.seq),
            secure: matches!(&invite.uri, Uri::Sip(u) if u.secure),
        })
    }

    /// A 2xx arrived (or was sent): the dialog is confirmed; a UAC takes the final route set
    /// and target from the 2xx (§13.2.2.4).
    pub fn confirm(&mut self, response: Option<&Response>) {
        self.state = DialogState::Confirmed;
        if let Some(r) = response {
            // An unreadable route set leaves the early one in place.
            if let Some(mut rs) = routes(&r.headers) {
                rs.reverse();
                self.route_set = rs;
            }
            if let Some(target) = contact_uri(&r.headers) {
                self.remote_target = target;
            }
        }
    }

    /// Builds a request within the dialog (§12.2.1.1). `via` is the whole Via value, with a
    /// fresh branch. ACK and CANCEL reuse `cseq` (the INVITE's); others take the next number.
    pub fn request(
        &mut self,
        method: Method,
        via: &str,
        ack_or_cancel_cseq: Option<u32>,
    ) -> Request {
        let seq = match ack_or_cancel_cseq {
            Some(seq) => seq,
            None => {
                self.local_cseq += 1;
                self.local_cseq
            }
        };
        let mut h = Headers::new();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        // Loose routing when the first route has `lr`; strict routing (RFC 2543 proxies)
        // otherwise: the first route becomes the Request-URI and the target the last Route.
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| r.uri.as_sip().is_some_and(|u| u.param("lr").is_some()));
        let uri = if loose {
            for r in &self.route_set {
                h.push("Route", r.to_string());
            }
            self.remote_target.clone()
        } else {
            for r in &self.route_set[1..] {
                h.push("Route", r.to_string());
            }
            h.push("Route", format!("<{}>", self.remote_target));
            self.route_set[0].uri.clone()
        };
        h.push("From", self.local.to_string());
        h.push("To", self.remote.to_string());
        h.push("Call-ID", self.id.call_id.clone());
        h.push("CSeq", format!("{seq} {method}"));
        Request {
            method,
            uri,
            headers: h,
            body: Vec::new(),
        }
    }

    /// Checks a request received within the dialog (§12.2.2) and applies a target refresh
    /// (re-INVITE, UPDATE) when it carries a Contact.
    pub fn on_request(&mut self, req: &Request) -> Result<(), DialogError> {
        let seq = req.cseq().map_or(0, |c| c.seq);
        if req.method != Method::Ack && req.method != Method::Cancel {
            if self.remote_cseq.is_some_and(|last| seq <= last) {
                return Err(DialogError::OutOfOrder);
            }
            self.remote_cseq = Some(seq);
        }
        if matches!(req.method, Method::Invite | Method::Update)
            && let Some(target) = contact_uri(&req.headers)
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// A 2xx to a target refresh we sent: the peer may have moved (§12.2.1.2).
    pub fn on_refresh_response(&mut self, resp: &Response) {
        if (200..300).contains(&resp.status)
            && let Some(target) = contact_uri(&resp.headers)
        {
            self.remote_target = target;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{SipMessage, parse_datagram};

    const INVITE: &str = "INVITE sip:bob@biloxi.example SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bKnashds8\r\n\
        Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example>\r\n\
        From: Alice <sip:alice@atlanta.example>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@pc33.atlanta.example>\r\n\
        Record-Route: <sip:p2.biloxi.example;lr>, <sip:p1.atlanta.example;lr>\r\n\
        Content-Length: 0\r\n\r\n";

    fn invite() -> Request {
        match parse_datagram(INVITE.as_bytes()) {
            Ok(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dialog_needs_a_sip_contact_and_a_readable_route_set() {
        // The dialog made of the INVITE with `from` replaced by `to`, or why there is none.
        let with = |from: &str, to: &str| {
            let text = INVITE.replace(from, to);
            match parse_datagram(text.as_bytes()) {
                Ok(SipMessage::Request(r)) => Dialog::from_uas(&r, "t1", false),
                other => panic!("{other:?}"),
            }
        };
        assert!(with("", "").is_ok());
        let contact = "Contact: <sip:alice@pc33.atlanta.example>";
        assert_eq!(
            with(contact, "Contact: <tel:+4930123>").err(),
            Some("Contact not a SIP address")
        );
        assert_eq!(
            with(contact, "Contact: *").err(),
            Some("Contact not a SIP address")
        );
        assert_eq!(
            with(contact, "X-No-Contact: 1").err(),
            Some("Missing Contact")
        );
        let rr = "Record-Route: <sip:p2.biloxi.example;lr>";
        assert_eq!(
            with(rr, "Record-Route: <sip:p2.biloxi.example;lr").err(),
            Some("Bad Record-Route")
        );
        // RFC 2543 peers send no From tag: a null one (RFC 3261 §12.1.1).
        let untagged = with(";tag=1928301774", "").map(|d| d.id.remote_tag);
        assert_eq!(untagged, Ok(String::new()));
        // Nor, some, a Contact: known by a branch without the magic cookie, they are
        // reached at their From address (RFC 4475 §3.4.1).
        let old = INVITE
            .replace(contact, "X-No-Contact: 1")
            .replace("branch=z9hG4bK", "branch=");
        let Ok(SipMessage::Request(r)) = parse_datagram(old.as_bytes()) else {
            panic!("{old}")
        };
        let from = r.from().unwrap().uri.to_string();
        let target = Dialog::from_uas(&r, "t1", false).map(|d| d.remote_target.to_string());
        assert_eq!(target, Ok(from));
    }

    fn answer(status: u16, tag: &str, contact: &str) -> Response {
        invite()
            .response(status, Some(tag))
            .with_header("Contact", contact)
            .with_header(
                "Record-Route",
                "<sip:p2.biloxi.example;lr>, <sip:p1.atlanta.example;lr>",
            )
    }

    #[test]
    fn uac_dialog_routes_requests_through_the_reversed_route_set() {
        let mut d = Dialog::from_uac(&invite(), &answer(200, "b1", "<sip:bob@192.0.2.4>")).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.id.remote_tag, "b1");
        let bye = d.request(
            Method::Bye,
            "SIP/2.0/UDP pc33.atlanta.example;branch=z9hG4bKbye",
            None,
        );
        assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.4");
        let routes: Vec<&str> = bye.headers.get_all("Route").collect();
        assert_eq!(
            routes,
            ["<sip:p1.atlanta.example;lr>", "<sip:p2.biloxi.example;lr>"]
        );
        assert_eq!(bye.cseq().unwrap().seq, 314_160);
        assert_eq!(bye.to().unwrap().tag(), Some("b1"));
        assert_eq!(bye.from().unwrap().tag(), Some("1928301774"));
        let ack = d.request(
            Method::Ack,
            "SIP/2.0/UDP x;branch=z9hG4bKack",
            Some(314_159),
        );
        assert_eq!(ack.cseq().unwrap().seq, 314_159);
    }

    #[test]
    fn forking_makes_one_early_dialog_per_tag_and_the_2xx_confirms_one() {
        let a = Dialog::from_uac(&invite(), &answer(180, "fork-a", "<sip:bob@192.0.2.5>")).unwrap();
        let mut b =
            Dialog::from_uac(&invite(), &answer(183, "fork-b", "<sip:bob@192.0.2.6>")).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!((a.state, b.state), (DialogState::Early, DialogState::Early));
        let ok = answer(200, "fork-b", "<sip:bob@192.0.2.7>");
        assert_eq!(DialogId::of_response(&ok).as_ref(), Some(&b.id));
        b.confirm(Some(&ok));
        assert_eq!(b.state, DialogState::Confirmed);
        assert_eq!(
            b.remote_target.to_string(),
            "sip:bob@192.0.2.7",
            "the 2xx's Contact wins"
        );
        assert!(
            Dialog::from_uac(&invite(), &invite().response(100, None)).is_none(),
            "no tag, no dialog"
        );
    }

    #[test]
    fn uas_dialog_checks_cseq_and_follows_target_refresh() {
        let mut d = Dialog::from_uas(&invite(), "uas-tag", true).unwrap();
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(d.route_set.len(), 2);
        let mut reinvite = invite();
        reinvite.headers.set("CSeq", "314160 INVITE");
        reinvite.headers.set("Contact", "<sip:alice@198.51.100.9>");
        assert_eq!(d.on_request(&reinvite), Ok(()));
        assert_eq!(d.remote_target.to_string(), "sip:alice@198.51.100.9");
        assert_eq!(d.on_request(&reinvite), Err(DialogError::OutOfOrder));
        let bye = d.request(Method::Bye, "SIP/2.0/UDP sipx;branch=z9hG4bKb", None);
        assert_eq!(bye.cseq().unwrap().seq, 1);
        assert_eq!(bye.from().unwrap().tag(), Some("uas-tag"));
        assert_eq!(bye.to().unwrap().tag(), Some("1928301774"));
        // As UAS the route set keeps the request's order.
        assert_eq!(
            bye.headers.get_all("Route").collect::<Vec<_>>(),
            ["<sip:p2.biloxi.example;lr>", "<sip:p1.atlanta.example;lr>"]
        );
    }

    #[test]
    fn strict_routing_puts_the_first_route_in_the_request_uri() {
        let mut resp = invite()
            .response(200, Some("s1"))
            .with_header("Contact", "<sip:bob@192.0.2.4>");
        resp.headers.push("Record-Route", "<sip:strict.example>");
        let mut d = Dialog::from_uac(&invite(), &resp).unwrap();
        let bye = d.request(Method::Bye, "SIP/2.0/UDP a;branch=z9hG4bKs", None);
        assert_eq!(bye.uri.to_string(), "sip:strict.example");
        assert_eq!(
            bye.headers.get_all("Route").collect::<Vec<_>>(),
            ["<sip:bob@192.0.2.4>"]
        );
    }
}
