//! Blind transfer of an answered dial-out (RFC 3515): a REFER asks the phone to call someone
//! else; its NOTIFYs (RFC 3515 §2.4.5, `message/sipfrag` bodies) report how that call goes.
//! When the new call is answered our side ends with a BYE (`DISCONNECTED 200 Transferred`); a
//! refused REFER or a failed new call leaves the call as it was.

use std::time::Instant;

use sipx_api::call_service::CallCommandError;
use sipx_sip::ClientTxnId;
use sipx_sip::msg::{Method, Request, Response, Uri};

use super::Core;

/// The status line of a `message/sipfrag` body (`SIP/2.0 180 Ringing`).
fn sipfrag_status(body: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    rest.split_whitespace().next()?.parse().ok()
}

impl Core {
    /// Sends the REFER for `to` (a number, dialled in the phone's own domain, or a SIP URI).
    pub(super) fn start_transfer(
        &mut self,
        now: Instant,
        id: &str,
        to: &str,
    ) -> Result<(), CallCommandError> {
        let conflict = |m: &str| CallCommandError::Conflict(m.to_owned());
        let c = self
            .controls
            .by_id
            .get(id)
            .ok_or_else(|| conflict("the call has ended"))?;
        if c.transfer.is_some() {
            return Err(conflict("a transfer of this call is in progress"));
        }
        let dialog = c
            .dialog
            .clone()
            .ok_or_else(|| conflict("the call is not answered"))?;
        let branch = self.endpoint.new_branch();
        let Some(call) = self.calls.by_dialog.get(&dialog) else {
            return Err(conflict("the call has ended"));
        };
        let peer = call.peer;
        let refer_to = if to.starts_with("sip:") || to.starts_with("sips:") {
            to.to_owned()
        } else {
            match &call.dialog.remote_target {
                Uri::Sip(u) => match u.port {
                    Some(p) => format!("sip:{to}@{}:{p}", u.host),
                    None => format!("sip:{to}@{}", u.host),
                },
                _ => return Err(conflict("the phone's address is not a SIP URI")),
            }
        };
        let host = self
            .local_host_for(peer.addr, peer.transport)
            .unwrap_or_else(|| "invalid".to_owned());
        let via = format!(
            "SIP/2.0/{} {host};branch={branch};rport",
            peer.transport.via_name()
        );
        let Some(call) = self.calls.by_dialog.get_mut(&dialog) else {
            return Err(conflict("the call has ended"));
        };
        let mut refer = call.dialog.request(Method::Refer, &via, None);
        refer.headers.push("Refer-To", format!("<{refer_to}>"));
        refer
            .headers
            .push("Referred-By", format!("<{}>", call.dialog.local.uri));
        refer.headers.push("Contact", format!("<sip:sipx@{host}>"));
        refer.headers.push("Content-Length", "0");
        let txn = self.endpoint.send_request(now, peer, refer);
        self.controls.refers.insert(txn, id.to_owned());
        if let Some(c) = self.controls.by_id.get_mut(id) {
            c.transfer = Some(refer_to.clone());
        }
        tracing::info!(call = %id, to = %refer_to, "call transfer requested");
        self.transfer_event(id, "requested", None, &refer_to);
        Ok(())
    }

    /// The phone's answer to our REFER; `false` when `txn` is not a REFER of ours.
    pub(super) fn on_refer_response(&mut self, txn: ClientTxnId, response: &Response) -> bool {
        let Some(id) = self.controls.refers.get(&txn).cloned() else {
            return false;
        };
        if response.status < 200 {
            return true;
        }
        self.controls.refers.remove(&txn);
        let to = self
            .controls
            .by_id
            .get(&id)
            .and_then(|c| c.transfer.clone())
            .unwrap_or_default();
        if response.status >= 300 {
            tracing::info!(call = %id, status = response.status, "call transfer refused");
            if let Some(c) = self.controls.by_id.get_mut(&id) {
                c.transfer = None;
            }
            self.transfer_event(&id, "refused", Some(response.status), &to);
        } else {
            self.transfer_event(&id, "accepted", Some(response.status), &to);
        }
        true
    }

    /// Timer F on our REFER: the transfer did not happen.
    pub(super) fn on_refer_timeout(&mut self, txn: ClientTxnId) -> bool {
        let Some(id) = self.controls.refers.remove(&txn) else {
            return false;
        };
        if let Some(c) = self.controls.by_id.get_mut(&id) {
            let to = c.transfer.take().unwrap_or_default();
            self.transfer_event(&id, "failed", Some(408), &to);
        }
        true
    }

    /// A NOTIFY in a controlled call's dialog: progress of the transfer. Returns the status to
    /// answer it with.
    pub(super) fn on_transfer_notify(&mut self, now: Instant, id: &str, req: &Request) -> u16 {
        let is_refer = req
            .headers
            .get("Event")
            .is_some_and(|e| e.trim().to_ascii_lowercase().starts_with("refer"));
        let Some(to) = self.controls.by_id.get(id).and_then(|c| c.transfer.clone()) else {
            return 481;
        };
        if !is_refer {
            return 489;
        }
        let Some(status) = sipfrag_status(&req.body) else {
            return 400;
        };
        tracing::info!(call = %id, status, "call transfer progress");
        match status {
            100..=199 => self.transfer_event(id, "progress", Some(status), &to),
            200..=299 => {
                self.transfer_event(id, "completed", Some(status), &to);
                if let Some(c) = self.controls.by_id.get_mut(id) {
                    c.transfer = None;
                    c.fsm.transferred(now);
                }
                self.drive(now, id);
            }
            _ => {
                self.transfer_event(id, "failed", Some(status), &to);
                if let Some(c) = self.controls.by_id.get_mut(id) {
                    c.transfer = None;
                }
            }
        }
        200
    }

    fn transfer_event(&self, id: &str, state: &str, status: Option<u16>, to: &str) {
        tracing::info!(call = %id, state, status, to, "call transfer");
        if let Some(c) = self.controls.by_id.get(id) {
            self.publish_event(c.tag().transfer(state, status, to));
        }
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
