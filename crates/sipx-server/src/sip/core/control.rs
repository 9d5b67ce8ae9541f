//! Call control in the core: each dialled-out call is a `sipx_call::Call` state machine; this
//! file feeds it (API commands, SIP answers, room and media events, its timers) and carries out
//! what it asks (join or leave the room, send the INVITE, CANCEL or BYE, start or stop media,
//! press keys). Every state change is written to the call's row and reported.
//!
//! The SIP side of a dial-out lives in `dial.rs` until the phone answers; after that the call
//! is also an ordinary entry of `Calls` (its dialog), so in-dialog requests from the phone
//! (BYE, re-INVITE for hold, INFO) take the same path as for answered calls, and reach the
//! machine from there.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use sipx_api::call_service::{CallCommandError, StoredHistoryEntry, StoredMediaStats};
use sipx_call::{Command, Event, Input, MediaInput, MediaMode, Output, RoomInput, SipInput};
use sipx_media::dtmf::DtmfDigit;
use sipx_media::leg::LegEvent;
use sipx_rooms::{JoinRequest, ParticipantId, RoomKey};
use sipx_sip::ClientTxnId;
use sipx_sip::dialog::DialogId;
use sipx_store::CallProgress;

use super::Core;
use super::call_rows::RowWrite;
use super::dial::OutboundInvite;
use crate::media::{LegId, LegMode, MediaEvent, PhoneLink};
use crate::sip::call_service::{CallCommand, DialSpec, DialTarget, Reply, unplaced_history};

/// A call under control.
pub(crate) struct Controlled {
    pub id: String,
    pub app_id: String,
    pub fsm: sipx_call::Call,
    pub leg: LegId,
    pub link: Arc<PhoneLink>,
    pub room: RoomKey,
    /// The phone's participant identity in the room.
    pub identity: String,
    pub participant: Option<ParticipantId>,
    /// The machine asked to leave: a join that completes later is undone at once.
    pub left_room: bool,
    pub target: DialTarget,
    /// Routes still to try if this one fails before anything rang (automatic routing).
    pub fallbacks: std::collections::VecDeque<DialTarget>,
    /// The target's addresses this call's INVITEs went to and that failed (no answer, 503,
    /// no connection): the next attempt goes to another of its host's (RFC 3263 §4.3,
    /// `server_failover.rs`).
    pub tried: Vec<std::net::SocketAddr>,
    /// The INVITE the machine asked for, kept to send it again along a fallback route.
    pub invite: Option<sipx_call::Invite>,
    pub srtp: Option<sipx_store::SrtpPolicy>,
    /// Every INVITE of this call withholds the caller id (`dial.rs`).
    pub withhold_caller_id: bool,
    pub webhook_url: Option<String>,
    /// The `Replaces` every INVITE of this call carries, along any route.
    pub replaces: Option<String>,
    /// The `Referred-By` every INVITE of this call carries: the phone that transferred it.
    pub referred_by: Option<String>,
    pub history: Vec<StoredHistoryEntry>,
    pub answered_at_ms: Option<i64>,
    pub codec: Option<String>,
    pub sip_call_id: Option<String>,
    /// The INVITE and its answers, until the call ends.
    pub out: Option<OutboundInvite>,
    /// Once answered: the dialog, whose entry in `Calls` carries the media leg.
    pub dialog: Option<DialogId>,
    pub armed: Option<Instant>,
    /// The machine's `Instant`s become wall time through this pair.
    pub epoch: (Instant, i64),
}

impl Controlled {
    /// Whether its INVITE may go again, elsewhere: nothing rang, and nobody hung up.
    pub(super) fn may_try_again(&self) -> bool {
        let out = self.out.as_ref();
        let rang = out.is_some_and(|o| o.rang);
        let cancelled = out.is_some_and(|o| o.cancelled);
        !(rang || cancelled || self.fsm.is_ended() || self.fsm.is_cancelling())
    }

    fn wall_ms(&self, at: Instant) -> i64 {
        let (base, ms) = self.epoch;
        let delta = at.saturating_duration_since(base).as_millis();
        ms.saturating_add(i64::try_from(delta).unwrap_or(0))
    }

    fn progress(&self) -> CallProgress {
        super::call_rows::progress(
            &self.history,
            "CALLING",
            self.sip_call_id.clone(),
            self.codec.clone(),
            self.answered_at_ms,
        )
    }

