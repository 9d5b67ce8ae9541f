//! Our BYEs: sent, kept while in flight, answered. A provider that challenges its BYEs (as it
//! does its INVITEs) gets the BYE again once, with the dial-out's credentials (RFC 3261
//! §22.2): left unanswered, the call would stay up, and billed, on its side.

use std::time::Instant;

use sipx_secrets::Redacted;
use sipx_sip::dialog::{Dialog, DialogId};
use sipx_sip::msg::{Method, Request, Response};
use sipx_sip::uac::{Credentials, with_credentials};
use sipx_sip::{ClientTxnId, Peer};

use super::Core;

/// A BYE of ours whose answer has not come.
pub(crate) struct SentBye {
    pub dialog: DialogId,
    /// What to send again if the BYE is challenged; none after one retry, or for a call
    /// without credentials.
    pub retry: Option<ByeRetry>,
}

/// A dial-out's credentials: (user, password).
pub(crate) type DialAuth = (String, Redacted<String>);

/// A BYE as sent, where it went, and the dial-out's credentials.
pub(crate) struct ByeRetry {
    pub bye: Request,
    pub peer: Peer,
    pub auth: DialAuth,
}

impl Core {
    /// Sends a BYE in `dialog` to `hop`, the dialog's next hop, with `reason` as its `Reason`
    /// (RFC 3326) when given; with `auth` it goes again once if challenged.
    pub(super) fn send_bye(
        &mut self,
        now: Instant,
        dialog: &mut Dialog,
        hop: Peer,
        reason: Option<String>,
        auth: Option<DialAuth>,
    ) {
        let via = self.new_via(&hop);
        let mut bye = dialog.request(Method::Bye, &via, None);
        if let Some(reason) = reason {
            bye.headers.push("Reason", reason);
        }
        bye.headers.push("Content-Length", "0");
        let retry = auth.map(|auth| ByeRetry {
            bye: bye.clone(),
            peer: hop,
            auth,
        });
        let txn = self.endpoint.send_request(now, hop, bye);
        self.calls.note_bye(txn, dialog.id.clone(), retry);
    }

    /// The credentials of the dialled-out call on `dialog`, if it is one that has them.
    pub(super) fn dial_auth(&self, dialog: &DialogId) -> Option<DialAuth> {
        self.controls
            .by_dialog
            .get(dialog)
            .and_then(|id| self.controls.out(id))
            .and_then(|o| o.auth.clone())
    }

    /// The final answer to one of our BYEs; `false` when `txn` is not one.
    pub(super) fn on_bye_answer(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        response: &Response,
    ) -> bool {
        let Some(sent) = self.calls.byes.remove(&txn) else {
            return false;
        };
        let Some(retry) = sent.retry.filter(|_| matches!(response.status, 401 | 407)) else {
            return true;
        };
        let branch = self.endpoint.new_branch();
        let cnonce = super::dial::new_cnonce();
        let creds = Credentials {
            username: &retry.auth.0,
            password: retry.auth.1.expose(),
        };
        match with_credentials(&retry.bye, response, creds, &branch, &cnonce, 1) {
            Some(next) => {
                let txn = self.endpoint.send_request(now, retry.peer, next);
                self.calls.note_bye(txn, sent.dialog, None);
            }
            None => tracing::info!(
                status = response.status,
                "BYE challenged in a way SIPx cannot answer"
            ),
        }
        true
    }
}
