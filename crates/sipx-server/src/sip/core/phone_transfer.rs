//! Transfers a phone asks for (RFC 3515): a REFER in the dialog of a call in a room asks SIPx
//! to call someone else into that room in the phone's place. Blind, or attended (RFC 5589 §7):
//! the phone talked to that someone first, and the new call's INVITE carries the `Replaces`
//! of that consultation call, so it takes its place at the called phone.
//!
//! The new call is an ordinary dial-out of the call's application (a row, `call.state`
//! events), placed the way `POST /v1/calls` would place it: to the application's SIP account
//! of the `Refer-To`'s name if there is one, else a number back through the account the
//! phone's call came by, or, when `sip.accept_refer` is `all`, through its trunk. So a REFER
//! never reaches a route its phone could not already reach: no SIP URI of the phone's choosing,
//! no other trunk, and by default no trunk at all (a caller through a public trunk must not
//! place calls on the operator's account). Its NOTIFYs (`message/sipfrag`) report the new
//! call's progress; once it is answered and the phone has had that news, the phone's call
//! ends `transferred` (the phone usually hangs up first, which ends it the same way). A new
//! call that fails leaves the phone's call as it was.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use sipx_api::call_service::{CallCommandError, DialRequest, DialRoute};
use sipx_call::CallStateKind;
use sipx_sip::ClientTxnId;
use sipx_sip::ServerTxnId;
use sipx_sip::dialog::DialogId;
use sipx_sip::msg::{Method, Request};
use sipx_sip::refer::{Referral, read_referral, sipfrag, subscription_state};
use sipx_store::Store;

use super::events::CallTag;
use super::origin::Origin;
use super::{Core, CoreInput};
use crate::config::ReferPolicy;
use crate::sip::call_service::{CallControl, DialSpec, DialTarget};

/// How long the referred call may ring: the API's default.
const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// The referred call's longest duration: the API's default.
const MAX_DURATION: Duration = Duration::from_secs(1800);
/// The longest participant name the API takes.
const MAX_NAME_CHARS: usize = 128;

/// The way back to where the referring phone's call came from.
#[derive(Debug, Clone)]
enum RouteBack {
    Trunk(String),
    AccountId(String),
    AccountName(String),
    /// A dial-out to a SIP URI, or through whichever account answered: no route to reuse.
    None,
}

/// The referring call as its events name it, kept for the transfer's whole life: the phone
/// often hangs up as soon as its REFER is accepted.
#[derive(Debug, Clone)]
struct Referrer {
    id: String,
    dialog: DialogId,
    app_id: String,
    direction: &'static str,
    webhook_url: Option<String>,
    /// A dial-out that withheld its caller id: the call it is transferred to withholds it too.
    withhold_caller_id: bool,
}

impl Referrer {
    fn tag(&self) -> CallTag<'_> {
        CallTag {
            app_id: &self.app_id,
            call_id: &self.id,
            direction: self.direction,
            webhook_url: self.webhook_url.as_deref(),
        }
    }
}

/// A referral being routed and recorded, off the core.
#[derive(Debug)]
pub(crate) struct PendingReferral {
    referrer: Referrer,
    referral: Referral,
}

/// A referred call, as its referrer hears of it.
#[derive(Debug)]
struct Subscription {
    referrer: Referrer,
    referral: Referral,
}

/// A NOTIFY of ours in flight.
struct SentNotify {
    referrer: String,
    /// It says the new call was answered: the referrer's call ends once it is answered.
    success: bool,
}

#[derive(Default)]
pub(crate) struct PhoneTransfers {
    /// By the referred call's id, until its final status is reported.
    by_new_call: HashMap<String, Subscription>,
    /// Calls whose phone asked for a transfer that has not failed: their phone's BYE is the
    /// transfer going through.
    referring: HashSet<String>,
    /// Referrers whose new call is being routed and recorded off the core.
    placing: HashSet<String>,
    /// Of those, the ones whose room dropped them meanwhile: their new call is not placed.
    abandoned: HashSet<String>,
    /// Referrers whose phone ended the subscription (a 481 to a NOTIFY): no more NOTIFYs.
    silenced: HashSet<String>,
    notifies: HashMap<ClientTxnId, SentNotify>,
}

