//! Transfer of an answered dial-out (RFC 3515): a REFER asks the phone to call someone else;
//! its NOTIFYs (RFC 3515 §2.4.5, `message/sipfrag` bodies) report how that call goes. When the
//! new call is answered our side ends with a BYE (`DISCONNECTED 200 Transferred`); a refused
//! REFER or a failed new call leaves the call as it was.
//!
//! Blind: the REFER names a number or URI. Attended: it names the phone of another answered
//! call with a `Replaces` of that call's dialog (RFC 3891), so the two phones talk directly;
//! the replaced phone hangs up on us itself, and both calls end as transferred.

use std::collections::HashMap;
use std::time::Instant;

use sipx_api::call_service::{CallCommandError, TransferTarget};
use sipx_sip::ClientTxnId;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::{Method, Request, Response, Uri};
use sipx_sip::replaces::refer_to_replacing;

use super::Core;

/// A REFER of ours in progress.
#[derive(Debug, Clone)]
pub struct PendingTransfer {
    /// The `Refer-To` URI (what events report as `to`).
    pub refer_to: String,
    /// Attended: the call whose dialog the phone is asked to replace.
    pub replaces: Option<String>,
}

/// Transfers in progress, by call id (dialled-out and inbound calls share the id space).
#[derive(Default)]
pub(crate) struct Transfers {
    pending: HashMap<String, PendingTransfer>,
    /// Calls an attended transfer is replacing, to the transferred call.
    replaced: HashMap<String, String>,
}

impl Transfers {
    /// The call is being replaced by another's attended transfer: its phone's BYE is the
    /// transfer going through.
    pub fn is_replaced(&self, id: &str) -> bool {
        self.replaced.contains_key(id)
    }

    /// A transfer of ours involves the call.
    pub fn busy(&self, id: &str) -> bool {
        self.pending.contains_key(id) || self.replaced.contains_key(id)
    }
}

