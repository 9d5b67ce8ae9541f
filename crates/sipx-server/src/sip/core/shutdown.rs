//! The SIP side of a stop. While SIGTERM drains, calls that are up go on (they hold the
//! process' drain open, `crate::drain`), and new INVITEs and out-of-dialog OPTIONS get `503`
//! with a `Retry-After` of the drain's length, so a proxy or trunk in front sends new calls to
//! another SIPx meanwhile (RFC 3261 §21.5.4). When the drain ends (no call left, or its
//! timeout) or at SIGINT, the core closes: the calls still up are hung up (BYE; CANCEL for a
//! dial-out still ringing; `503` for an INVITE still waiting for its routing webhook or its
//! room), and it runs on for at most [`CLOSING_GRACE`] so that those endings complete (a
//! CANCEL's 487, a BYE's 200 or its retransmissions, a BYE that waits for an ACK). Dial-outs
//! whose ending is still under way then are recorded as ended anyway. Only then do SIP's
//! sockets and connections stop (`io_stop`): a BYE over TCP must not find its connection gone.
//! Phones are not left with a dead call until their own timers notice, and nothing is left
//! looking live for the next start to end as `SIPx restarted`.

use std::time::{Duration, Instant};

use sipx_sip::dialog::DialogId;
use sipx_sip::msg::{Request, Response};
use tokio::sync::watch;

use super::Core;
use crate::drain::{Drain, DrainGuard};

/// How long a closing core waits for the endings it started to complete.
const CLOSING_GRACE: Duration = Duration::from_secs(2);

/// How the SIP side takes part in the process' stop.
pub(crate) struct ShutdownLink {
    drain: Drain,
    health: sipx_api::Health,
    /// `Retry-After` of the 503s while stopping: the drain's length.
    retry_after_secs: u64,
    /// Turns true when the core must close: after the drain, or at once.
    close: watch::Receiver<bool>,
    /// Stops SIP's sockets and connections once the core has closed.
    io_stop: watch::Sender<bool>,
    /// Held while any call is up.
    live: Option<DrainGuard>,
    /// Set once closing: the core stops at this time, or earlier once every ending is done.
    closing_until: Option<Instant>,
}

impl ShutdownLink {
    pub fn new(
        drain: Drain,
        health: sipx_api::Health,
        drain_timeout: Duration,
        close: watch::Receiver<bool>,
    ) -> Self {
        ShutdownLink {
            drain,
            health,
            retry_after_secs: drain_timeout.as_secs().max(1),
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
            || self.phone_transfers.is_placing()
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

    /// Whether the process drains or closes: new calls are turned away.
    pub(super) fn is_stopping(&self) -> bool {
        self.shutdown
            .as_ref()
            .is_some_and(|l| l.health.is_draining() || l.closing_until.is_some())
    }

    /// The answer to a new request while SIPx stops: `503` with a `Retry-After` of the drain's
    /// length.
    pub(super) fn shutting_down_response(&self, req: &Request, tag: &str) -> Response {
        let retry_after = self
            .shutdown
            .as_ref()
            .map_or(1, |link| link.retry_after_secs);
        let mut resp = req
            .response(503, Some(tag))
            .with_reason(sipx_call::SHUTTING_DOWN);
        resp.headers.push("Retry-After", retry_after.to_string());
        resp
    }

    /// Closes: hangs up every call still up; the core then runs until
    /// [`Core::stop_io_once_closed`] says it is done.
    pub(super) fn close(&mut self, now: Instant) {
        let Some(link) = self.shutdown.as_mut() else {
            return;
        };
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
        let dialled_out = self.each_dial_out(now, sipx_call::Call::shut_down);
        if !dialogs.is_empty() || dialled_out > 0 {
            tracing::warn!(
                calls = dialogs.len(),
                dialled_out,
                "stopping: the calls still up are hung up"
            );
        }
    }

    /// Feeds `step` to every dial-out's machine and carries out what it asks; returns how many.
    fn each_dial_out(&mut self, now: Instant, step: fn(&mut sipx_call::Call, Instant)) -> usize {
        let ids: Vec<String> = self.controls.by_id.keys().cloned().collect();
        for id in &ids {
            if let Some(c) = self.controls.by_id.get_mut(id) {
                step(&mut c.fsm, now);
            }
            self.drive(now, id);
        }
        ids.len()
    }

    /// When a closing core stops at the latest (`None`: not closing).
    pub(super) fn closing_deadline(&self) -> Option<Instant> {
        self.shutdown.as_ref().and_then(|l| l.closing_until)
    }

    /// True once a closing core is done: every ending it started has completed (calls gone,
    /// BYEs answered or given up), or the grace is over, when the dial-outs still ending are
    /// recorded as ended. SIP's sockets and connections are then told to stop.
    pub(super) fn stop_io_once_closed(&mut self, now: Instant) -> bool {
        let Some(until) = self.closing_deadline() else {
            return false;
        };
        let ending = self.has_live_calls()
            || !self.calls.byes.is_empty()
            || !self.calls.byes_after_ack.is_empty();
        if ending && now < until {
            return false;
        }
        // Machines still waiting for an answer to their CANCEL or BYE: their wait is over.
        self.each_dial_out(now, sipx_call::Call::give_up);
        if let Some(link) = &self.shutdown {
            link.io_stop.send_replace(true);
        }
        true
    }
}