impl PhoneTransfers {
    pub fn is_referring(&self, call: &str) -> bool {
        self.referring.contains(call)
    }

    /// Whether a referred call is being routed and recorded off the core.
    pub fn is_placing(&self) -> bool {
        !self.placing.is_empty()
    }
}

impl Core {
    /// A REFER in the dialog `id`: answered 202 and placed, or refused.
    pub(super) fn on_phone_refer(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        id: &DialogId,
    ) {
        let tag = id.local_tag.clone();
        let not_in_room = (403, "Transfers are taken only for calls in a room");
        let accepted = read_referral(&req).and_then(|referral| {
            let referrer = self.call_id_of_dialog(id).ok_or(not_in_room)?;
            if self.phone_transfers.is_referring(&referrer) || self.transfers.busy(&referrer) {
                return Err((491, "A transfer of this call is in progress"));
            }
            let (referrer, room, back) = self.referrer_place(&referrer, id).ok_or(not_in_room)?;
            Ok((referrer, room, back, referral))
        });
        let (referrer, room, back, referral) = match accepted {
            Ok(a) => a,
            Err((status, why)) => {
                tracing::info!(sip_call_id = %id.call_id, status, why, "REFER refused");
                let resp = req.response(status, Some(&tag)).with_reason(why);
                return self.respond(now, txn, resp);
            }
        };
        let mut resp = req.response(202, Some(&tag));
        if !referral.notify {
            resp.headers.push("Refer-Sub", "false");
        }
        self.respond(now, txn, resp);
        tracing::info!(call = %referrer.id, to = %referral.refer_to, "the phone asked for a transfer");
        self.phone_transfers.referring.insert(referrer.id.clone());
        self.phone_transfers.placing.insert(referrer.id.clone());
        self.set_referring(now, &referrer.id, true);
        publish_transfer(self, &referrer, "requested", None, &referral.refer_to, None);
        if referral.notify {
            self.send_referral_notify(now, &referrer, &referral, 100);
        }
        let pending = PendingReferral { referrer, referral };
        let trunks = self.settings.accept_refer == ReferPolicy::All;
        let (inputs, store) = (self.inputs.clone(), self.store.clone());
        tokio::spawn(async move {
            let control = CallControl::new(inputs.clone(), store.clone());
            let placed = place_referral(&control, &store, &pending, room, back, trunks).await;
            let input = CoreInput::Referral {
                referral: Box::new(pending),
                placed: placed.map(Box::new),
            };
            let _ = inputs.send(input).await;
        });
    }

    /// The referring call, its room, and its route back; `None` when it is in no room.
    fn referrer_place(&self, id: &str, dialog: &DialogId) -> Option<(Referrer, String, RouteBack)> {
        if let Some(c) = self.controls.by_id.get(id) {
            let back = match &c.target {
                DialTarget::Trunk(t) => RouteBack::Trunk(t.id.clone()),
                DialTarget::Accounts(a) if a.len() == 1 => a
                    .first()
                    .map_or(RouteBack::None, |a| RouteBack::AccountId(a.id.clone())),
                _ => RouteBack::None,
            };
            let referrer = Referrer {
                id: id.to_owned(),
                dialog: dialog.clone(),
                app_id: c.app_id.clone(),
                direction: "outbound",
                webhook_url: c.webhook_url.clone(),
                withhold_caller_id: c.withhold_caller_id,
            };
            return Some((referrer, c.room.name.clone(), back));
        }
        let call = self.calls.by_dialog.get(dialog)?;
        let row = call.row.as_ref()?;
        let (room, _) = call.room.as_ref()?.place.as_ref()?;
        let back = match &call.origin {
            Some(Origin::Trunk(t)) => RouteBack::Trunk(t.clone()),
            Some(Origin::Account(user)) => RouteBack::AccountName(user.clone()),
            _ => RouteBack::None,
        };
        let referrer = Referrer {
            id: id.to_owned(),
            dialog: dialog.clone(),
            app_id: row.app_id().to_owned(),
            direction: "inbound",
            webhook_url: None,
            withhold_caller_id: false,
        };
        Some((referrer, room.name.clone(), back))
    }

