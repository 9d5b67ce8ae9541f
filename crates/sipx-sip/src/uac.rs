//! What a UAC derives from the INVITE it sent (RFC 3261 §9.1, §13.2.2.4, §22.2): the CANCEL,
//! the same request again with credentials after a 401/407, and the ACK of a 2xx.
//!
//! Pure functions over messages; the caller owns the transactions (the [`crate::Endpoint`])
//! and the dialog.

use crate::dialog::Dialog;
use crate::digest::{answer_challenge, best_challenge};
use crate::msg::{HasHeaders, Method, Request, Response};

/// The CANCEL of a pending request (§9.1): the same Request-URI, Call-ID, From, To, CSeq number
/// and Route set, and only the top Via, whose branch matches the CANCEL to the INVITE's
/// server transaction at the next hop.
pub fn cancel_for(request: &Request) -> Request {
    let mut cancel = Request {
        method: Method::Cancel,
        uri: request.uri.clone(),
        headers: crate::msg::Headers::new(),
        body: Vec::new(),
    };
    if let Some(via) = request.headers.list("Via").first() {
        cancel.headers.push("Via", *via);
    }
    for route in request.headers.get_all("Route") {
        cancel.headers.push("Route", route);
    }
    cancel.headers.push("Max-Forwards", "70");
    for name in ["From", "To", "Call-ID"] {
        if let Some(v) = request.headers.get(name) {
            cancel.headers.push(name, v);
        }
    }
    let seq = request.cseq().map_or(1, |c| c.seq);
    cancel.headers.push("CSeq", format!("{seq} CANCEL"));
    cancel.headers.push("Content-Length", "0");
    cancel
}

/// Credentials for a provider's challenges.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// `request` again, answering the 401/407 `challenge` (§22.2): a new top-Via `branch`, the next
/// CSeq, and an `Authorization` (401) or `Proxy-Authorization` (407) whose digest `uri` is the
/// Request-URI exactly as sent (strict SBCs refuse any other spelling). Credentials answering
/// an earlier challenge of the same kind are replaced. `None` when the challenge cannot be
/// answered (no digest we support, missing realm or nonce).
pub fn with_credentials(
    request: &Request,
    challenge: &Response,
    creds: Credentials<'_>,
    branch: &str,
    cnonce: &str,
    nc: u32,
) -> Option<Request> {
    let (challenge_header, answer_header) = match challenge.status {
        401 => ("WWW-Authenticate", "Authorization"),
        407 => ("Proxy-Authenticate", "Proxy-Authorization"),
        _ => return None,
    };
    let params = best_challenge(challenge.headers.get_all(challenge_header))?;
    let uri = request.uri.to_string();
    let value = answer_challenge(
        &params,
        request.method.as_str(),
        &uri,
        creds.username,
        creds.password,
        cnonce,
        nc,
    )?;
    let mut next = next_attempt(request, branch)?;
    next.headers.remove(answer_header);
    next.headers.push(answer_header, value);
    Some(next)
}

/// `request` again as a new transaction (after a challenge, a 422): the top Via gets a new
/// `branch`, CSeq the next number, the rest is kept (Call-ID and From tag too, §8.1.3.5).
/// `None` when the request has no readable Via.
pub fn next_attempt(request: &Request, branch: &str) -> Option<Request> {
    let mut next = request.clone();
    let mut vias = next
        .headers
        .list("Via")
        .iter()
        .map(|v| (*v).to_owned())
        .collect::<Vec<_>>();
    let mut top = crate::msg::Via::parse(vias.first()?)?;
    top.set_param("branch", Some(branch.to_owned()));
    vias[0] = top.to_string();
    next.headers.remove("Via");
    // Via first, where it was: some equipment reads only the first header lines.
    let rest = std::mem::take(&mut next.headers);
    for v in vias {
        next.headers.push("Via", v);
    }
    for h in rest.iter() {
        next.headers.push(&h.name, h.value.clone());
    }
    let seq = request.cseq().map_or(1, |c| c.seq).saturating_add(1);
    next.headers
        .set("CSeq", format!("{seq} {}", request.method.as_str()));
    Some(next)
}

