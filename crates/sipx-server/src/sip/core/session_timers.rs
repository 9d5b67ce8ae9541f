//! RFC 4028 session timers on the calls the core holds (`sipx_sip::session_timer` decides):
//! the `Session-Expires` of each INVITE, re-INVITE or UPDATE SIPx answers sets the dialog's
//! timer; when the peer refreshes, a refresh that does not come ends the call with a BYE; when
//! SIPx refreshes (the peer asked it to), it sends an UPDATE half-way through each interval.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use sipx_sip::ClientTxnId;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::{Method, Request, Response};
use sipx_sip::session_timer::{
    RefreshOutcome, Refresher, SessionExpires, SessionTimer, TimerAction, UasTimer, min_se_of,
    negotiate_uas,
};

use super::Core;
use crate::media::LegId;

/// Why a call ends when nobody refreshed its session (`call_rows::end_cause` knows it).
pub(crate) const SESSION_EXPIRED: &str = "session timer expired";
/// Why a call ends when the peer answered our refresh with 408 or 481 (RFC 4028 §10).
pub(crate) const REFRESH_FAILED: &str = "session refresh failed";

/// The calls' timer deadlines, and our refreshes in flight.
#[derive(Default)]
pub(crate) struct SessionTimers {
    queue: BTreeSet<(Instant, u64)>,
    due: HashMap<LegId, Instant>,
    refreshes: HashMap<ClientTxnId, DialogId>,
}

impl SessionTimers {
    pub fn next_timeout(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// The leg's deadline is now `at` (`None`: no timer).
    fn schedule(&mut self, leg: LegId, at: Option<Instant>) {
        if let Some(old) = self.due.remove(&leg) {
            self.queue.remove(&(old, leg.0));
        }
        if let Some(at) = at {
            self.queue.insert((at, leg.0));
            self.due.insert(leg, at);
        }
    }

    /// The legs due by `now`, taken off the queue.
    fn take_due(&mut self, now: Instant) -> Vec<LegId> {
        let mut legs = Vec::new();
        while let Some(&(at, leg)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.remove(&(at, leg));
            self.due.remove(&LegId(leg));
            legs.push(LegId(leg));
        }
        legs
    }
}

impl Core {
    /// The timer a request asks for, or the response refusing it (422 with our `Min-SE`, 400
    /// for a malformed `Session-Expires`). SIPx refreshes only by UPDATE, so only for a peer
    /// whose `Allow` names it.
    pub(super) fn session_timer_of(&self, req: &Request, tag: &str) -> Result<UasTimer, Response> {
        let can_update = req
            .headers
            .list("Allow")
            .iter()
            .any(|m| m.eq_ignore_ascii_case("UPDATE"));
        match negotiate_uas(req, self.settings.session_min_se, can_update) {
            UasTimer::TooSmall { min_se } => Err(req
                .response(422, Some(tag))
                .with_header("Min-SE", min_se.to_string())),
            UasTimer::Malformed(why) => Err(req.response(400, Some(tag)).with_reason(why)),
            timer => Ok(timer),
        }
    }

    /// A request with this timer was answered 2xx on the call `id` (the one that started the
    /// call, or a refresh): the call's timer restarts, changes or stops.
    pub(super) fn apply_session_timer(&mut self, now: Instant, id: &DialogId, timer: UasTimer) {
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        match timer {
            UasTimer::On {
                interval,
                refresher,
            } => {
                // The request's UAS is SIPx: `uas` is us.
                let ours = refresher == Refresher::Uas;
                match call.timer.as_mut() {
                    Some(t) => t.refreshed(now, interval, ours),
                    None => {
                        let min_se = self.settings.session_min_se;
                        call.timer = Some(SessionTimer::new(now, interval, ours, min_se));
                    }
                }
            }
            _ => call.timer = None,
        }
        self.reschedule(id);
    }