    /// The room dropped call `id` (closed, or the phone removed): a new call its phone's
    /// REFER asked for and that is not placed yet is not placed at all.
    pub(super) fn referrer_left_room(&mut self, id: &str) {
        if self.phone_transfers.placing.contains(id) {
            self.phone_transfers.abandoned.insert(id.to_owned());
        }
    }

    /// The referred call is recorded: it starts, and its progress goes to the referrer. Or
    /// it could not be placed: the referrer hears why.
    pub(super) fn on_referral_placed(
        &mut self,
        now: Instant,
        pending: PendingReferral,
        placed: Result<Box<DialSpec>, CallCommandError>,
    ) {
        let PendingReferral { referrer, referral } = pending;
        self.phone_transfers.placing.remove(&referrer.id);
        let sub = Subscription { referrer, referral };
        if self.phone_transfers.abandoned.remove(&sub.referrer.id) {
            tracing::info!(call = %sub.referrer.id, "transfer dropped: the room let the phone go");
            if let Ok(spec) = &placed {
                self.end_unplaced(spec, 410, "Room closed", "room_removed");
            }
            let new_call = placed.as_ref().ok().map(|s| s.id.clone());
            return self.referral_failed(now, &sub, 410, new_call.as_deref());
        }
        match placed {
            Ok(spec) => {
                tracing::info!(call = %sub.referrer.id, new_call = %spec.id, "transfer: the new call is placed");
                self.phone_transfers
                    .by_new_call
                    .insert(spec.id.clone(), sub);
                self.start_dial(now, *spec);
            }
            Err(e) => {
                let status = match &e {
                    CallCommandError::Invalid { .. } | CallCommandError::NotFound => 404,
                    CallCommandError::Conflict(_) => 403,
                    CallCommandError::Unavailable(_) => 503,
                };
                tracing::info!(call = %sub.referrer.id, error = ?e, status, "transfer: the new call cannot be placed");
                self.referral_failed(now, &sub, status, None);
            }
        }
    }

    /// A state of call `id`: reported to its referrer if a phone's REFER placed it.
    pub(super) fn on_referred_state(
        &mut self,
        now: Instant,
        id: &str,
        kind: CallStateKind,
        code: u16,
    ) {
        let status = match kind {
            CallStateKind::Early => code.clamp(101, 199),
            CallStateKind::Connecting | CallStateKind::Confirmed => 200,
            CallStateKind::Disconnected if code >= 300 => code.min(699),
            CallStateKind::Disconnected => 487,
            CallStateKind::Calling | CallStateKind::Incoming => return,
        };
        let Some(sub) = self.phone_transfers.by_new_call.get(id) else {
            return;
        };
        if status < 200 {
            let (referrer, referral) = (sub.referrer.clone(), sub.referral.clone());
            publish_transfer(
                self,
                &referrer,
                "progress",
                Some(status),
                &referral.refer_to,
                Some(id),
            );
            self.send_referral_notify(now, &referrer, &referral, status);
            return;
        }
        let Some(sub) = self.phone_transfers.by_new_call.remove(id) else {
            return;
        };
        if status >= 300 {
            return self.referral_failed(now, &sub, status, Some(id));
        }
        tracing::info!(call = %sub.referrer.id, new_call = %id, "transfer completed: the new call is answered");
        publish_transfer(
            self,
            &sub.referrer,
            "completed",
            Some(200),
            &sub.referral.refer_to,
            Some(id),
        );
        if self.send_referral_notify(now, &sub.referrer, &sub.referral, 200) {
            // The phone's call ends once the phone has had the news (or hung up itself).
            return;
        }
        self.end_referrer(now, &sub.referrer.id);
    }