    pub fn tag(&self) -> super::events::CallTag<'_> {
        super::events::CallTag {
            app_id: &self.app_id,
            call_id: &self.id,
            direction: "outbound",
            webhook_url: self.webhook_url.as_deref(),
        }
    }

    pub fn trunk_id(&self) -> Option<&str> {
        match &self.target {
            DialTarget::Trunk(t) => Some(&t.id),
            _ => None,
        }
    }
}

/// The calls under control and their indexes.
#[derive(Default)]
pub(crate) struct Controls {
    pub by_id: HashMap<String, Controlled>,
    pub by_leg: HashMap<LegId, String>,
    /// INVITE client transactions, to their call.
    pub invites: HashMap<ClientTxnId, String>,
    /// CANCELs in flight: their answers need nothing but matching.
    pub cancels: HashSet<ClientTxnId>,
    /// PRACKs in flight (RFC 3262): their answers need nothing but matching.
    pub pracks: HashSet<ClientTxnId>,
    /// REFERs in flight, to their call.
    pub refers: HashMap<ClientTxnId, String>,
    pub by_dialog: HashMap<DialogId, String>,
    timers: BTreeSet<(Instant, String)>,
    /// Legs of calls already forgotten (dialled out, or inbound with a row) whose last
    /// statistics are still to come, by the id of the call's row.
    pub ended_legs: HashMap<LegId, (String, Instant)>,
}

/// Why keys are not sent to a phone that holds the call: it takes no media now.
pub(super) const KEYS_HELD: &str =
    "the phone holds the call (it takes no media now): send the keys once it resumes";

impl Core {
    /// Whether the phone of `dialog` holds the call (its SDP says it takes no media), so keys
    /// pressed now would go nowhere.
    pub(super) fn keys_held(&self, dialog: Option<&DialogId>) -> bool {
        dialog
            .and_then(|d| self.calls.by_dialog.get(d))
            .and_then(|c| c.sdp.negotiated())
            .is_some_and(|n| !n.may_send())
    }
}

impl Controls {
    /// Remembers an ended call's leg until its statistics come (`on_leg_ended`). Bounded:
    /// entries older than a minute (a leg that never started) are pruned.
    pub fn leg_ended(&mut self, now: Instant, leg: LegId, call: &str) {
        self.ended_legs
            .retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        self.ended_legs.insert(leg, (call.to_owned(), now));
    }
}

impl Controls {
    /// The INVITE of dial-out `id` and its answers, while it has one.
    pub fn out(&self, id: &str) -> Option<&OutboundInvite> {
        self.by_id.get(id).and_then(|c| c.out.as_ref())
    }

    pub fn out_mut(&mut self, id: &str) -> Option<&mut OutboundInvite> {
        self.by_id.get_mut(id).and_then(|c| c.out.as_mut())
    }

    /// The dialog of dial-out `id`, once it has one.
    pub fn dialog_of(&self, id: &str) -> Option<&DialogId> {
        self.by_id.get(id).and_then(|c| c.dialog.as_ref())
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Calls through `trunk` that have not ended.
    pub fn active_on_trunk(&self, trunk: &str) -> usize {
        self.by_id
            .values()
            .filter(|c| c.trunk_id() == Some(trunk) && c.out.is_some())
            .count()
    }
}

fn digit(d: sipx_call::Digit) -> Option<DtmfDigit> {
    DtmfDigit::from_char(d.as_char())
}

impl Core {
    pub(super) fn on_call_command(&mut self, now: Instant, cmd: CallCommand, reply: Reply) {
        let result = match cmd {
            CallCommand::Dial(spec) => {
                self.start_dial(now, *spec);
                Ok(())
            }
            CallCommand::Hangup { app_id, id } if !self.controls.by_id.contains_key(&id) => {
                self.inbound_hangup(now, &app_id, &id)
            }
            CallCommand::Dtmf { app_id, id, digits } if !self.controls.by_id.contains_key(&id) => {
                self.inbound_dtmf(now, &app_id, &id, &digits)
            }
            CallCommand::Mute { app_id, id, muted } if !self.controls.by_id.contains_key(&id) => {
                self.inbound_mute(&app_id, &id, muted)
            }
            CallCommand::Hangup { app_id, id } => self
                .controlled(&app_id, &id)
                .map(|c| c.fsm.hangup(now))
                .map(|()| self.drive(now, &id)),
            CallCommand::Dtmf { app_id, id, digits } => match (
                self.keys_held(self.controls.dialog_of(&id)),
                self.controlled(&app_id, &id),
            ) {
                (true, Ok(_)) => Err(CallCommandError::Conflict(KEYS_HELD.to_owned())),
                (false, Ok(c)) => c
                    .fsm
                    .send_dtmf(now, &digits)
                    .map_err(|e| CallCommandError::Conflict(e.to_string())),
                (_, Err(e)) => Err(e),
            }
            .map(|()| self.drive(now, &id)),
            CallCommand::Mute { app_id, id, muted } => match self.controlled(&app_id, &id) {
                Ok(c) => c
                    .fsm
                    .set_muted(now, muted)
                    .map_err(|e| CallCommandError::Conflict(e.to_string())),
                Err(e) => Err(e),
            }
            .map(|()| self.drive(now, &id)),
            CallCommand::Transfer { app_id, id, target } => {
                self.start_transfer(now, &app_id, &id, &target)
            }
        };
        let _ = reply.send(result);
    }

