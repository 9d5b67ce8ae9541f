//! The SIP side of a stop. While SIGTERM drains, calls that are up go on (they hold the
//! process' drain open, `crate::drain`) and new INVITEs get `503` with `Retry-After`, so a
//! proxy or trunk in front tries another SIPx. When the drain ends (no call left, or its
//! timeout) or at SIGINT, the core closes: the calls still up are hung up (BYE; CANCEL for a
//! dial-out still ringing; `503` for an INVITE still waiting for its routing webhook), and it
//! runs on for at most [`CLOSING_GRACE`] so that those endings complete (a CANCEL's 487, a
//! BYE's retransmission) and their rows are written. Only then do SIP's sockets and
//! connections stop (`io_stop`): a BYE over TCP must not find its connection gone. Phones are
//! not left with a dead call until their own timers notice, and nothing is left looking live
//! for the next start to end as `SIPx restarted`.

use std::time::{Duration, Instant};

use sipx_sip::ServerTxnId;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::Request;
use tokio::sync::watch;

use super::Core;
use crate::drain::{Drain, DrainGuard};

/// How long a closing core waits for the endings it started to complete.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// How the SIP side takes part in the process' stop.
pub(crate) struct ShutdownLink {
    drain: Drain,
    health: sipx_api::Health,
    /// Turns true when the core must close: after the drain, or at once.
    close: watch::Receiver<bool>,
    /// Stops SIP's sockets and connections once the core has closed.
    io_stop: watch::Sender<bool>,
    /// Held while any call is up.
    live: Option<DrainGuard>,
    /// Set once closing: the core stops at this time, or earlier once no call is left.
    closing_until: Option<Instant>,
}

impl ShutdownLink {
    pub fn new(drain: Drain, health: sipx_api::Health, close: watch::Receiver<bool>) -> Self {
        ShutdownLink {
            drain,
            health,
            close,
            io_stop: watch::channel(false).0,
            live: None,
            closing_until: None,
        }
    }

    /// The signal the core closes on.
    pub fn close_signal(&self) -> watch::Receiver<bool> {
        self.close.clone()
    }

    /// The signal SIP's socket and connection tasks stop on: after the core has closed.
    pub fn io_stop(&self) -> watch::Receiver<bool> {
        self.io_stop.subscribe()
    }
}

impl Core {
    pub(crate) fn set_shutdown(&mut self, link: ShutdownLink) {
        self.shutdown = Some(link);
    }

    /// Whether any call is up (answered, ringing either way, being placed, or waiting for its
    /// routing webhook).
    fn has_live_calls(&self) -> bool {
        !self.calls.by_dialog.is_empty()
            || !self.controls.by_id.is_empty()
            || self.has_waiting_invites()
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

    /// A new INVITE while the process drains or closes: refused with `503` and true.
    pub(super) fn refuse_while_draining(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: &Request,
    ) -> bool {
        let stopping = self
            .shutdown
            .as_ref()
            .is_some_and(|l| l.health.is_draining() || l.closing_until.is_some());
        if !stopping {
            return false;
        }
        let tag = self.endpoint.new_tag();
        let mut resp = req.response(503, Some(&tag)).with_reason("Shutting down");
        // RFC 3261 §21.5.4: try elsewhere now; this instance will not take it.
        resp.headers.push("Retry-After", "0");
        self.respond(now, txn, resp);
        true
    }

    /// Closes: hangs up every call still up; the core then runs until [`Core::closed`].
    pub(super) fn close(&mut self, now: Instant) {
        let Some(link) = self.shutdown.as_mut() else {
            return;
        };
        if link.closing_until.is_some() {
            return;
        }
        link.closing_until = Some(now + CLOSING_GRACE);
        self.refuse_waiting_invites(now);
        // Dialled-out calls end through their machine (their dialogs too), the others here.
        let dialogs: Vec<DialogId> = self
            .calls
            .by_dialog
            .keys()
            .filter(|d| self.control_of_dialog(d).is_none())
            .cloned()
            .collect();
        for dialog in &dialogs {
            self.end_call(now, dialog, sipx_call::SHUTTING_DOWN, true);
        }
        let ids: Vec<String> = self.controls.by_id.keys().cloned().collect();
        for id in &ids {
            if let Some(c) = self.controls.by_id.get_mut(id) {
                c.fsm.shut_down(now);
            }
            self.drive(now, id);
        }
        if !dialogs.is_empty() || !ids.is_empty() {
            tracing::warn!(
                calls = dialogs.len(),
                dialled_out = ids.len(),
                "stopping: the calls still up are hung up"
            );
        }
    }

    /// When a closing core stops at the latest (`None`: not closing).
    pub(super) fn closing_deadline(&self) -> Option<Instant> {
        self.shutdown.as_ref().and_then(|l| l.closing_until)
    }

    /// A closing core is done: its calls have ended (their last messages sent, their rows
    /// queued) or the grace is over. SIP's sockets and connections then stop.
    pub(super) fn closed(&self, now: Instant) -> bool {
        let Some(until) = self.closing_deadline() else {
            return false;
        };
        let done = now >= until || !self.has_live_calls();
        if done && let Some(link) = &self.shutdown {
            link.io_stop.send_replace(true);
        }
        done
    }
}
