//! Where a new call goes: an echo test, a room dialled by name (`room-<name>`), or what the
//! routing rules of the application it came through decide (a room, a room behind a PIN, a
//! webhook to ask, a refusal). A webhook is asked in a task of its own while the caller hears
//! ringing; its answer comes back as `CoreInput::WebhookAnswered` and the call goes on from
//! there (or was cancelled meanwhile).

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use sipx_call::Pin;
use sipx_call::routing::{Decision, InboundCall, WebhookAnswer, after_webhook};
use sipx_rooms::RoomKey;
use sipx_sip::dialog::DialogId;
use sipx_sip::identity::number_of;
use sipx_sip::msg::{HasHeaders, Method, Request};
use sipx_sip::{Peer, ServerTxnId};

use super::call_rows::{CallRow, NewRow};
use super::calls::CONTACT_USER;
use super::origin::{Origin, Reach};
use super::{Core, CoreInput};
use crate::media::Echo;
use crate::sip::call_service::unix_ms;
use crate::sip::route_webhook;

/// Where an answered call's audio goes.
pub(super) enum Destination {
    Echo(Echo),
    Room(RoomKey),
    /// The room, once the caller has typed its PIN.
    PinRoom(RoomKey, Pin),
}

impl Destination {
    pub fn room(&self) -> Option<&RoomKey> {
        match self {
            Destination::Echo(_) => None,
            Destination::Room(k) | Destination::PinRoom(k, _) => Some(k),
        }
    }
}

/// A webhook to ask before the call can go on.
pub(super) struct Ask {
    url: String,
    timeout: Duration,
    fallback_room: Option<String>,
    row: NewRow,
    trunk_id: Option<String>,
    sip_account_id: Option<String>,
    caller: String,
    called: String,
}

/// The routing outcome of a new INVITE; `row` is its call row's seed once it has an
/// application.
pub(super) enum Routed {
    Go(Destination, Option<NewRow>),
    Ask(Box<Ask>),
    Refuse {
        status: u16,
        reason: Option<String>,
        row: Option<NewRow>,
    },
}

/// The row of a new inbound call in application `app`, come through a trunk or an account.
pub(super) fn new_row(
    req: &Request,
    app: &str,
    trunk_id: Option<&str>,
    sip_account_id: Option<&str>,
) -> NewRow {
    NewRow {
        id: sipx_store::new_call_id(),
        app_id: app.to_owned(),
        // As the trunk asserts it, unless withheld (`sipx_sip::identity`).
        from: sipx_sip::identity::caller(req, trunk_id.is_some()).map(|f| f.uri.to_string()),
        to: req.uri.to_string(),
        route: trunk_id
            .map(|t| format!("trunk:{t}"))
            .or_else(|| sip_account_id.map(|a| format!("sip_account:{a}"))),
        sip_call_id: req.call_id().unwrap_or("").to_owned(),
        arrived_ms: unix_ms(),
    }
}

fn refuse(status: u16, reason: &str, row: Option<NewRow>) -> Routed {
    Routed::Refuse {
        status,
        reason: Some(reason.to_owned()),
        row,
    }
}

/// A new INVITE not answered yet, with the To tag its answers carry and where it came from.
pub(crate) struct NewInvite {
    pub txn: ServerTxnId,
    pub req: Request,
    pub peer: Peer,
    pub tag: String,
    pub origin: Origin,
}

/// An INVITE waiting for its webhook's answer.
pub(crate) struct Asking {
    invite: NewInvite,
    fallback_room: Option<String>,
    row: NewRow,
}

/// The INVITEs waiting for a webhook, by question.
#[derive(Default)]
pub(crate) struct Waiting {
    by_question: HashMap<u64, Asking>,
    next: u64,
}