/// The ACK of a 2xx to `invite` within `dialog` (§13.2.2.4): the INVITE's CSeq number, the
/// dialog's route set, and the INVITE's credentials (the ACK must carry the same ones).
/// `via` is the whole Via value with a fresh branch.
pub fn ack_for_2xx(dialog: &mut Dialog, invite: &Request, via: &str) -> Request {
    let seq = invite.cseq().map_or(1, |c| c.seq);
    let mut ack = dialog.request(Method::Ack, via, Some(seq));
    for name in ["Authorization", "Proxy-Authorization"] {
        for v in invite.headers.get_all(name) {
            ack.headers.push(name, v);
        }
    }
    ack.headers.push("Content-Length", "0");
    ack
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::digest::DigestParams;
    use crate::msg::{SipMessage, parse_datagram};

    const INVITE: &str = "INVITE sip:+4930123@provider.example;transport=udp SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfirst;rport\r\n\
        Route: <sip:edge.provider.example;lr>\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:sipx@192.0.2.1>;tag=ours\r\n\
        To: <sip:+4930123@provider.example>\r\n\
        Call-ID: call-1@192.0.2.1\r\n\
        CSeq: 1 INVITE\r\n\
        Contact: <sip:sipx@192.0.2.1:5060>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\r\nv=0\n";

    fn request(raw: &str) -> Request {
        match parse_datagram(raw.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    fn response(raw: &str) -> Response {
        match parse_datagram(raw.as_bytes()).unwrap() {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => unreachable!(),
        }
    }

    fn challenge(status: u16, header: &str) -> Response {
        response(&format!(
            "SIP/2.0 {status} Challenge\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfirst;rport\r\n\
             From: <sip:sipx@192.0.2.1>;tag=ours\r\nTo: <sip:+4930123@provider.example>;tag=p\r\n\
             Call-ID: call-1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\
             {header}: Digest realm=\"provider\", nonce=\"n1\", qop=\"auth\", algorithm=MD5\r\n\
             Content-Length: 0\r\n\r\n"
        ))
    }

    #[test]
    fn a_cancel_matches_the_invite_it_cancels() {
        let invite = request(INVITE);
        let cancel = cancel_for(&invite);
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(cancel.uri, invite.uri);
        assert_eq!(cancel.top_via().unwrap().branch(), Some("z9hG4bKfirst"));
        assert_eq!(cancel.headers.get("CSeq"), Some("1 CANCEL"));
        assert_eq!(
            cancel.headers.get("Route"),
            Some("<sip:edge.provider.example;lr>")
        );
        assert_eq!(cancel.headers.get("To"), invite.headers.get("To"));
        assert!(cancel.body.is_empty());
    }

    #[test]
    fn credentials_answer_the_challenge_with_the_exact_request_uri() {
        let invite = request(INVITE);
        for (status, header, answer) in [
            (401, "WWW-Authenticate", "Authorization"),
            (407, "Proxy-Authenticate", "Proxy-Authorization"),
        ] {
            let creds = Credentials {
                username: "alice",
                password: "secret",
            };
            let again = with_credentials(
                &invite,
                &challenge(status, header),
                creds,
                "z9hG4bKsecond",
                "cn",
                1,
            )
            .unwrap();
            assert_eq!(again.top_via().unwrap().branch(), Some("z9hG4bKsecond"));
            assert_eq!(again.headers.get("CSeq"), Some("2 INVITE"));
            assert_eq!(again.body, invite.body);
            let params = DigestParams::parse(again.headers.get(answer).unwrap()).unwrap();
            assert_eq!(
                params.get("uri"),
                Some("sip:+4930123@provider.example;transport=udp")
            );
            assert_eq!(params.get("username"), Some("alice"));
            // A second challenge replaces the first credentials instead of piling them up.
            let third = with_credentials(
                &again,
                &challenge(status, header),
                creds,
                "z9hG4bKthird",
                "cn",
                2,
            )
            .unwrap();
            assert_eq!(third.headers.count(answer), 1);
            assert_eq!(third.headers.get("CSeq"), Some("3 INVITE"));
        }
    }

    #[test]
    fn an_unanswerable_challenge_gives_nothing() {
        let invite = request(INVITE);
        let creds = Credentials {
            username: "a",
            password: "b",
        };
        let odd = challenge(401, "WWW-Authenticate: Basic realm=\"x\"\r\nX-Ignore");
        assert!(with_credentials(&invite, &odd, creds, "z9hG4bK2", "c", 1).is_none());
        let not_a_challenge = challenge(486, "X-Nothing");
        assert!(with_credentials(&invite, &not_a_challenge, creds, "z9hG4bK2", "c", 1).is_none());
    }

    #[test]
    fn the_ack_of_a_2xx_takes_the_dialog_route_and_the_invite_credentials() {
        let mut invite = request(INVITE);
        invite
            .headers
            .push("Proxy-Authorization", "Digest username=\"alice\"");
        let ok = response(
            "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfirst;rport\r\n\
             Record-Route: <sip:edge.provider.example;lr>\r\n\
             From: <sip:sipx@192.0.2.1>;tag=ours\r\nTo: <sip:+4930123@provider.example>;tag=callee\r\n\
             Call-ID: call-1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:callee@198.51.100.7:5070>\r\nContent-Length: 0\r\n\r\n",
        );
        let mut dialog = Dialog::from_uac(&invite, &ok).unwrap();
        let ack = ack_for_2xx(
            &mut dialog,
            &invite,
            "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack",
        );
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri.to_string(), "sip:callee@198.51.100.7:5070");
        assert_eq!(ack.headers.get("CSeq"), Some("1 ACK"));
        assert_eq!(
            ack.headers.get("Route"),
            Some("<sip:edge.provider.example;lr>")
        );
        assert_eq!(
            ack.headers.get("Proxy-Authorization"),
            Some("Digest username=\"alice\"")
        );
        assert!(ack.headers.get("To").unwrap().contains("tag=callee"));
    }
}
