//! RFC 4028 session timers on the calls the core holds (`sipx_sip::session_timer` decides):
//! the `Session-Expires` of each INVITE, re-INVITE or UPDATE SIPx answers sets the dialog's
//! timer; when the peer refreshes, a refresh that does not come ends the call with a BYE; when
//! SIPx refreshes (the peer asked it to), it sends an UPDATE half-way through each interval,
//! or a re-INVITE to a peer that does not take UPDATE (`refresh_invite.rs`).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use sipx_sip::ClientTxnId;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::{HasHeaders, Method, Request, Response};
use sipx_sip::session_timer::{
    RefreshOutcome, Refresher, SessionExpires, SessionTimer, TimerAction, UasTimer, glare_wait,
    min_se_of, negotiate_uas, uac_timer_of,
};
use sipx_sip::uac::{Credentials, with_credentials};

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
    refreshes: HashMap<ClientTxnId, Refresh>,
}

/// One of our refreshes (UPDATE or re-INVITE) in flight.
pub(super) struct Refresh {
    pub(super) dialog: DialogId,
    /// The timer's epoch when it went: an answer overtaken by the peer's refresh is stale.
    epoch: u64,
    /// Kept to send again with credentials, once, if challenged.
    pub(super) request: Request,
    challenged: bool,
    /// A re-INVITE answered 2xx: its ACK, sent again for each retransmission of the 2xx
    /// (kept until the call's next refresh or its end).
    pub(super) ack: Option<(sipx_sip::Peer, Vec<u8>)>,
    /// A re-INVITE whose call ended before its answer: the dialog and where it went, to
    /// acknowledge and end a 2xx that may still come.
    pub(super) orphan: Option<(sipx_sip::dialog::Dialog, sipx_sip::Peer)>,
}

impl SessionTimers {
    /// A refresh stays known after its answer (a re-INVITE's, for its ACK).
    pub(super) fn keep(&mut self, txn: ClientTxnId, refresh: Refresh) {
        self.refreshes.insert(txn, refresh);
    }