impl Core {
    /// The trunk or SIP account (ids) a call came through, for its row.
    pub(super) fn came_through<'a>(
        &'a self,
        origin: &'a Origin,
    ) -> (Option<&'a str>, Option<&'a str>) {
        match origin {
            Origin::Trunk(id) => (Some(id.as_str()), None),
            Origin::Account(user) => (None, self.routing.account_id(user)),
            Origin::Unknown => (None, None),
        }
    }

    /// The application of the trunk or account a call came through.
    pub(super) fn app_of(&self, origin: &Origin) -> Option<String> {
        match origin {
            Origin::Trunk(id) => self.origins.trunk_app(id).map(str::to_owned),
            Origin::Account(user) => self.bindings.get(user).map(|r| r.app_id.clone()),
            Origin::Unknown => None,
        }
    }

    /// The echo test, a room dialled by name (`rooms.dial_in_prefix` + name), or the rules'
    /// decision in the application of the trunk or account the call came through.
    pub(super) fn route_invite(&self, req: &Request, origin: &Origin) -> Routed {
        // Numbers as the application writes them (its trunk's inbound number rules), for the
        // trunk's DIDs, the rules and the webhook alike.
        let in_app_form = |n: Cow<'_, str>| self.origins.inbound_number(origin, &n).into_owned();
        let dialled_number = number_of(&req.uri);
        let uri_number = in_app_form(dialled_number.clone());
        let to_number = req.to().map(|t| in_app_form(number_of(&t.uri)));
        let mut called = uri_number.as_str();
        // The echo test and rooms by name are SIPx's own addresses, as dialled: no trunk's
        // rules rewrite them (a numeric echo extension stays reachable).
        let mut addressed = dialled_number.as_ref();
        // A trunk that lists its numbers (DIDs) reaches those only, and the call goes by the
        // one it reached: not to the echo test or a room by name, not to another number. A
        // provider sending to a registered contact puts the number in To, so To's counts too.
        if let Origin::Trunk(trunk) = origin {
            let dialled = [Some(called), to_number.as_deref()];
            let dialled: Vec<&str> = dialled.into_iter().flatten().collect();
            match self.origins.reached(trunk, &dialled) {
                Reach::Any => {}
                Reach::Listed(number) => (called, addressed) = (number, number),
                Reach::NotListed => {
                    tracing::info!(trunk = %trunk, called, "call refused: not a number of its trunk");
                    return refuse(404, "Not a number of this trunk", None);
                }
            }
        }
        if let Some(echo) = self.settings.media.echo(addressed) {
            return Routed::Go(Destination::Echo(echo), None);
        }
        let app = self.app_of(origin);
        let (trunk_id, sip_account_id) = self.came_through(origin);
        let row = app
            .as_ref()
            .map(|app| new_row(req, app, trunk_id, sip_account_id));
        let dial_in = self
            .rooms
            .as_ref()
            .map(|r| r.dial_in_prefix())
            .filter(|p| !p.is_empty())
            .and_then(|p| addressed.strip_prefix(p));
        if let Some(name) = dial_in {
            let Some(app) = app else {
                return refuse(
                    403,
                    "Calls into rooms come through a trunk or SIP account",
                    None,
                );
            };
            return match self.room_for(&app, name) {
                Ok(key) => Routed::Go(Destination::Room(key), row),
                Err((status, reason)) => refuse(status, reason, row),
            };
        }
        let (Some(app), Some(row)) = (app, row) else {
            return refuse(480, "No route for this call", None);
        };
        let from = sipx_sip::identity::caller(req, trunk_id.is_some());
        let caller = from
            .as_ref()
            .map(|f| in_app_form(number_of(&f.uri)))
            .unwrap_or_default();
        let caller = caller.as_str();
        let call = InboundCall {
            trunk_id,
            sip_account_id,
            called,
            caller,
        };
        // The call's id makes a per-caller room unique.
        let unique = row.id.strip_prefix("call_").unwrap_or(&row.id).to_owned();
        match self.routing.decide(&app, &call, &unique) {
            Decision::AskWebhook {
                url,
                timeout,
                fallback_room,
            } => Routed::Ask(Box::new(Ask {
                url,
                timeout,
                fallback_room,
                trunk_id: trunk_id.map(str::to_owned),
                sip_account_id: sip_account_id.map(str::to_owned),
                caller: caller.to_owned(),
                called: called.to_owned(),
                row,
            })),
            decision => self.decided(decision, row),
        }
    }

    /// A room, a refusal, or no rule; a webhook's "ask" cannot come twice.
    fn decided(&self, decision: Decision, row: NewRow) -> Routed {
        match decision {
            Decision::Room { name, pin } => match self.room_for(&row.app_id, &name) {
                Ok(key) => {
                    let d = match pin {
                        Some(pin) => Destination::PinRoom(key, pin),
                        None => Destination::Room(key),
                    };
                    Routed::Go(d, Some(row))
                }
                Err((status, reason)) => refuse(status, reason, Some(row)),
            },
            Decision::Reject { code, reason } => Routed::Refuse {
                status: code,
                reason,
                row: Some(row),
            },
            Decision::NoRule => Routed::Refuse {
                status: self.settings.no_rule_status,
                reason: None,
                row: Some(row),
            },
            Decision::AskWebhook { .. } => refuse(500, "Routing loop", Some(row)),
        }
    }

    fn room_for(&self, app: &str, name: &str) -> Result<RoomKey, (u16, &'static str)> {
        let Some(rooms) = &self.rooms else {
            return Err((480, "Rooms are disabled"));
        };
        if !sipx_rooms::valid_name(name) {
            return Err((404, "No such room"));
        }
        let key = RoomKey::new(app, name);
        if !rooms.may_join(&key) {
            return Err((404, "No such room"));
        }
        Ok(key)
    }

    /// Answers, asks about or refuses a new INVITE as routing decided.
    pub(super) fn go_on(&mut self, now: Instant, invite: NewInvite, routed: Routed) {
        match routed {
            Routed::Go(destination, row) => {
                self.admit_invite(now, invite, destination, row);
            }
            Routed::Ask(ask) => self.ask_webhook(now, invite, *ask),
            Routed::Refuse {
                status,
                reason,
                row,
            } => {
                let mut resp = invite.req.response(status, Some(&invite.tag));
                if let Some(r) = &reason {
                    resp = resp.with_reason(r);
                }
                self.refuse_invite(now, invite.txn, resp, row);
            }
        }
    }

    /// Refuses a new INVITE; a call with an application keeps a row of its refusal.
    pub(super) fn refuse_invite(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        resp: sipx_sip::msg::Response,
        row: Option<NewRow>,
    ) {
        if let Some(row) = row {
            let cause = if resp.status == 487 {
                "remote_cancel"
            } else {
                "rejected"
            };
            CallRow::start(row, None, self.rows.clone()).end(resp.status, &resp.reason, cause);
        }
        self.respond(now, txn, resp);
    }

    /// Asks the rule's webhook which room; the caller hears ringing meanwhile, unless it
    /// requires provisional answers to be sent reliably (RFC 3262): SIPx sends none of them
    /// reliably, and 100 Trying alone keeps that caller waiting.
    pub(super) fn ask_webhook(&mut self, now: Instant, invite: NewInvite, ask: Ask) {
        if !sipx_sip::reliable::requires_reliable(&invite.req.headers) {
            // It opens an early dialog, so it names where requests inside it go (§12.1.1).
            let ringing = invite
                .req
                .response(180, Some(&invite.tag))
                .with_header("Contact", self.contact_for(&invite.peer, CONTACT_USER));
            self.respond(now, invite.txn, ringing);
        }
        let question = route_webhook::Question {
            call: route_webhook::QuestionCall {
                from: &ask.caller,
                to: &ask.called,
                trunk_id: ask.trunk_id.as_deref(),
                sip_account_id: ask.sip_account_id.as_deref(),
            },
        };
        let body = serde_json::to_vec(&question).unwrap_or_default();
        let id = self.waiting.next;
        self.waiting.next += 1;
        let (store, inputs) = (self.store.clone(), self.inputs.clone());
        let tls = self.tls_client.clone();
        let deny = self.settings.webhook_deny.clone();
        let (url, timeout, app_id) = (ask.url, ask.timeout, ask.row.app_id.clone());
        tracing::info!(call = %ask.row.id, %url, "asking the routing webhook");
        self.waiting.by_question.insert(
            id,
            Asking {
                invite,
                fallback_room: ask.fallback_room,
                row: ask.row,
            },
        );
        tokio::spawn(async move {
            let answer = match (secret_of(&store, &app_id).await, tls) {
                (Some(secret), Some(tls)) => {
                    let signature = route_webhook::signature(
                        &secret,
                        u64::try_from(unix_ms() / 1000).unwrap_or(0),
                        &body,
                    );
                    match route_webhook::ask(&url, timeout, signature, body, (tls, deny)).await {
                        Ok((status, body)) => {
                            let parsed = route_webhook::parse_answer(status, &body);
                            if parsed.is_none() {
                                tracing::info!(%url, status, "the routing webhook's answer is not usable");
                            }
                            parsed
                        }
                        Err(e) => {
                            tracing::info!(%url, error = %e, "the routing webhook did not answer");
                            None
                        }
                    }
                }
                _ => None,
            };
            let _ = inputs.send(CoreInput::WebhookAnswered { id, answer }).await;
        });
    }

    /// The webhook answered (or not): the call goes on, unless it was cancelled meanwhile.
    pub(super) fn on_webhook_answer(
        &mut self,
        now: Instant,
        id: u64,
        answer: Option<WebhookAnswer>,
    ) {
        let Some(a) = self.waiting.by_question.remove(&id) else {
            return;
        };
        let decision = after_webhook(answer, a.fallback_room.as_deref());
        let routed = self.decided(decision, a.row);
        self.go_on(now, a.invite, routed);
    }

    /// Whether an INVITE waits for its routing webhook.
    pub(super) fn has_waiting_invites(&self) -> bool {
        !self.waiting.by_question.is_empty()
    }

    /// SIPx is stopping: every INVITE still waiting for its webhook is refused `503`.
    pub(super) fn refuse_waiting_invites(&mut self, now: Instant) {
        let waiting: Vec<Asking> = self.waiting.by_question.drain().map(|(_, a)| a).collect();
        for a in waiting {
            let resp = self.shutting_down_response(&a.invite.req, &a.invite.tag);
            self.refuse_invite(now, a.invite.txn, resp, Some(a.row));
        }
    }

    /// The INVITE waiting for its webhook whose early dialog `id` names.
    pub(super) fn waiting_invite_of(&self, id: &DialogId) -> Option<ServerTxnId> {
        self.waiting
            .by_question
            .values()
            .find(|a| {
                let req = &a.invite.req;
                a.invite.tag == id.local_tag
                    && req.call_id() == Some(id.call_id.as_str())
                    && req.tag_of_from() == Some(id.remote_tag.as_str())
            })
            .map(|a| a.invite.txn)
    }

    /// A request with a To tag that names none of our confirmed dialogs: one inside the early
    /// dialog our 180 opened while the caller's INVITE waits for its routing webhook (RFC 3261
    /// §12), a caller's BYE crossing ours, or one for a dialog that is gone (481).
    pub(super) fn on_unconfirmed_dialog(
        &mut self,
        now: Instant,
        txn: ServerTxnId,
        req: Request,
        source: Peer,
    ) {
        let Some(id) = DialogId::of_request(&req) else {
            return self.respond(now, txn, req.response(481, None));
        };
        let tag = id.local_tag.clone();
        // A caller hanging up while our BYE waits for its ACK: the dialog is still its, and
        // the BYE it sends makes ours needless.
        if req.method == Method::Bye && self.calls.byes_after_ack.remove(&id).is_some() {
            return self.respond(now, txn, req.response(200, Some(&tag)));
        }
        if let Some(call) = self.dial_out_in_early_dialog(&req) {
            return self.on_early_dial_out_request(now, txn, req, source, &call);
        }
        let Some(invite) = self.waiting_invite_of(&id) else {
            return self.respond(now, txn, req.response(481, None));
        };
        let resp = match req.method {
            // A caller may end an early dialog by BYE (RFC 3261 §15): its INVITE then ends as
            // if cancelled (§15.1.2: 487).
            Method::Bye => {
                self.respond(now, txn, req.response(200, Some(&tag)));
                return self.on_cancelled(now, invite);
            }
            // Our answer to the INVITE's offer has not gone yet, so a new offer has to wait
            // (RFC 3311 §5.2: 500 with a Retry-After of up to 10 s). One without an offer
            // just refreshes the target: its 2xx carries our Contact.
            Method::Update if !req.body.is_empty() => req
                .response(500, Some(&tag))
                .with_reason("Offer before the answer to the INVITE")
                .with_header("Retry-After", retry_after_secs().to_string()),
            _ => self.early_dialog_answer(&req, &tag, &source),
        };
        self.respond(now, txn, resp);
    }

    pub(super) fn on_cancelled(&mut self, now: Instant, txn: ServerTxnId) {
        if let Some(id) = self.held_call_of(txn) {
            return self.refuse_held(now, &id, 487, "remote_cancel");
        }
        let id = self
            .waiting
            .by_question
            .iter()
            .find(|(_, a)| a.invite.txn == txn)
            .map(|(id, _)| *id);
        if let Some(a) = id.and_then(|id| self.waiting.by_question.remove(&id)) {
            let resp = a.invite.req.response(487, Some(&a.invite.tag));
            self.refuse_invite(now, txn, resp, Some(a.row));
        }
    }
}

/// The application's API secret, which signs its webhooks.
async fn secret_of(store: &sipx_store::Store, app_id: &str) -> Option<Vec<u8>> {
    let app = store.get_app(app_id).await.ok().flatten()?;
    let (_, secret) = store.app_credentials(&app.api_key).await.ok().flatten()?;
    Some(secret.expose().clone())
}

/// A `Retry-After` drawn from 1 to 10 s (RFC 3311 §5.2 asks for a random one up to 10).
fn retry_after_secs() -> u8 {
    let mut byte = [0u8];
    sipx_secrets::generate::fill(&mut byte);
    1 + byte[0] % 10
}