    /// Runs the timers due by `now`: refreshes to send, sessions over.
    pub(super) fn poll_session_timers(&mut self, now: Instant) {
        for leg in self.session_timers.take_due(now) {
            let Some(id) = self.calls.by_leg.get(&leg).cloned() else {
                continue;
            };
            let action = self
                .calls
                .by_dialog
                .get_mut(&id)
                .and_then(|c| c.timer.as_mut())
                .and_then(|t| t.handle_timeout(now));
            match action {
                Some(TimerAction::Expired) => {
                    tracing::info!(call_id = %id.call_id, "no session refresh came: ending the call");
                    self.end_call(now, &id, SESSION_EXPIRED, true);
                    continue;
                }
                Some(TimerAction::Refresh) => self.send_refresh(now, &id),
                None => {}
            }
            self.reschedule(&id);
        }
    }

    fn reschedule(&mut self, id: &DialogId) {
        if let Some(call) = self.calls.by_dialog.get(id) {
            let at = call.timer.as_ref().map(SessionTimer::poll_timeout);
            self.session_timers.schedule(call.leg, at);
        }
    }

    /// Our refresh: an UPDATE without a body (RFC 3311), naming us (its UAC) the refresher.
    fn send_refresh(&mut self, now: Instant, id: &DialogId) {
        let Some(call) = self.calls.by_dialog.get(id) else {
            return;
        };
        let Some((interval, min_se)) = call.timer.as_ref().map(|t| (t.interval(), t.min_se()))
        else {
            return;
        };
        let peer = call.peer;
        let via = self.new_via(&peer);
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        let mut update = call.dialog.request(Method::Update, &via, None);
        let expires = SessionExpires {
            delta: interval,
            refresher: Some(Refresher::Uac),
        };
        update.headers.push("Session-Expires", expires.to_value());
        update.headers.push("Min-SE", min_se.to_string());
        update.headers.push("Supported", "timer");
        update.headers.push("Content-Length", "0");
        let txn = self.endpoint.send_request(now, peer, update);
        self.session_timers.refreshes.insert(txn, id.clone());
    }

    /// The final answer to one of our refreshes (`None`: it timed out). Returns whether the
    /// transaction was one.
    pub(super) fn on_refresh_answer(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        response: Option<&Response>,
    ) -> bool {
        let Some(id) = self.session_timers.refreshes.remove(&txn) else {
            return false;
        };
        let outcome = match response.map(|r| r.status) {
            Some(200..=299) => RefreshOutcome::Done(
                response
                    .and_then(|r| r.headers.get("Session-Expires"))
                    .and_then(SessionExpires::parse),
            ),
            Some(422) => match response.and_then(|r| min_se_of(&r.headers)) {
                Some(min_se) => RefreshOutcome::TooSmall(min_se),
                None => RefreshOutcome::Failed,
            },
            // No answer at all is a 408 of our own.
            None | Some(408 | 481) => RefreshOutcome::DialogGone,
            _ => RefreshOutcome::Failed,
        };
        let Some(call) = self.calls.by_dialog.get_mut(&id) else {
            return true;
        };
        let keep = call
            .timer
            .as_mut()
            .is_some_and(|t| t.on_refresh_outcome(now, outcome));
        if outcome == RefreshOutcome::DialogGone {
            tracing::info!(call_id = %id.call_id, "the session refresh failed: ending the call");
            // A dialled-out call only asks its machine to hang up: its timer must not fire too.
            call.timer = None;
            let leg = call.leg;
            self.forget_session_timer(leg);
            // After a 481 the peer has no dialog left to send a BYE in (RFC 5057).
            let bye = response.is_none_or(|r| r.status != 481);
            self.end_call(now, &id, REFRESH_FAILED, bye);
            return true;
        }
        if !keep {
            call.timer = None;
        }
        self.reschedule(&id);
        true
    }

    /// A call is gone: its timer too.
    pub(super) fn forget_session_timer(&mut self, leg: LegId) {
        self.session_timers.schedule(leg, None);
    }
}