/// The status line of a `message/sipfrag` body (`SIP/2.0 180 Ringing`).
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Core {
    /// Sends the REFER: to `to` (a number, dialled in the phone's own domain, or a SIP URI), or
    /// to the phone of the call to replace.
    pub(super) fn start_transfer(
        &mut self,
        now: Instant,
        app_id: &str,
        id: &str,
        target: &TransferTarget,
    ) -> Result<(), CallCommandError> {
        let conflict = |m: &str| CallCommandError::Conflict(m.to_owned());
        let dialog = self
            .answered_dialog(app_id, id)?
            .ok_or_else(|| conflict("the call is not answered"))?;
        if self.transfers.busy(id) || self.phone_transfers.is_referring(id) {
            return Err(conflict("a transfer of this call is in progress"));
        }
        let Some(call) = self.calls.by_dialog.get(&dialog) else {
            return Err(conflict("the call has ended"));
        };
        let peer = call.request_peer();
        let (refer_to, replaces) = match target {
            TransferTarget::Blind { to } => (blind_refer_to(&call.dialog.remote_target, to)?, None),
            TransferTarget::Attended { replaces } => {
                let other_dialog = match self.answered_dialog(app_id, replaces) {
                    Ok(Some(d)) if replaces != id => d,
                    Ok(None) => return Err(conflict("the call to replace is not answered")),
                    _ => return Err(conflict("the call to replace has ended")),
                };
                if self.transfers.busy(replaces) {
                    return Err(conflict("a transfer of the call to replace is in progress"));
                }
                let other = self
                    .calls
                    .by_dialog
                    .get(&other_dialog)
                    .ok_or_else(|| conflict("the call to replace has ended"))?;
                let refer_to = refer_to_replacing(&other.dialog)
                    .ok_or_else(|| conflict("the other phone's address is not a SIP URI"))?;
                (refer_to, Some(replaces.clone()))
            }
        };
        let via = self.new_via(&peer);
        let contact = self.contact_for(&peer, super::calls::CONTACT_USER);
        let Some(call) = self.calls.by_dialog.get_mut(&dialog) else {
            return Err(conflict("the call has ended"));
        };
        let mut refer = call.dialog.request(Method::Refer, &via, None);
        refer.headers.push("Refer-To", format!("<{refer_to}>"));
        refer
            .headers
            .push("Referred-By", format!("<{}>", call.dialog.local.uri));
        refer.headers.push("Contact", contact);
        refer.headers.push("Content-Length", "0");
        let txn = self.endpoint.send_request(now, peer, refer);
        self.controls.refers.insert(txn, id.to_owned());
        if let Some(other) = &replaces {
            self.transfers.replaced.insert(other.clone(), id.to_owned());
            if let Some(o) = self.controls.by_id.get_mut(other) {
                o.fsm.set_replaced(now, true);
            }
        }
        self.transfers.pending.insert(
            id.to_owned(),
            PendingTransfer {
                refer_to: refer_to.clone(),
                replaces: replaces.clone(),
            },
        );
        tracing::info!(call = %id, to = %refer_to, replaces = ?replaces, "call transfer requested");
        self.transfer_event(id, "requested", None);
        Ok(())
    }

    /// The dialog of the call `id` of `app_id`, dialled out or inbound; `Ok(None)` while it is
    /// not answered.
    pub(super) fn answered_dialog(
        &self,
        app_id: &str,
        id: &str,
    ) -> Result<Option<DialogId>, CallCommandError> {
        match self.controls.by_id.get(id) {
            Some(c) if c.app_id == app_id => return Ok(c.dialog.clone()),
            Some(_) => {}
            None => {
                if let Some(d) = self.inbound_dialog(app_id, id) {
                    return Ok(Some(d));
                }
            }
        }
        Err(CallCommandError::Conflict("the call has ended".to_owned()))
    }

    /// The phone's answer to our REFER; `false` when `txn` is not a REFER of ours.
    pub(super) fn on_refer_response(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        response: &Response,
    ) -> bool {
        let Some(id) = self.controls.refers.get(&txn).cloned() else {
            return false;
        };
        if response.status < 200 {
            return true;
        }
        self.controls.refers.remove(&txn);
        if response.status >= 300 {
            tracing::info!(call = %id, status = response.status, "call transfer refused");
            self.transfer_event(&id, "refused", Some(response.status));
            self.end_transfer(now, &id);
        } else {
            self.transfer_event(&id, "accepted", Some(response.status));
        }
        true
    }

    /// Timer F on our REFER: the transfer did not happen.
    pub(super) fn on_refer_timeout(&mut self, now: Instant, txn: ClientTxnId) -> bool {
        let Some(id) = self.controls.refers.remove(&txn) else {
            return false;
        };
        self.transfer_event(&id, "failed", Some(408));
        self.end_transfer(now, &id);
        true
    }

    /// The transfer of `id` is over without effect: the call, and the one it was to replace,
    /// are as before.
    fn end_transfer(&mut self, now: Instant, id: &str) {
        if let Some(t) = self.transfers.pending.remove(id)
            && let Some(other) = t.replaces
        {
            self.release_replaced(now, &other, id);
        }
    }

    /// `other` is no longer being replaced by `by`'s transfer.
    fn release_replaced(&mut self, now: Instant, other: &str, by: &str) {
        if self.transfers.replaced.get(other).map(String::as_str) == Some(by) {
            self.transfers.replaced.remove(other);
            if let Some(o) = self.controls.by_id.get_mut(other) {
                o.fsm.set_replaced(now, false);
            }
        }
    }

    /// A NOTIFY in the dialog of call `id`: progress of its transfer. Returns the status to
    /// answer it with.
    pub(super) fn on_transfer_notify(&mut self, now: Instant, id: &str, req: &Request) -> u16 {
        let is_refer = req
            .headers
            .get("Event")
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
        if !self.transfers.pending.contains_key(id) {
            return 481;
        }
        if !is_refer {
            return 489;
        }
        let Some(status) = sipfrag_status(&req.body) else {
            return 400;
        };
        tracing::info!(call = %id, status, "call transfer progress");
        match status {
            100..=199 => self.transfer_event(id, "progress", Some(status)),
            200..=299 => {
                self.transfer_event(id, "completed", Some(status));
                let replaced = self.transfers.pending.remove(id).and_then(|t| t.replaces);
                self.end_transferred(now, id);
                // The replaced phone hangs up on us itself (RFC 3891 §3); ending its call
                // here too makes the outcome certain, and a crossing BYE is harmless.
                if let Some(other) = replaced {
                    self.transfers.replaced.remove(&other);
                    self.end_transferred(now, &other);
                }
            }
            _ => {
                self.transfer_event(id, "failed", Some(status));
                self.end_transfer(now, id);
            }
        }
        200
    }

    /// Ends a call whose phone went elsewhere: `DISCONNECTED 200 Transferred`, BYE.
    pub(super) fn end_transferred(&mut self, now: Instant, id: &str) {
        if let Some(c) = self.controls.by_id.get_mut(id) {
            c.fsm.transferred(now);
            self.drive(now, id);
        } else if let Some(dialog) = self.inbound_dialog_any(id) {
            self.end_call(now, &dialog, TRANSFERRED, true);
        }
    }

    /// A call ended: a transfer it was part of is over.
    pub(super) fn transfer_party_gone(&mut self, now: Instant, id: &str) {
        self.end_transfer(now, id);
        self.transfers.replaced.remove(id);
        self.phone_transfer_party_gone(id);
    }

    fn transfer_event(&self, id: &str, state: &str, status: Option<u16>) {
        let (to, replaces) = match self.transfers.pending.get(id) {
            Some(t) => (t.refer_to.as_str(), t.replaces.as_deref()),
            None => ("", None),
        };
        tracing::info!(call = %id, state, status, to, "call transfer");
        let event = match self.controls.by_id.get(id) {
            Some(c) => c.tag().transfer(state, status, to, replaces),
            None => match self.inbound_row(id) {
                Some(row) => row.tag().transfer(state, status, to, replaces),
                None => return,
            },
        };
        self.publish_event(event);
    }
}

/// The reason an inbound call ends with when its phone went elsewhere.
pub(super) const TRANSFERRED: &str = "Transferred";

/// The `Refer-To` of a blind transfer: a SIP URI as given, or a number in the phone's domain.
fn blind_refer_to(phone: &Uri, to: &str) -> Result<String, CallCommandError> {
    if to.starts_with("sip:") || to.starts_with("sips:") {
        return Ok(to.to_owned());
    }
    match phone {
        Uri::Sip(u) => Ok(match u.port {
            Some(p) => format!("sip:{to}@{}:{p}", u.host),
            None => format!("sip:{to}@{}", u.host),
        }),
        _ => Err(CallCommandError::Conflict(
            "the phone's address is not a SIP URI".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(sipfrag_status(b"SIP/2.0 200 OK\r\n"), Some(200));
        assert_eq!(sipfrag_status(b"SIP/2.0 100 Trying"), Some(100));
        assert_eq!(
            sipfrag_status(b"SIP/2.0 486 Busy Here\r\nX: y\r\n"),
            Some(486)
        );
        assert_eq!(sipfrag_status(b"garbage"), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }
}