    /// A recorded dial-out that is not placed after all (its room let the referring phone go,
    /// or SIPx is stopping): its row ends at once, `DISCONNECTED` with `code`, `reason`, `cause`.
    pub(super) fn end_unplaced(&self, spec: &DialSpec, code: u16, reason: &str, cause: &str) {
        let history = unplaced_history(spec.created.1, code, reason, cause);
        let progress = super::call_rows::progress(&history, "CALLING", None, None, None);
        self.rows
            .write(RowWrite::Update(spec.id.clone(), Box::new(progress)));
    }

    fn controlled(&mut self, app_id: &str, id: &str) -> Result<&mut Controlled, CallCommandError> {
        match self.controls.by_id.get_mut(id) {
            Some(c) if c.app_id == app_id => Ok(c),
            // Ended calls are no longer in memory: the store says they ended.
            _ => Err(CallCommandError::Conflict("the call has ended".to_owned())),
        }
    }

    pub(super) fn start_dial(&mut self, now: Instant, spec: DialSpec) {
        if self.closing_deadline().is_some() {
            // Recorded while SIPx stops: not placed.
            tracing::info!(call = %spec.id, "dial-out not placed: SIPx is stopping");
            return self.end_unplaced(&spec, 503, sipx_call::SHUTTING_DOWN, "local_hangup");
        }
        let Some(engine) = self.media.clone() else {
            tracing::error!(call = %spec.id, "no media engine: the call cannot start");
            return self.end_unplaced(&spec, 500, "No media engine", "local_hangup");
        };
        let room = RoomKey::new(spec.app_id.clone(), spec.params.room.room.clone());
        // On the media thread of the room's other phones (`MediaEngine::new_leg_id_near`).
        let leg = engine.new_leg_id_near(&room);
        let notify = match &self.rooms {
            Some(r) => r.notifier(),
            None => Arc::new(|| {}),
        };
        let identity = spec.params.room.identity.clone();
        // The call began when the API recorded it (its `CALLING`), not when the core took it.
        let began = spec.created.0.min(now);
        let fsm = sipx_call::Call::dial_out(
            began,
            spec.params,
            sipx_call::CallConfig {
                end_guard: 64 * self.endpoint.config().t1,
                ..sipx_call::CallConfig::default()
            },
        );
        let c = Controlled {
            id: spec.id.clone(),
            app_id: spec.app_id,
            fsm,
            leg,
            link: PhoneLink::new(notify),
            room,
            identity,
            participant: None,
            left_room: false,
            target: spec.target,
            fallbacks: spec.fallbacks.into(),
            tried: Vec::new(),
            invite: None,
            srtp: spec.srtp,
            withhold_caller_id: spec.withhold_caller_id,
            webhook_url: spec.webhook_url,
            replaces: spec.replaces,
            referred_by: spec.referred_by,
            history: Vec::new(),
            answered_at_ms: None,
            codec: None,
            sip_call_id: None,
            out: None,
            dialog: None,
            armed: None,
            epoch: spec.created,
        };
        tracing::info!(call = %c.id, app_id = %c.app_id, room = %c.room, own_webhook = c.webhook_url.is_some(), "dial-out started");
        self.controls.by_leg.insert(leg, spec.id.clone());
        self.controls.by_id.insert(spec.id.clone(), c);
        metrics::counter!("sipx_calls_started_total", "direction" => "outbound").increment(1);
        self.drive(now, &spec.id);
    }