    fn referral_failed(
        &mut self,
        now: Instant,
        sub: &Subscription,
        status: u16,
        new_call: Option<&str>,
    ) {
        tracing::info!(call = %sub.referrer.id, status, "transfer failed: the phone's call goes on");
        self.send_referral_notify(now, &sub.referrer, &sub.referral, status);
        self.phone_transfers.referring.remove(&sub.referrer.id);
        self.set_referring(now, &sub.referrer.id, false);
        publish_transfer(
            self,
            &sub.referrer,
            "failed",
            Some(status),
            &sub.referral.refer_to,
            new_call,
        );
    }

    /// Sends the referrer a NOTIFY with `status`; `false` when none goes (no subscription,
    /// or the call is gone). The one that reports a success ends the referrer's call once
    /// answered.
    fn send_referral_notify(
        &mut self,
        now: Instant,
        referrer: &Referrer,
        referral: &Referral,
        status: u16,
    ) -> bool {
        if !referral.notify || self.phone_transfers.silenced.contains(&referrer.id) {
            return false;
        }
        let Some(peer) = self
            .calls
            .by_dialog
            .get(&referrer.dialog)
            .map(|c| c.request_peer())
        else {
            return false;
        };
        let via = self.new_via(&peer);
        let contact = self.contact_for(&peer, super::calls::CONTACT_USER);
        let Some(call) = self.calls.by_dialog.get_mut(&referrer.dialog) else {
            return false;
        };
        let mut notify = call.dialog.request(Method::Notify, &via, None);
        let h = &mut notify.headers;
        h.push("Event", format!("refer;id={}", referral.event_id));
        h.push("Subscription-State", subscription_state(status));
        h.push("Contact", contact);
        h.push("Content-Type", "message/sipfrag;version=2.0");
        notify.body = sipfrag(status).into_bytes();
        let txn = self.endpoint.send_request(now, peer, notify);
        let sent = SentNotify {
            referrer: referrer.id.clone(),
            success: (200..300).contains(&status),
        };
        self.phone_transfers.notifies.insert(txn, sent);
        true
    }

    /// The answer to one of our NOTIFYs (`None`: it timed out); `false` when `txn` is not one.
    pub(super) fn on_referral_notify_answer(
        &mut self,
        now: Instant,
        txn: ClientTxnId,
        status: Option<u16>,
    ) -> bool {
        let Some(sent) = self.phone_transfers.notifies.remove(&txn) else {
            return false;
        };
        // RFC 6665 §4.2.2: a 481 (or no answer) ends the subscription.
        if matches!(status, None | Some(481)) {
            self.phone_transfers.silenced.insert(sent.referrer.clone());
        }
        if sent.success {
            self.end_referrer(now, &sent.referrer);
        }
        true
    }

    /// The referrer's call ends `transferred`, unless it already has.
    fn end_referrer(&mut self, now: Instant, referrer: &str) {
        if self.phone_transfers.referring.remove(referrer) {
            self.end_transferred(now, referrer);
        }
    }

    /// While a referral is under way, the referring phone's BYE is the transfer going
    /// through, not a hang-up (a dialled-out call's machine needs telling).
    fn set_referring(&mut self, now: Instant, referrer: &str, referring: bool) {
        if let Some(c) = self.controls.by_id.get_mut(referrer) {
            c.fsm.set_replaced(now, referring);
        }
    }