    /// The ACK we sent for the 2xx to our re-INVITE of CSeq `seq` in `dialog`, if any.
    pub(super) fn ack_of(&self, dialog: &DialogId, seq: u32) -> Option<(sipx_sip::Peer, Vec<u8>)> {
        self.refreshes
            .values()
            .filter(|r| r.dialog == *dialog && r.request.cseq().is_some_and(|c| c.seq == seq))
            .find_map(|r| r.ack.clone())
    }

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
    /// for a malformed `Session-Expires`).
    pub(super) fn session_timer_of(&self, req: &Request, tag: &str) -> Result<UasTimer, Response> {
        match negotiate_uas(req, self.settings.session_min_se) {
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
                ..
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
                    self.stop_session_timer(&id);
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

    /// A dialled-out call's 2xx started the timer our `invite` offered (RFC 4028 §7.2), or
    /// the answer has none and no timer runs. Our refreshes carry the INVITE's `Min-SE`
    /// (raised by any 422 on the way, §7.4).
    pub(super) fn start_uac_session_timer(
        &mut self,
        now: Instant,
        id: &DialogId,
        invite: &Request,
        answer: &Response,
    ) {
        let min_se = min_se_of(&invite.headers)
            .unwrap_or(0)
            .max(self.settings.session_min_se);
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        call.peer_update = allows_update(&answer.headers).unwrap_or(false);
        call.timer = uac_timer_of(&answer.headers)
            .map(|(interval, ours)| SessionTimer::new(now, interval, ours, min_se));
        self.reschedule(id);
    }

    /// Our refresh, naming us (its UAC) the refresher: an UPDATE without a body (RFC 3311)
    /// to a peer that takes UPDATE, else a re-INVITE offering the session as it is (RFC 4028
    /// §7.4). A re-INVITE waits, as a failed refresh does, while another offer or INVITE of
    /// the dialog is under way.
    fn send_refresh(&mut self, now: Instant, id: &DialogId) {
        let Some(call) = self.calls.by_dialog.get(id) else {
            return;
        };
        let Some((interval, min_se, epoch)) = call
            .timer
            .as_ref()
            .map(|t| (t.interval(), t.min_se(), t.epoch()))
        else {
            return;
        };
        let by_update = call.peer_update;
        if !by_update && !self.can_reinvite(id) {
            return self.refresh_failed(now, id, epoch);
        }
        // The re-INVITE that refreshed the session before is long answered: its ACK goes.
        self.session_timers
            .refreshes
            .retain(|_, r| r.dialog != *id || r.ack.is_none());
        let peer = call.request_peer();
        let via = self.new_via(&peer);
        let expires = SessionExpires {
            delta: interval,
            refresher: Some(Refresher::Uac),
        };
        let request = if by_update {
            let contact = self.contact_for(&peer, super::calls::CONTACT_USER);
            let Some(call) = self.calls.by_dialog.get_mut(id) else {
                return;
            };
            let mut update = call.dialog.request(Method::Update, &via, None);
            update.headers.push("Contact", contact);
            update.headers.push("Content-Length", "0");
            Some(update)
        } else {
            self.refresh_invite(id, &via)
        };
        let Some(mut request) = request else {
            return self.refresh_failed(now, id, epoch);
        };
        request.headers.push("Session-Expires", expires.to_value());
        request.headers.push("Min-SE", min_se.to_string());
        // What SIPx takes part in, `timer` included; not `100rel`: SIPx acknowledges the
        // reliable provisionals of its dial-outs' INVITEs only, a refresh's would go unanswered.
        let supported: Vec<&str> = self
            .uas
            .supported
            .iter()
            .map(String::as_str)
            .filter(|t| *t != sipx_sip::reliable::OPTION_TAG)
            .collect();
        request.headers.push("Supported", supported.join(", "));
        let txn = self.endpoint.send_request(now, peer, request.clone());
        self.session_timers.refreshes.insert(
            txn,
            Refresh {
                dialog: id.clone(),
                epoch,
                request,
                challenged: false,
                ack: None,
                orphan: None,
            },
        );
    }

    /// A refresh that could not go now is tried again as a failed one is.
    fn refresh_failed(&mut self, now: Instant, id: &DialogId, epoch: u64) {
        if let Some(timer) = self
            .calls
            .by_dialog
            .get_mut(id)
            .and_then(|c| c.timer.as_mut())
        {
            timer.on_refresh_outcome(now, epoch, RefreshOutcome::Failed);
        }
        self.reschedule(id);
    }

    /// Whether we generated the dialog's Call-ID: we sent its INVITE (a dialled-out call).
    fn owns_call_id(&self, id: &DialogId) -> bool {
        self.controls
            .by_dialog
            .get(id)
            .and_then(|call| self.controls.out(call))
            .is_some()
    }

    /// Our refresh again with the dialled-out call's credentials; `false` when there are
    /// none or it was challenged already.
    fn answer_refresh_challenge(
        &mut self,
        now: Instant,
        refresh: &Refresh,
        challenge: &Response,
    ) -> bool {
        if refresh.challenged {
            return false;
        }
        let Some(auth) = self
            .controls
            .by_dialog
            .get(&refresh.dialog)
            .and_then(|id| self.controls.out(id))
            .and_then(|o| o.auth.clone())
        else {
            return false;
        };
        let branch = self.endpoint.new_branch();
        let cnonce = super::dial::new_cnonce();
        let creds = Credentials {
            username: &auth.0,
            password: auth.1.expose(),
        };
        let Some(next) = with_credentials(&refresh.request, challenge, creds, &branch, &cnonce, 1)
        else {
            return false;
        };
        let Some(call) = self.calls.by_dialog.get_mut(&refresh.dialog) else {
            return false;
        };
        // The resent UPDATE took the next CSeq: the dialog's own count follows.
        if let Some(seq) = next.cseq().map(|c| c.seq) {
            call.dialog.local_cseq = call.dialog.local_cseq.max(seq);
        }
        let peer = call.request_peer();
        let txn = self.endpoint.send_request(now, peer, next.clone());
        self.session_timers.refreshes.insert(
            txn,
            Refresh {
                dialog: refresh.dialog.clone(),
                epoch: refresh.epoch,
                request: next,
                challenged: true,
                ack: None,
                orphan: None,
            },
        );
        true
    }

    /// The final answer to one of our refreshes (`None`: it timed out). Returns whether the
    /// transaction was one.
    pub(super) fn on_refresh_answer(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        response: Option<&Response>,
    ) -> bool {
        let Some(mut refresh) = self.session_timers.refreshes.remove(&txn) else {
            return false;
        };
        if let Some((dialog, peer)) = refresh.orphan.take() {
            if let Some(ok) = response.filter(|r| (200..300).contains(&r.status)) {
                self.end_orphan_2xx(now, dialog, peer, &refresh.request, ok);
            }
            return true;
        }
        if let Some(challenge) = response.filter(|r| matches!(r.status, 401 | 407))
            && self.answer_refresh_challenge(now, &refresh, challenge)
        {
            return true;
        }
        let (id, epoch) = (refresh.dialog.clone(), refresh.epoch);
        let invite = refresh.request.method == Method::Invite;
        let retransmission = match response.filter(|r| (200..300).contains(&r.status)) {
            Some(ok) if invite => !self.on_refresh_invite_2xx(txn, refresh, ok),
            Some(ok) => {
                if let Some(call) = self.calls.by_dialog.get_mut(&id) {
                    call.dialog.on_refresh_response(ok);
                }
                false
            }
            // The re-INVITE's offer is void: the session stays as it was (RFC 3264 §8).
            None if invite => {
                if let Some(call) = self.calls.by_dialog.get_mut(&id) {
                    call.sdp.rollback_offer();
                }
                false
            }
            None => false,
        };
        if retransmission {
            // Of a 2xx already taken, acknowledged again: nothing else changes.
            return true;
        }
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
            // A challenge we could not answer will not go away by asking again.
            Some(401 | 407) => RefreshOutcome::Refused,
            Some(491) => RefreshOutcome::Glare(glare_wait(self.owns_call_id(&id), random_u16())),
            _ => RefreshOutcome::Failed,
        };
        let Some(call) = self.calls.by_dialog.get_mut(&id) else {
            return true;
        };
        let keep = call
            .timer
            .as_mut()
            .is_some_and(|t| t.on_refresh_outcome(now, epoch, outcome));
        if outcome == RefreshOutcome::DialogGone {
            tracing::info!(call_id = %id.call_id, "the session refresh failed: ending the call");
            self.stop_session_timer(&id);
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

    /// A request's `Allow` (or a response's) heard on a call: whether the peer takes UPDATE
    /// from now on.
    pub(super) fn note_peer_allow(&mut self, id: &DialogId, headers: &sipx_sip::msg::Headers) {
        if let (Some(call), Some(update)) =
            (self.calls.by_dialog.get_mut(id), allows_update(headers))
        {
            call.peer_update = update;
        }
    }

    /// A call's timer stops now, before the call is gone: a dialled-out call only asks its
    /// machine to hang up, and its timer must not fire meanwhile.
    fn stop_session_timer(&mut self, id: &DialogId) {
        let Some(call) = self.calls.by_dialog.get_mut(id) else {
            return;
        };
        call.timer = None;
        let ending = EndingCall::of(call);
        self.forget_session_timer(id, ending);
    }

    /// A call is gone: its timer too, and its refreshes. An UPDATE still in flight is
    /// abandoned (its answer no longer matters; unanswered, it would be sent again until
    /// Timer F). A re-INVITE still in flight runs on (RFC 3261 §15.1.2: the peer answers it
    /// 487, which the transaction acknowledges), and a 2xx to it is acknowledged and ended
    /// with a BYE (§13.2.2.4), from the dialog kept here.
    pub(super) fn forget_session_timer(&mut self, id: &DialogId, call: EndingCall) {
        self.session_timers.schedule(call.leg, None);
        let gone: Vec<ClientTxnId> = self
            .session_timers
            .refreshes
            .iter()
            .filter(|(_, r)| r.dialog == *id && r.orphan.is_none())
            .map(|(txn, _)| *txn)
            .collect();
        for txn in gone {
            let Some(mut refresh) = self.session_timers.refreshes.remove(&txn) else {
                continue;
            };
            if refresh.request.method == Method::Invite && refresh.ack.is_none() {
                refresh.orphan = Some((call.dialog.clone(), call.peer));
                self.session_timers.refreshes.insert(txn, refresh);
            } else {
                self.endpoint.abandon_request(txn);
            }
        }
    }
}

/// What is kept of a call that ends, for a refresh of it still in flight.
pub(super) struct EndingCall {
    leg: LegId,
    dialog: sipx_sip::dialog::Dialog,
    peer: sipx_sip::Peer,
}

impl EndingCall {
    pub(super) fn of(call: &super::calls::Call) -> EndingCall {
        EndingCall {
            leg: call.leg,
            dialog: call.dialog.clone(),
            peer: call.request_peer(),
        }
    }
}

/// Whether an `Allow` names UPDATE; `None` without an `Allow` (which says nothing: RFC 3261
/// §20.5 makes it optional in most requests).
pub(super) fn allows_update(headers: &sipx_sip::msg::Headers) -> Option<bool> {
    headers.get("Allow")?;
    Some(
        headers
            .list("Allow")
            .iter()
            .any(|m| m.eq_ignore_ascii_case("UPDATE")),
    )
}

/// A random number for a wait drawn after a 491 (its spread is what keeps the two sides from
/// crossing again; it guards no secret).
fn random_u16() -> u16 {
    let mut bytes = [0u8; 2];
    sipx_secrets::generate::fill(&mut bytes);
    u16::from_le_bytes(bytes)
}