    /// A dial-out's codec changed by a re-offer: its record names the one in use.
    pub(super) fn set_dial_out_codec(&mut self, leg: LegId, codec: &str) {
        let Some(c) = self
            .controls
            .by_leg
            .get(&leg)
            .and_then(|id| self.controls.by_id.get_mut(id))
        else {
            return;
        };
        if c.codec.as_deref() == Some(codec) {
            return; // a hold, a resume, a session refresh: nothing to write
        }
        c.codec = Some(codec.to_owned());
        self.rows
            .write(RowWrite::Update(c.id.clone(), Box::new(c.progress())));
    }

    /// Feeds the machine and carries out what it asks until it waits.
    pub(super) fn feed(&mut self, now: Instant, id: &str, input: Input) {
        if let Some(c) = self.controls.by_id.get_mut(id) {
            c.fsm.handle_input(now, input);
            self.drive(now, id);
        }
    }

    /// Runs the outputs of call `id`'s machine; forgets the call once it has ended.
    pub(super) fn drive(&mut self, now: Instant, id: &str) {
        for _ in 0..1024 {
            let Some(c) = self.controls.by_id.get_mut(id) else {
                return;
            };
            match c.fsm.poll_output() {
                Some(Output::Command(cmd)) => self.exec(now, id, cmd),
                Some(Output::Event(e)) => self.emit(now, id, e),
                Some(Output::Timeout(at)) => {
                    self.arm(id, Some(at));
                    break;
                }
                None => {
                    self.arm(id, None);
                    break;
                }
            }
        }
        let Some(c) = self.controls.by_id.get(id) else {
            return;
        };
        if c.fsm.is_ended() {
            return self.forget(now, id);
        }
        // Ending (hung up, ring timeout, room gone, SIPx stopping) while its INVITE has not
        // gone yet (its host being looked up, its trunk's connection being opened): there is
        // nothing to cancel, and the INVITE must never go. It ends as one that could not be sent.
        if c.fsm.is_cancelling() && c.invite.is_some() && c.out.is_none() {
            self.feed_later(id, Input::Sip(SipInput::TransportError));
        }
    }

    fn arm(&mut self, id: &str, at: Option<Instant>) {
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return;
        };
        if c.armed == at {
            return;
        }
        if let Some(old) = c.armed.take() {
            self.controls.timers.remove(&(old, id.to_owned()));
        }
        if let Some(at) = at {
            c.armed = Some(at);
            self.controls.timers.insert((at, id.to_owned()));
        }
    }

    /// Fires the calls' timers that are due.
    pub(super) fn poll_controls(&mut self, now: Instant) {
        while let Some((at, id)) = self.controls.timers.first().cloned() {
            if at > now {
                break;
            }
            self.controls.timers.remove(&(at, id.clone()));
            if let Some(c) = self.controls.by_id.get_mut(&id) {
                c.armed = None;
                c.fsm.handle_timeout(now);
            }
            self.drive(now, &id);
        }
    }

    fn exec(&mut self, now: Instant, id: &str, cmd: Command) {
        match cmd {
            Command::JoinRoom(target) => self.join_room(id, target),
            Command::LeaveRoom => self.leave_room(id),
            Command::SetMuted(muted) => self.mute_in_room(id, muted),
            Command::SendInvite(invite) => self.send_invite(now, id, invite),
            Command::SendCancel => self.send_cancel(now, id),
            Command::SendBye => {
                let Some(c) = self.controls.by_id.get(id) else {
                    return;
                };
                // The BYE's Reason says what the call's end says (RFC 3326): its code and
                // text, e.g. `200 "Media timeout"`, `488 "Incompatible media format"`.
                let (cause, text) = c
                    .fsm
                    .history()
                    .last()
                    .filter(|s| s.kind == sipx_call::CallStateKind::Disconnected)
                    .map_or((200, "Call ended".to_owned()), |s| {
                        (s.code, s.reason.clone())
                    });
                // No dialog: nothing answered, so there is nothing to end.
                if let Some(d) = c.dialog.clone() {
                    self.send_bye_saying(now, &d, cause, &text);
                }
            }
            // Dial-outs do not answer or reject: inbound calls do, and they are not
            // controlled here yet.
            Command::Answer | Command::Reject { .. } => {}
            Command::StartMedia => self.start_dial_media(id),
            Command::SetMediaMode(mode) => self.set_dial_media_mode(id, mode),
            Command::StopMedia => {
                if let (Some(engine), Some(c)) = (&self.media, self.controls.by_id.get(id)) {
                    engine.remove_leg(c.leg);
                }
            }
            Command::SendDtmf { digit: d, duration } => {
                if let (Some(engine), Some(c), Some(d)) =
                    (&self.media, self.controls.by_id.get(id), digit(d))
                {
                    engine.send_dtmf(c.leg, d, duration);
                }
            }
        }
    }

