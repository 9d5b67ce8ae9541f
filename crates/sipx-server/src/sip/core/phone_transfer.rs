//! Transfers a phone asks for (RFC 3515, blind): a REFER in the dialog of a call in a room
//! asks SIPx to call someone else into that room in the phone's place.
//!
//! The new call is an ordinary dial-out of the call's application (a row, `call.state`
//! events), placed the way `POST /v1/calls` would place it: to the application's SIP account
//! of the `Refer-To`'s name if there is one, else back through the trunk or account the
//! phone's call went through. So a REFER never reaches a route its phone could not already
//! reach: no SIP URI of the phone's choosing, no other trunk. Its NOTIFYs (`message/sipfrag`)
//! report the new call's progress; once it is answered and the phone has had that news, the
//! phone's call ends `transferred` (the phone usually hangs up first, which ends it the same
//! way). A new call that fails leaves the phone's call as it was.

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

use super::origin::Origin;
use super::{Core, CoreInput};
use crate::sip::call_service::{CallControl, DialSpec, DialTarget};

/// How long the referred call may ring: the API's default.
const RING_TIMEOUT: Duration = Duration::from_secs(60);
/// The referred call's longest duration: the API's default.
const MAX_DURATION: Duration = Duration::from_secs(1800);

/// The way back to where the referring phone's call came from.
#[derive(Debug, Clone)]
enum RouteBack {
    Trunk(String),
    AccountId(String),
    AccountName(String),
    /// A dial-out to a SIP URI, or through whichever account answered: no route to reuse.
    None,
}

/// A referral being routed and recorded, off the core.
#[derive(Debug)]
pub(crate) struct PendingReferral {
    /// The API id of the referring call, and its dialog.
    referrer: String,
    dialog: DialogId,
    app_id: String,
    referral: Referral,
}

/// A referred call, as its referrer hears of it.
#[derive(Debug)]
struct Subscription {
    referrer: String,
    dialog: DialogId,
    referral: Referral,
}

#[derive(Default)]
pub(crate) struct PhoneTransfers {
    /// By the referred call's id, until its final status is reported.
    by_new_call: HashMap<String, Subscription>,
    /// Calls whose phone asked for a transfer that has not failed: their phone's BYE is the
    /// transfer going through.
    referring: HashSet<String>,
    /// Our NOTIFYs in flight, with the referrer to end once the one saying "200" is answered.
    notifies: HashMap<ClientTxnId, Option<String>>,
}

