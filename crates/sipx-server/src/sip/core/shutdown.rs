//! The SIP side of a stop. While SIGTERM drains, calls that are up go on (they hold the
//! process' drain open, `crate::drain`) and new INVITEs get `503` with `Retry-After`, so a
//! proxy or trunk in front tries another SIPx. When the drain ends (no call left, or its timeout)
//! or at SIGINT, the calls still up are hung up (BYE, CANCEL for one still ringing out) and
//! their rows written before the core stops: phones are not left with a dead call until
//! their media or session timer notices, and nothing is left looking live for the next start
//! to end as `SIPx restarted`.

use std::time::Instant;

use sipx_sip::ServerTxnId;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::Request;
use tokio::sync::watch;

use super::Core;
use crate::drain::{Drain, DrainGuard};

/// The BYE's `Reason` text and the call's end reason when SIPx hangs up on its way out.
pub(crate) const SHUTTING_DOWN: &str = "Service shutting down";

/// How the SIP side takes part in the process' stop.
pub(crate) struct ShutdownLink {
    drain: Drain,
    health: sipx_api::Health,
    /// Turns true when SIP stops: after the drain, or at once.
    stop: watch::Receiver<bool>,
    /// Held while any call is up.
    live: Option<DrainGuard>,
}

impl ShutdownLink {
    pub fn new(drain: Drain, health: sipx_api::Health, stop: watch::Receiver<bool>) -> Self {
        ShutdownLink {
            drain,
            health,
            stop,
            live: None,
        }
    }

    /// The signal SIP's tasks stop on.
    pub fn stop(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }
}

impl Core {
    pub(crate) fn set_shutdown(&mut self, link: ShutdownLink) {
        self.shutdown = Some(link);
    }

    /// Whether any call is up (answered, ringing either way, or being placed).
    fn has_live_calls(&self) -> bool {
        !self.calls.by_dialog.is_empty() || !self.controls.by_id.is_empty()
    }

    /// Holds the drain open while calls are up; run after each turn of the core.
    pub(super) fn track_live_calls(&mut self) {
        let live = self.has_live_calls();
        let Some(link) = self.shutdown.as_mut() else {
            return;
        };
        match (live, link.live.is_some()) {
            (true, false) => link.live = Some(link.drain.track()),
            (false, true) => link.live = None,
            _ => {}
        }
    }

    /// A new INVITE while the process drains: refused with `503` and true.
    pub(super) fn refuse_while_draining(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: &Request,
    ) -> bool {
        if !self
            .shutdown
            .as_ref()
            .is_some_and(|l| l.health.is_draining())
        {
            return false;
        }
        let tag = self.endpoint.new_tag();
        let mut resp = req.response(503, Some(&tag)).with_reason("Shutting down");
        // RFC 3261 §21.5.4: try elsewhere now; this instance will not take it.
        resp.headers.push("Retry-After", "0");
        self.respond(now, txn, resp);
        true
    }

    /// Hangs up every call still up, on the way out; the caller sends what it queued.
    pub(super) fn end_all_calls(&mut self, now: Instant) {
        let dialogs: Vec<DialogId> = self.calls.by_dialog.keys().cloned().collect();
        let ended = dialogs.len();
        for dialog in dialogs {
            // A dialled-out call's dialog goes through its machine, like the others below.
            self.end_call(now, &dialog, SHUTTING_DOWN, true);
        }
        let ids: Vec<String> = self.controls.by_id.keys().cloned().collect();
        for id in &ids {
            if let Some(c) = self.controls.by_id.get_mut(id) {
                c.fsm.hangup(now);
            }
            self.drive(now, id);
        }
        if ended + ids.len() > 0 {
            tracing::warn!(
                dialogs = ended,
                dialled_out = ids.len(),
                "stopping: the calls still up are hung up"
            );
        }
    }
}