    fn join_room(&mut self, id: &str, target: sipx_call::RoomTarget) {
        let Some(c) = self.controls.by_id.get(id) else {
            return;
        };
        let Some(rooms) = self.rooms.clone() else {
            let input = Input::Room(RoomInput::Failed {
                why: "the built-in rooms are disabled".to_owned(),
            });
            let id = id.to_owned();
            let inputs = self.inputs.clone();
            // Fed on the next turn: the machine is being driven right now.
            tokio::spawn(async move {
                let _ = inputs.send(super::CoreInput::CallInput { id, input }).await;
            });
            return;
        };
        let join = JoinRequest {
            room: c.room.clone(),
            identity: target.identity,
            name: target.name,
            can_publish: true,
            can_subscribe: true,
            call_id: Some(c.id.clone()),
            wall: crate::unix_now(),
        };
        let (link, leg, inputs) = (c.link.clone(), c.leg, self.inputs.clone());
        tokio::spawn(async move {
            let result = rooms.join_phone(join, link).await;
            let _ = inputs
                .send(super::CoreInput::RoomJoined { leg, result })
                .await;
        });
    }

    /// The rooms answered a controlled call's join; `false` when `leg` is not one.
    pub(super) fn on_controlled_join(
        &mut self,
        now: Instant,
        leg: LegId,
        result: &Result<ParticipantId, sipx_rooms::RoomError>,
    ) -> bool {
        let Some(id) = self.controls.by_leg.get(&leg).cloned() else {
            return false;
        };
        let Some(c) = self.controls.by_id.get_mut(&id) else {
            return true;
        };
        let input = match result {
            Ok(p) if c.left_room => {
                if let Some(rooms) = &self.rooms {
                    rooms.phone_hung_up(*p);
                }
                return true;
            }
            Ok(p) => {
                c.participant = Some(*p);
                // The room hears of later states as they come; this one came before it joined.
                let now_state = c
                    .history
                    .last()
                    .and_then(|e| sipx_call::CallStateKind::from_name(&e.state));
                if let (Some(rooms), Some(state)) = (&self.rooms, now_state) {
                    rooms.set_call_state(*p, state.as_str());
                }
                Input::Room(RoomInput::Joined {
                    participant: p.0.to_string(),
                })
            }
            Err(e) => Input::Room(RoomInput::Failed { why: e.to_string() }),
        };
        self.feed(now, &id, input);
        true
    }