impl PhoneTransfers {
    pub fn is_referring(&self, call: &str) -> bool {
        self.referring.contains(call)
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
        let accepted = read_referral(&req).and_then(|referral| {
            let referrer = self
                .call_id_of_dialog(id)
                .ok_or((403, "Transfers are taken only for calls in a room"))?;
            if self.phone_transfers.is_referring(&referrer) || self.transfers.busy(&referrer) {
                return Err((491, "A transfer of this call is in progress"));
            }
            let (app_id, room, back) = self
                .referrer_place(&referrer, id)
                .ok_or((403, "Transfers are taken only for calls in a room"))?;
            Ok((referrer, app_id, room, back, referral))
        });
        let (referrer, app_id, room, back, referral) = match accepted {
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
        tracing::info!(call = %referrer, to = %referral.refer_to, "the phone asked for a transfer");
        self.phone_transfers.referring.insert(referrer.clone());
        self.set_referring(now, &referrer, true);
        self.phone_transfer_event(&referrer, "requested", None, &referral.refer_to, None);
        let pending = PendingReferral {
            referrer,
            dialog: id.clone(),
            app_id,
            referral,
        };
        if pending.referral.notify {
            self.send_referral_notify(now, &pending.dialog, &pending.referral, 100);
        }
        let (inputs, store) = (self.inputs.clone(), self.store.clone());
        tokio::spawn(async move {
            let control = CallControl::new(inputs.clone(), store.clone());
            let placed = place_referral(&control, &store, &pending, room, back).await;
            let input = CoreInput::Referral {
                referral: Box::new(pending),
                placed: placed.map(Box::new),
            };
            let _ = inputs.send(input).await;
        });
    }

    /// The referring call's application, room, and route back; `None` when it is in no room.
    fn referrer_place(&self, referrer: &str, id: &DialogId) -> Option<(String, String, RouteBack)> {
        if let Some(c) = self.controls.by_id.get(referrer) {
            let back = match &c.target {
                DialTarget::Trunk(t) => RouteBack::Trunk(t.id.clone()),
                DialTarget::Accounts(a) if a.len() == 1 => a
                    .first()
                    .map_or(RouteBack::None, |a| RouteBack::AccountId(a.id.clone())),
                _ => RouteBack::None,
            };
            return Some((c.app_id.clone(), c.room.name.clone(), back));
        }
        let call = self.calls.by_dialog.get(id)?;
        let row = call.row.as_ref()?;
        let (room, _) = call.room.as_ref()?.place.as_ref()?;
        let back = match &call.origin {
            Some(Origin::Trunk(t)) => RouteBack::Trunk(t.clone()),
            Some(Origin::Account(user)) => RouteBack::AccountName(user.clone()),
            _ => RouteBack::None,
        };
        Some((row.app_id().to_owned(), room.name.clone(), back))
    }

    /// The referred call is recorded: it starts, and its progress goes to the referrer. Or
    /// it could not be placed: the referrer hears why.
    pub(super) fn on_referral_placed(
        &mut self,
        now: Instant,
        pending: PendingReferral,
        placed: Result<Box<DialSpec>, CallCommandError>,
    ) {
        let PendingReferral {
            referrer,
            dialog,
            referral,
            ..
        } = pending;
        match placed {
            Ok(spec) => {
                tracing::info!(call = %referrer, new_call = %spec.id, "transfer: the new call is placed");
                let sub = Subscription {
                    referrer,
                    dialog,
                    referral,
                };
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
                tracing::info!(call = %referrer, error = ?e, status, "transfer: the new call cannot be placed");
                let sub = Subscription {
                    referrer,
                    dialog,
                    referral,
                };
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
            let (referrer, dialog, referral) = (
                sub.referrer.clone(),
                sub.dialog.clone(),
                sub.referral.clone(),
            );
            self.phone_transfer_event(
                &referrer,
                "progress",
                Some(status),
                &referral.refer_to,
                Some(id),
            );
            if referral.notify {
                self.send_referral_notify(now, &dialog, &referral, status);
            }
            return;
        }
        let Some(sub) = self.phone_transfers.by_new_call.remove(id) else {
            return;
        };
        if status >= 300 {
            return self.referral_failed(now, &sub, status, Some(id));
        }
        tracing::info!(call = %sub.referrer, new_call = %id, "transfer completed: the new call is answered");
        self.phone_transfer_event(
            &sub.referrer,
            "completed",
            Some(200),
            &sub.referral.refer_to,
            Some(id),
        );
        if sub.referral.notify && self.send_referral_notify(now, &sub.dialog, &sub.referral, 200) {
            // The phone's call ends once the phone has had the news (or hung up itself).
            return;
        }
        self.end_referrer(now, &sub.referrer);
    }

    fn referral_failed(
        &mut self,
        now: Instant,
        sub: &Subscription,
        status: u16,
        new_call: Option<&str>,
    ) {
        tracing::info!(call = %sub.referrer, status, "transfer failed: the phone's call goes on");
        if sub.referral.notify {
            self.send_referral_notify(now, &sub.dialog, &sub.referral, status);
        }
        self.phone_transfers.referring.remove(&sub.referrer);
        self.set_referring(now, &sub.referrer, false);
        self.phone_transfer_event(
            &sub.referrer,
            "failed",
            Some(status),
            &sub.referral.refer_to,
            new_call,
        );
    }

    /// Sends the referrer a NOTIFY with `status`; `false` when its call is gone. The one that
    /// reports a success ends the referrer's call once answered.
    fn send_referral_notify(
        &mut self,
        now: Instant,
        dialog: &DialogId,
        referral: &Referral,
        status: u16,
    ) -> bool {
        let Some(peer) = self.calls.by_dialog.get(dialog).map(|c| c.request_peer()) else {
            return false;
        };
        let via = self.new_via(&peer);
        let host = self
            .local_host_for(peer.addr, peer.transport)
            .unwrap_or_else(|| "invalid".to_owned());
        let Some(call) = self.calls.by_dialog.get_mut(dialog) else {
            return false;
        };
        let mut notify = call.dialog.request(Method::Notify, &via, None);
        let h = &mut notify.headers;
        h.push("Event", format!("refer;id={}", referral.event_id));
        h.push("Subscription-State", subscription_state(status));
        h.push("Contact", format!("<sip:sipx@{host}>"));
        h.push("Content-Type", "message/sipfrag;version=2.0");
        notify.body = sipfrag(status).into_bytes();
        let txn = self.endpoint.send_request(now, peer, notify);
        let referrer = self.call_id_of_dialog(dialog);
        let end_after = referrer.filter(|_| (200..300).contains(&status));
        self.phone_transfers.notifies.insert(txn, end_after);
        true
    }

    /// The answer to one of our NOTIFYs (or its timeout); `false` when `txn` is not one.
    pub(super) fn on_referral_notify_answer(&mut self, now: Instant, txn: ClientTxnId) -> bool {
        let Some(end_after) = self.phone_transfers.notifies.remove(&txn) else {
            return false;
        };
        if let Some(referrer) = end_after {
            self.end_referrer(now, &referrer);
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

    /// A call ended: a referral it made goes on, but no longer reports to it.
    pub(super) fn phone_transfer_party_gone(&mut self, id: &str) {
        self.phone_transfers.referring.remove(id);
    }

    fn phone_transfer_event(
        &self,
        referrer: &str,
        state: &str,
        status: Option<u16>,
        to: &str,
        new_call: Option<&str>,
    ) {
        let event = match self.controls.by_id.get(referrer) {
            Some(c) => c.tag().transfer(state, status, to, None),
            None => match self.inbound_row(referrer) {
                Some(row) => row.tag().transfer(state, status, to, None),
                None => return,
            },
        };
        let mut event = event;
        event.data["by"] = serde_json::json!("phone");
        if let Some(new_call) = new_call {
            event.data["new_call_id"] = serde_json::json!(new_call);
        }
        self.publish_event(event);
    }
}

/// Routes and records the call a referral asks for, as `POST /v1/calls` would.
async fn place_referral(
    control: &CallControl,
    store: &Store,
    pending: &PendingReferral,
    room: String,
    back: RouteBack,
) -> Result<DialSpec, CallCommandError> {
    let target = &pending.referral.target;
    let route = referral_route(store, &pending.app_id, target, back).await?;
    let request = DialRequest {
        app_id: pending.app_id.clone(),
        to: target.clone(),
        from: None,
        route,
        room,
        identity: String::new(),
        display_name: pending
            .referral
            .display
            .clone()
            .unwrap_or_else(|| target.clone()),
        metadata: None,
        ring_timeout: RING_TIMEOUT,
        max_duration: MAX_DURATION,
        dtmf_after_answer: None,
        early_media: false,
        srtp: None,
        webhook_url: None,
    };
    control.prepare(request).await.map(|(_, spec)| spec)
}

/// The application's enabled account named `target`, else the way back to the referrer.
async fn referral_route(
    store: &Store,
    app_id: &str,
    target: &str,
    back: RouteBack,
) -> Result<DialRoute, CallCommandError> {
    let unavailable = |e: sipx_store::StoreError| {
        tracing::error!(error = %e, "transfer: cannot read the store");
        CallCommandError::Unavailable("the database is not available".to_owned())
    };
    let account = store
        .sip_account_by_username(app_id, target)
        .await
        .map_err(unavailable)?;
    if let Some(a) = account.filter(|a| a.enabled) {
        return Ok(DialRoute::SipAccount(a.id));
    }
    let no_route = || CallCommandError::Invalid {
        field: "to",
        message: "the referring call has no route to call back through".to_owned(),
    };
    match back {
        RouteBack::Trunk(id) => Ok(DialRoute::Trunk(id)),
        RouteBack::AccountId(id) => Ok(DialRoute::SipAccount(id)),
        RouteBack::AccountName(user) => store
            .sip_account_by_username(app_id, &user)
            .await
            .map_err(unavailable)?
            .map(|a| DialRoute::SipAccount(a.id))
            .ok_or_else(no_route),
        RouteBack::None => Err(no_route()),
    }
}
