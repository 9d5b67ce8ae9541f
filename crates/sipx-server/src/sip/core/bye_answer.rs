//! Our BYEs in flight and their answers. A provider that challenges its BYEs (as it does its
//! INVITEs) gets the BYE again once, with the dial-out's credentials (RFC 3261 §22.2): left
//! unanswered, the call would stay up, and billed, on its side.

use std::time::Instant;

use sipx_secrets::Redacted;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::{Request, Response};
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

/// A BYE as sent, where it went, and the dial-out's credentials (user, password).
pub(crate) struct ByeRetry {
    pub bye: Request,
    pub peer: Peer,
    pub auth: (String, Redacted<String>),
}

impl Core {
    /// The retry of a BYE on `dialog`: for a dialled-out call that had credentials.
    pub(super) fn bye_retry(
        &self,
        dialog: &DialogId,
        bye: &Request,
        peer: Peer,
    ) -> Option<ByeRetry> {
        let auth = self
            .controls
            .by_dialog
            .get(dialog)
            .and_then(|id| self.controls.out(id))
            .and_then(|o| o.auth.clone())?;
        Some(ByeRetry {
            bye: bye.clone(),
            peer,
            auth,
        })
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