    fn leave_room(&mut self, id: &str) {
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return;
        };
        c.left_room = true;
        c.link.close();
        if let (Some(rooms), Some(p)) = (&self.rooms, c.participant.take()) {
            rooms.phone_hung_up(p);
        }
    }

    fn mute_in_room(&self, id: &str, muted: bool) {
        let (Some(rooms), Some(c)) = (self.rooms.clone(), self.controls.by_id.get(id)) else {
            return;
        };
        let (app, room) = (c.app_id.clone(), c.room.name.clone());
        let identity = c.identity.clone();
        tokio::spawn(async move {
            use sipx_api::room_service::RoomService;
            if let Err(e) = rooms.mute(app, room, identity, muted).await {
                tracing::info!(error = %e, "mute not applied in the room");
            }
        });
    }

    fn start_dial_media(&mut self, id: &str) {
        let Some(engine) = self.media.clone() else {
            return;
        };
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return;
        };
        // Before the answer the offer's session is the call's own (early media); after it,
        // it belongs to the dialog's entry.
        let (negotiated, ports, call_id) = match &c.dialog {
            Some(d) => {
                let Some(call) = self.calls.by_dialog.get_mut(d) else {
                    return;
                };
                (
                    call.sdp.negotiated().cloned(),
                    call.ports.take(),
                    d.call_id.clone(),
                )
            }
            None => {
                let Some(out) = c.out.as_mut() else {
                    return;
                };
                (
                    out.sdp.as_ref().and_then(|s| s.negotiated().cloned()),
                    out.ports.take(),
                    out.call_id.clone(),
                )
            }
        };
        let (Some(negotiated), Some(ports)) = (negotiated, ports) else {
            return;
        };
        c.codec = Some(negotiated.codec.name.to_owned());
        let leg = c.leg;
        super::calls::log_negotiation(&call_id, &negotiated);
        self.start_leg(&engine, leg, ports, &negotiated, &call_id, LegMode::Silence);
    }

    fn set_dial_media_mode(&mut self, id: &str, mode: MediaMode) {
        let (Some(engine), Some(c)) = (&self.media, self.controls.by_id.get(id)) else {
            return;
        };
        // Early media too goes to the room through the link; the phone then hears the room
        // early, which no ringing phone minds.
        let _ = mode;
        engine.set_mode(c.leg, LegMode::Room(c.link.clone()));
    }

    fn emit(&mut self, now: Instant, id: &str, event: Event) {
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return;
        };
        match event {
            Event::StateChanged(s) => {
                let at_ms = c.wall_ms(s.at);
                if matches!(
                    s.kind,
                    sipx_call::CallStateKind::Connecting | sipx_call::CallStateKind::Confirmed
                ) && c.answered_at_ms.is_none()
                {
                    c.answered_at_ms = Some(at_ms);
                }
                c.history.push(StoredHistoryEntry {
                    state: s.kind.as_str().to_owned(),
                    at_ms,
                    code: s.code,
                    reason: s.reason.clone(),
                    cause: s.cause.map(|x| x.as_str().to_owned()),
                });
                tracing::info!(
                    call = %c.id,
                    state = s.kind.as_str(),
                    code = s.code,
                    reason = %s.reason,
                    cause = s.cause.map(|x| x.as_str()),
                    "call state"
                );
                if let (Some(rooms), Some(p)) = (&self.rooms, c.participant) {
                    rooms.set_call_state(p, s.kind.as_str());
                }
                self.rows
                    .write(RowWrite::Update(c.id.clone(), Box::new(c.progress())));
                if let Some(entry) = c.history.last() {
                    self.rows.publish(c.tag().state(entry, c.history.len() - 1));
                }
                self.on_referred_state(now, id, s.kind, s.code);
            }
            Event::DtmfReceived { digit, at } => {
                tracing::info!(call = %c.id, digit = %digit.as_char(), "DTMF from the phone");
                self.rows
                    .publish(c.tag().dtmf(digit.as_char(), c.wall_ms(at)));
            }
        }
    }

    /// The call has ended: its SIP, media and room state go.
    fn forget(&mut self, now: Instant, id: &str) {
        let Some(c) = self.controls.by_id.remove(id) else {
            return;
        };
        if let Some(at) = c.armed {
            self.controls.timers.remove(&(at, id.to_owned()));
        }
        self.controls.by_leg.remove(&c.leg);
        self.controls.leg_ended(now, c.leg, id);
        self.controls.invites.retain(|_, v| v != id);
        self.controls.refers.retain(|_, v| v != id);
        self.transfer_party_gone(now, id);
        if let Some(d) = &c.dialog {
            self.controls.by_dialog.remove(d);
            self.forget_dialog(d);
        }
        if let Some(engine) = &self.media {
            engine.remove_leg(c.leg);
        }
        if let (Some(rooms), Some(p)) = (&self.rooms, c.participant) {
            rooms.phone_hung_up(p);
        }
        c.link.close();
        metrics::counter!("sipx_calls_ended_total", "direction" => "outbound").increment(1);
    }

    /// Something a controlled call's media leg reported.
    pub(super) fn on_controlled_media(&mut self, now: Instant, id: &str, event: MediaEvent) {
        let event_leg = event.leg();
        let input = match event {
            MediaEvent::Leg { event, .. } => match event {
                LegEvent::Dtmf(_) | LegEvent::DtmfInBand(_) => {
                    let Some((d, via)) = event.key() else {
                        return;
                    };
                    // The dialled-out call's dialog, once answered, keeps the keys it heard.
                    if let Some(dialog) = self.calls.by_leg.get(&event_leg).cloned()
                        && !self.is_new_press(now, &dialog, d.digit, via)
                    {
                        return;
                    }
                    metrics::counter!("sipx_dtmf_digits_total", "via" => via).increment(1);
                    match sipx_call::Digit::heard(d.digit.as_char()) {
                        Some(digit) => Input::Media(MediaInput::Dtmf { digit }),
                        None => return,
                    }
                }
                LegEvent::MediaTimeout { elsewhere } => {
                    crate::media::leg_notices::timeout_elsewhere(&id, elsewhere);
                    Input::Media(MediaInput::Timeout)
                }
                other => {
                    crate::media::leg_notices::log(&id, &other);
                    return;
                }
            },
            MediaEvent::Failed { reason, .. } => {
                tracing::warn!(call = %id, reason, "media leg failed: hanging up");
                if let Some(c) = self.controls.by_id.get_mut(id) {
                    c.fsm.hangup(now);
                }
                return self.drive(now, id);
            }
            MediaEvent::Stats { .. } | MediaEvent::Ended { .. } => return,
        };
        self.feed(now, id, input);
    }

    /// A controlled call's leg is gone: its last statistics go into the call's record (the
    /// call itself may have ended just before).
    pub(super) fn on_leg_ended(&mut self, leg: LegId, stats: &sipx_media::leg::LegStats) {
        let id = match self.controls.by_leg.get(&leg) {
            Some(id) => id.clone(),
            None => match self.controls.ended_legs.remove(&leg) {
                Some((id, _)) => id,
                None => return,
            },
        };
        let m = &stats.media;
        tracing::info!(
            call = %id,
            packets_received = m.packets_received,
            packets_lost = m.packets_lost,
            jitter_ms = m.jitter_ms,
            mos = stats.mos,
            "call media statistics"
        );
        self.store_leg_stats(id, stats);
    }

    /// A live leg's statistics so far: the call's record shows them while the call lasts.
    /// A leg its call let go of already (ended, transferred) waits for its last ones.
    pub(super) fn on_leg_stats(&mut self, leg: LegId, stats: &sipx_media::leg::LegStats) {
        // A dialled-out call's, else an inbound call's with a row.
        let id = self.controls.by_leg.get(&leg).cloned().or_else(|| {
            let dialog = self.calls.by_leg.get(&leg)?;
            Some(self.calls.by_dialog.get(dialog)?.row.as_ref()?.id.clone())
        });
        if let Some(id) = id {
            self.store_leg_stats(id, stats);
        }
    }

    fn store_leg_stats(&mut self, id: String, stats: &sipx_media::leg::LegStats) {
        let m = &stats.media;
        let stored = StoredMediaStats {
            packets_received: m.packets_received,
            packets_sent: m.packets_sent,
            packets_lost: u64::try_from(m.packets_lost).unwrap_or(0),
            jitter_ms: (m.jitter_ms * 10.0).round() / 10.0,
            rtt_ms: m.rtt_ms.map(|r| (r * 10.0).round() / 10.0),
            // Nothing heard, nothing to score: a call whose media never came has no MOS,
            // rather than the perfect one no loss would give.
            mos: (m.packets_received > 0).then(|| (stats.mos * 100.0).round() / 100.0),
        };
        if let Ok(json) = serde_json::to_string(&stored) {
            self.rows.write(RowWrite::Stats(id, json));
        }
    }

    /// The machine of the call answered on `dialog`, if it is a controlled one.
    pub(super) fn control_of_dialog(&self, dialog: &DialogId) -> Option<String> {
        self.controls.by_dialog.get(dialog).cloned()
    }

    /// The API's id of the call `dialog` belongs to, dialled out or inbound.
    pub(super) fn call_id_of_dialog(&self, dialog: &DialogId) -> Option<String> {
        self.control_of_dialog(dialog).or_else(|| {
            let row = self.calls.by_dialog.get(dialog)?.row.as_ref()?;
            Some(row.id.clone())
        })
    }
}
