//! Requests in early dialogs: the callee's in a dial-out's, before its 2xx (a target refresh
//! or an offer by UPDATE, RFC 3311 §5.1; keys by INFO; a keepalive by OPTIONS), and what both
//! directions answer alike.
//! They come from wherever the callee is, which need not be a known source: the dialog,
//! opened by its provisional answer, is what admits them (`Core::on_request`).

use std::time::Instant;

use sipx_sip::msg::{HasHeaders, Method, Request, Response};
use sipx_sip::{Peer, ServerTxnId};

use super::Core;
use super::calls::CONTACT_USER;

impl Core {
    /// The dial-out whose early dialog `req` belongs to, if any.
    pub(super) fn dial_out_in_early_dialog(&self, req: &Request) -> Option<String> {
        // Only requests with a To tag are in a dialog: the others need no search.
        req.tag_of_to()?;
        self.controls
            .by_id
            .iter()
            .find(|(_, c)| c.out.as_ref().is_some_and(|o| o.in_early_dialog(req)))
            .map(|(id, _)| id.clone())
    }

    /// Answers a request in dial-out `call`'s early dialog.
    pub(super) fn on_early_dial_out_request(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        source: Peer,
        call: &str,
    ) {
        let tag = req.tag_of_to().unwrap_or_default().to_owned();
        let resp = match req.method {
            // Our INVITE's offer is still unanswered in this dialog unless a reliable
            // provisional answered it: a new offer crosses ours (RFC 3311 §5.2: 491).
            Method::Update if !req.body.is_empty() => {
                let answered = req.tag_of_from().is_some_and(|t| {
                    self.controls
                        .out(call)
                        .is_some_and(|o| o.reliable_answer(t).is_some())
                });
                match answered {
                    false => req.response(491, Some(&tag)),
                    // Refusing an offer leaves the session as it was (RFC 3264 §6); the
                    // call's media are settled by its answer.
                    true => req.response(488, Some(&tag)).with_header(
                        "Warning",
                        format!(
                            "399 {} \"Session changes are taken once the call is answered\"",
                            self.warn_agent()
                        ),
                    ),
                }
            }
            _ => self.early_dialog_answer(&req, &tag, &source),
        };
        self.respond(now, txn, resp);
    }

    /// The answer to a request without an offer in an early dialog, of an inbound call or a
    /// dial-out: an UPDATE refreshes the target (its 2xx carries our Contact), keys pressed
    /// before the answer go nowhere yet, OPTIONS finds the dialog alive; nothing else belongs.
    pub(super) fn early_dialog_answer(&self, req: &Request, tag: &str, source: &Peer) -> Response {
        match req.method {
            Method::Update => req
                .response(200, Some(tag))
                .with_header("Contact", self.contact_for(source, CONTACT_USER)),
            Method::Info => super::info_dtmf::answer_info(req, tag).0,
            Method::Options => self.options_answer(req, tag),
            _ => req.response(481, Some(tag)),
        }
    }
}