    /// A call ended: a referral it made goes on, but no longer reports to its phone.
    pub(super) fn phone_transfer_party_gone(&mut self, id: &str) {
        self.phone_transfers.referring.remove(id);
        self.phone_transfers.silenced.remove(id);
    }
}

/// A `call.transfer` event of the referring call (which may have ended meanwhile).
fn publish_transfer(
    core: &Core,
    referrer: &Referrer,
    state: &str,
    status: Option<u16>,
    to: &str,
    new_call: Option<&str>,
) {
    let mut event = referrer.tag().transfer(state, status, to, None);
    event.data["by"] = serde_json::json!("phone");
    if let Some(new_call) = new_call {
        event.data["new_call_id"] = serde_json::json!(new_call);
    }
    core.publish_event(event);
}

/// Routes and records the call a referral asks for, as `POST /v1/calls` would.
async fn place_referral(
    control: &CallControl,
    store: &Store,
    pending: &PendingReferral,
    room: String,
    back: RouteBack,
    trunks: bool,
) -> Result<DialSpec, CallCommandError> {
    let referral = &pending.referral;
    let app_id = &pending.referrer.app_id;
    let (route, to) = referral_route(store, app_id, referral, back, trunks).await?;
    // A name the API would refuse (too long, control characters) is not used.
    let display_name = referral
        .display
        .clone()
        .filter(|d| d.chars().count() <= MAX_NAME_CHARS && !d.chars().any(char::is_control))
        .unwrap_or_else(|| to.clone());
    let request = DialRequest {
        app_id: app_id.clone(),
        to,
        from: None,
        withhold_caller_id: pending.referrer.withhold_caller_id,
        route,
        room,
        identity: String::new(),
        display_name,
        metadata: None,
        ring_timeout: RING_TIMEOUT,
        max_duration: MAX_DURATION,
        dtmf_after_answer: None,
        early_media: false,
        srtp: None,
        webhook_url: pending.referrer.webhook_url.clone(),
    };
    let (_, mut spec) = control.prepare(request).await?;
    spec.replaces = referral.replaces.clone();
    spec.referred_by = referral.referred_by.clone();
    Ok(spec)
}

/// Where the referred call goes, and the `to` it dials: the application's enabled account
/// named by the target, else the target as a number back the way the referrer came (through
/// a trunk only when `trunks`).
async fn referral_route(
    store: &Store,
    app_id: &str,
    referral: &Referral,
    back: RouteBack,
    trunks: bool,
) -> Result<(DialRoute, String), CallCommandError> {
    let unavailable = |e: sipx_store::StoreError| {
        tracing::error!(error = %e, "transfer: cannot read the store");
        CallCommandError::Unavailable("the database is not available".to_owned())
    };
    let account = store
        .sip_account_by_username(app_id, &referral.target)
        .await
        .map_err(unavailable)?;
    if let Some(a) = account.filter(|a| a.enabled) {
        return Ok((DialRoute::SipAccount(a.id), referral.target.clone()));
    }
    let refused = |message: &str| CallCommandError::Invalid {
        field: "to",
        message: message.to_owned(),
    };
    let number = referral
        .number
        .clone()
        .ok_or_else(|| refused("the Refer-To names neither an account nor a number"))?;
    let route = match back {
        RouteBack::Trunk(id) if trunks => DialRoute::Trunk(id),
        RouteBack::Trunk(_) => {
            return Err(CallCommandError::Conflict(
                "transfers back through a trunk are off (sip.accept_refer)".to_owned(),
            ));
        }
        RouteBack::AccountId(id) => DialRoute::SipAccount(id),
        RouteBack::AccountName(user) => store
            .sip_account_by_username(app_id, &user)
            .await
            .map_err(unavailable)?
            .map(|a| DialRoute::SipAccount(a.id))
            .ok_or_else(|| refused("the referring call has no route to call back through"))?,
        RouteBack::None => {
            return Err(refused(
                "the referring call has no route to call back through",
            ));
        }
    };
    Ok((route, number))
}
