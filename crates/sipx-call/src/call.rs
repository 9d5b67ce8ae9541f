//! [`Call`]: one call's state machine, outbound or inbound. See the crate docs for the states
//! and transitions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::dtmf::{DtmfQueue, DtmfSequence, DtmfStep};
use crate::error::CallError;
use crate::io::{
    Command, Event, Input, Invite, MediaInput, MediaMode, Output, RoomInput, SipInput,
};
use crate::params::{CallConfig, DialOut, Inbound};
use crate::reason::{cut, phrase, reason_of};
use crate::state::{CallState, CallStateKind, Direction, End, EndCause};
use crate::timer::{Timer, TimerTable};

/// At most this many `EARLY` entries are recorded: a peer alternating provisional responses
/// cannot grow the history without bound.
const MAX_EARLY: usize = 16;

/// Where the call is. Named for what each phase waits for.
#[derive(Debug)]
enum Phase {
    /// Outbound: `JoinRoom` sent; the INVITE waits for the room (`CALLING`).
    JoiningRoom,
    /// Outbound: INVITE sent, no final response yet (`CALLING`, then `EARLY`).
    AwaitingAnswer { provisional: bool },
    /// Outbound, ended by us before an answer: room left, media stopped; waits for the INVITE's
    /// final response (a 487, or a 2xx that crossed the CANCEL and gets a BYE). The CANCEL waits
    /// for a provisional response if none came yet (RFC 3261 §9.1).
    Cancelling { end: End, cancel_sent: bool },
    /// Inbound: INVITE received, `JoinRoom` sent (`INCOMING`).
    Incoming,
    /// Inbound: 200 sent (`CONNECTING`). A hang-up meanwhile waits for the ACK before its BYE
    /// (RFC 3261 §15).
    AwaitingAck { pending: Option<End> },
    /// Answered (`CONFIRMED`).
    Confirmed,
    /// `DISCONNECTED`: nothing more comes out.
    Ended,
}

/// The phone's participant in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoomLink {
    Joining,
    Joined,
    /// Left, removed or failed.
    Gone,
}

/// What makes a call end from our side (or the room's); the phase decides the code.
#[derive(Debug)]
enum Trigger {
    LocalHangup,
    Transferred,
    RingTimeout,
    RoomRemoved(String),
    RoomFailed(String),
    MaxDuration,
    MediaTimeout,
    SessionExpired,
    /// The phone's answer cannot be used (no common codec, no usable crypto): why.
    AnswerRefused(String),
    /// SIPx is stopping.
    ShuttingDown,
}

/// How a call that SIPx hangs up on its way out ends (its BYE's `Reason` says the same).
pub const SHUTTING_DOWN: &str = "Service shutting down";

/// One call. Feed it inputs with `now`; after each, drain [`Call::poll_output`] until it returns
/// `Output::Timeout` or `None` (nothing to do and no timer: the call has ended or waits for an
/// event). Time never goes backwards inside: an earlier `now` counts as the latest one seen.
#[derive(Debug)]
pub struct Call {
    direction: Direction,
    cfg: CallConfig,
    phase: Phase,
    state: CallStateKind,
    room: RoomLink,
    participant: Option<String>,
    /// A leg was started and not stopped.
    media: bool,
    muted: bool,
    /// An attended transfer is replacing this call's dialog at the phone (RFC 3891): the
    /// phone's BYE then means the transfer went through, not a hang-up.
    replaced: bool,
    /// Outbound: the INVITE to send once the room is joined.
    invite: Option<Invite>,
    early_media: bool,
    max_duration: Option<Duration>,
    answered_at: Option<Instant>,
    dtmf: DtmfQueue,
    timers: TimerTable,
    history: Vec<CallState>,
    out: VecDeque<Output>,
    now: Instant,
}

impl Call {
    /// Starts a dial-out: `CALLING`, join the room; the INVITE goes once the room is joined, so
    /// no phone rings for a room that cannot be joined.
    pub fn dial_out(now: Instant, params: DialOut, cfg: CallConfig) -> Call {
        let mut call = Call::new(now, Direction::Outbound, cfg, params.max_duration);
        call.invite = Some(Invite {
            to: params.to,
            from: params.from,
            route: params.route,
        });
        call.early_media = params.early_media;
        call.dtmf = DtmfQueue::with(&params.dtmf_after_answer);
        call.record(CallStateKind::Calling, 0, String::new(), None);
        call.command(Command::JoinRoom(params.room));
        call.timers
            .set(Timer::Ring, params.ring_timeout.map(|d| now + d));
        call
    }

    /// Takes an INVITE that routing sent to a room: `INCOMING`, join the room; answered once
    /// joined.
    pub fn inbound(now: Instant, params: Inbound, cfg: CallConfig) -> Call {
        let mut call = Call::new(now, Direction::Inbound, cfg, params.max_duration);
        call.record(CallStateKind::Incoming, 0, String::new(), None);
        call.command(Command::JoinRoom(params.room));
        call.timers
            .set(Timer::Ring, params.answer_timeout.map(|d| now + d));
        call
    }

    fn new(now: Instant, direction: Direction, cfg: CallConfig, max: Option<Duration>) -> Call {
        Call {
            direction,
            cfg,
            phase: match direction {
                Direction::Outbound => Phase::JoiningRoom,
                Direction::Inbound => Phase::Incoming,
            },
            state: CallStateKind::Calling,
            room: RoomLink::Joining,
            participant: None,
            media: false,
            muted: false,
            replaced: false,
            invite: None,
            early_media: false,
            max_duration: max,
            answered_at: None,
            dtmf: DtmfQueue::default(),
            timers: TimerTable::default(),
            history: Vec::new(),
            out: VecDeque::new(),
            now,
        }
    }

    // === Queries ===

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The current state (the last entry of the history).
    pub fn state(&self) -> CallStateKind {
        self.state
    }

    /// Every state change, oldest first; the first is `CALLING` or `INCOMING`, and
    /// `DISCONNECTED`, once there, is the last.
    pub fn history(&self) -> &[CallState] {
        &self.history
    }

    pub fn is_ended(&self) -> bool {
        matches!(self.phase, Phase::Ended)
    }

    /// Ending a dial-out that was not answered: its CANCEL goes (or waits for a provisional
    /// answer), and the call ends on the INVITE's final answer or a transport error.
    pub fn is_cancelling(&self) -> bool {
        matches!(self.phase, Phase::Cancelling { .. })
    }

    /// The room's id for the phone's participant, once joined.
    pub fn participant(&self) -> Option<&str> {
        self.participant.as_deref()
    }

    pub fn is_muted(&self) -> bool {
        self.muted
    }

    /// When the 2xx was received (outbound) or sent (inbound).
    pub fn answered_at(&self) -> Option<Instant> {
        self.answered_at
    }

    // === API commands ===

    /// Hangs up in any state: CANCEL before the answer (once a provisional response allows
    /// it), BYE after, a final response to an unanswered inbound INVITE. A second hang-up, or
    /// one after the end, does nothing.
    pub fn hangup(&mut self, now: Instant) {
        self.tick(now);
        self.leave(Trigger::LocalHangup);
    }

    /// SIPx is stopping: a hang-up like [`Call::hangup`], recorded as
    /// `DISCONNECTED <code> Service shutting down` (200 once answered, else 487 outbound or 503
    /// inbound) with cause `local_hangup`.
    pub fn shut_down(&mut self, now: Instant) {
        self.tick(now);
        self.leave(Trigger::ShuttingDown);
    }

    /// SIPx stops and waits no longer for the other side to finish an ending (the answer to a
    /// CANCEL, an ACK before its BYE): the ending is recorded now, as its end guard would.
    pub fn give_up(&mut self, now: Instant) {
        self.tick(now);
        self.timers.set(Timer::EndGuard, None);
        self.end_without_waiting();
    }

    fn end_without_waiting(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::Cancelling { end, .. } => self.finish(end),
            Phase::AwaitingAck { pending: Some(end) } => {
                self.command(Command::SendBye);
                self.finish(end);
            }
            other => self.phase = other,
        }
    }

    /// The phone answered with an SDP answer SIPx cannot use (`why`: the refusal's text): the
    /// call is over at once, with a BYE after the ACK (RFC 3261 §13.2.1), recorded as
    /// `DISCONNECTED 488 <why>` with cause `media_refused`.
    pub fn answer_refused(&mut self, now: Instant, why: &str) {
        self.tick(now);
        self.leave(Trigger::AnswerRefused(why.to_owned()));
    }

    /// The phone took a blind transfer (its NOTIFY said the new call was answered): our side
    /// of the call ends with a BYE, recorded as `DISCONNECTED 200 Transferred`. Before the
    /// answer it is an ordinary hang-up.
    pub fn transferred(&mut self, now: Instant) {
        self.tick(now);
        self.leave(Trigger::Transferred);
    }

    /// Another call's phone was asked to replace this call's dialog (attended transfer, REFER
    /// with `Replaces`): if this phone now hangs up, it is because it was handed over, so the
    /// call ends `DISCONNECTED 200 Transferred`. `false` withdraws it (the transfer failed).
    pub fn set_replaced(&mut self, now: Instant, replaced: bool) {
        self.tick(now);
        self.replaced = replaced;
    }

    /// Queues key presses for the phone, after any still waiting (the dial string after
    /// answer included), paced by [`crate::DtmfTiming`].
    pub fn send_dtmf(&mut self, now: Instant, seq: &DtmfSequence) -> Result<(), CallError> {
        self.tick(now);
        match self.phase {
            Phase::Confirmed | Phase::AwaitingAck { pending: None } => {}
            Phase::Ended | Phase::Cancelling { .. } | Phase::AwaitingAck { pending: Some(_) } => {
                return Err(CallError::Ended);
            }
            Phase::JoiningRoom | Phase::AwaitingAnswer { .. } | Phase::Incoming => {
                return Err(CallError::NotAnswered);
            }
        }
        self.dtmf.push(seq)?;
        self.pace_dtmf();
        Ok(())
    }

    /// Stops (or resumes) the phone's audio into the room. Remembered before the room is
    /// joined and applied then.
    pub fn set_muted(&mut self, now: Instant, muted: bool) -> Result<(), CallError> {
        self.tick(now);
        if self.is_ended() {
            return Err(CallError::Ended);
        }
        if self.muted != muted {
            self.muted = muted;
            if self.room == RoomLink::Joined {
                self.command(Command::SetMuted(muted));
            }
        }
        Ok(())
    }

    // === Events ===

    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.tick(now);
        if self.is_ended() {
            return;
        }
        match input {
            Input::Sip(sip) => self.handle_sip(sip),
            Input::Room(room) => self.handle_room(room),
            Input::Media(media) => self.handle_media(media),
        }
    }

    /// Fires what is due at `now`; an early or repeated call does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let now = self.now;
        if self.timers.take_expired(Timer::EndGuard, now) {
            // The other side never finished the ending: declare it over.
            self.end_without_waiting();
        }
        if self.timers.take_expired(Timer::Ring, now) {
            self.leave(Trigger::RingTimeout);
        }
        if self.timers.take_expired(Timer::MaxDuration, now) {
            self.leave(Trigger::MaxDuration);
        }
        if self.timers.take_expired(Timer::Dtmf, now) {
            self.pace_dtmf();
        }
    }

    /// The next output; `None` when nothing is queued and no timer runs.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(o) = self.out.pop_front() {
            return Some(o);
        }
        self.timers.next().map(Output::Timeout)
    }

    fn handle_sip(&mut self, sip: SipInput) {
        match sip {
            SipInput::Response { code, reason, sdp } => match code {
                100..=199 => self.on_provisional(code, reason, sdp),
                200..=299 => self.on_success(code, reason),
                300..=699 => {
                    let reason = reason_of(code, reason);
                    self.on_failure(End::new(code, reason, EndCause::Rejected));
                }
                // Not SIP (the status is three digits, 1–6 first); final is all it can mean.
                700.. => {
                    let reason = format!("Invalid status code {code}");
                    self.on_failure(End::new(500, reason, EndCause::Rejected));
                }
                // Below 100 is no status code at all: nothing to act on.
                _ => {}
            },
            SipInput::RequestTimeout => {
                self.on_failure(End::new(408, phrase(408), EndCause::Unreachable));
            }
            SipInput::TransportError => {
                self.on_failure(End::new(503, "Service Unavailable", EndCause::Unreachable));
            }
            SipInput::NotSent { code, reason } => {
                let reason = reason_of(code, reason);
                self.on_failure(End::new(code, reason, EndCause::Unreachable));
            }
            SipInput::Bye => self.on_bye(),
            SipInput::SessionExpired => {
                if matches!(
                    self.phase,
                    Phase::Confirmed | Phase::AwaitingAck { pending: None }
                ) {
                    self.leave(Trigger::SessionExpired);
                }
            }
            SipInput::Cancel => {
                if let Phase::Incoming = self.phase {
                    self.command(Command::Reject {
                        code: 487,
                        reason: phrase(487).to_owned(),
                    });
                    self.finish(End::new(487, phrase(487), EndCause::RemoteCancel));
                }
            }
            SipInput::Ack => match std::mem::replace(&mut self.phase, Phase::Ended) {
                Phase::AwaitingAck { pending: None } => {
                    self.phase = Phase::Confirmed;
                    self.record(CallStateKind::Confirmed, 200, "OK".to_owned(), None);
                }
                Phase::AwaitingAck { pending: Some(end) } => {
                    self.command(Command::SendBye);
                    self.finish(end);
                }
                other => self.phase = other,
            },
            SipInput::AckTimeout => match std::mem::replace(&mut self.phase, Phase::Ended) {
                Phase::AwaitingAck { pending } => {
                    self.command(Command::SendBye);
                    let end = pending
                        .unwrap_or_else(|| End::new(408, "ACK timeout", EndCause::AckTimeout));
                    self.finish(end);
                }
                other => self.phase = other,
            },
        }
    }

    fn on_provisional(&mut self, code: u16, reason: String, sdp: bool) {
        match &mut self.phase {
            Phase::AwaitingAnswer { provisional } => *provisional = true,
            Phase::Cancelling { cancel_sent, .. } => {
                // The CANCEL that waited for a provisional response may go now.
                if !std::mem::replace(cancel_sent, true) {
                    self.command(Command::SendCancel);
                }
                return;
            }
            _ => return,
        }
        let reason = reason_of(code, reason);
        let repeated = self.history.last().is_some_and(|s| {
            s.kind == CallStateKind::Early && s.code == code && s.reason == reason
        });
        let early = self
            .history
            .iter()
            .filter(|s| s.kind == CallStateKind::Early);
        // 100 Trying only says the INVITE arrived; the call is still CALLING.
        if code != 100 && !repeated && early.count() < MAX_EARLY {
            self.record(CallStateKind::Early, code, reason, None);
        }
        if sdp && !self.media {
            self.media = true;
            self.command(Command::StartMedia);
            if self.early_media {
                self.command(Command::SetMediaMode(MediaMode::EarlyToRoom));
            }
        }
    }

    fn on_success(&mut self, code: u16, reason: String) {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::AwaitingAnswer { .. } => {
                self.phase = Phase::Confirmed;
                let reason = reason_of(code, reason);
                self.record(CallStateKind::Connecting, code, reason.clone(), None);
                if !self.media {
                    self.media = true;
                    self.command(Command::StartMedia);
                }
                self.command(Command::SetMediaMode(MediaMode::Bridged));
                // The dialog layer has ACKed the 2xx by now: the call is confirmed at once.
                self.record(CallStateKind::Confirmed, code, reason, None);
                self.answered();
            }
            Phase::Cancelling { end, .. } => {
                // The 2xx crossed our CANCEL (or came before a CANCEL could go): the phone
                // did answer, and its network bills from here, so the record says so; the
                // dialog layer ACKs it and our BYE ends it.
                self.record(
                    CallStateKind::Connecting,
                    code,
                    reason_of(code, reason),
                    None,
                );
                self.answered_at = Some(self.now);
                self.command(Command::SendBye);
                let reason = match end.cause {
                    EndCause::LocalHangup if end.reason != SHUTTING_DOWN => {
                        "Normal call clearing".to_owned()
                    }
                    _ => end.reason,
                };
                self.finish(End {
                    code: 200,
                    reason,
                    ..end
                });
            }
            // Retransmissions and 2xx from other forks are the dialog layer's.
            other => self.phase = other,
        }
    }

    /// A final failure of our INVITE (or its timeout).
    fn on_failure(&mut self, failure: End) {
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::AwaitingAnswer { .. } => self.finish(failure),
            // What we ended keeps our reason (the 487 to our CANCEL says nothing new).
            Phase::Cancelling { end, .. } => self.finish(end),
            other => self.phase = other,
        }
    }

    fn on_bye(&mut self) {
        let clearing = match self.replaced {
            true => End::new(200, "Transferred", EndCause::Transferred),
            false => End::new(200, "Normal call clearing", EndCause::RemoteHangup),
        };
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            // A BYE before the 2xx: the 2xx was lost or overtaken; the dialog layer ACKs its
            // retransmission.
            Phase::Confirmed | Phase::AwaitingAnswer { .. } => self.finish(clearing),
            Phase::AwaitingAck { pending } => self.finish(pending.unwrap_or(clearing)),
            Phase::Cancelling { end, .. } => self.finish(end),
            // No dialog exists yet to end.
            other => self.phase = other,
        }
    }

    fn handle_room(&mut self, room: RoomInput) {
        match room {
            RoomInput::Joined { participant } => {
                if self.room != RoomLink::Joining {
                    return;
                }
                self.room = RoomLink::Joined;
                self.participant = Some(participant);
                if self.muted {
                    self.command(Command::SetMuted(true));
                }
                match self.phase {
                    Phase::JoiningRoom => {
                        if let Some(invite) = self.invite.take() {
                            self.phase = Phase::AwaitingAnswer { provisional: false };
                            self.command(Command::SendInvite(invite));
                        }
                    }
                    Phase::Incoming => {
                        self.phase = Phase::AwaitingAck { pending: None };
                        self.command(Command::Answer);
                        self.media = true;
                        self.command(Command::StartMedia);
                        self.command(Command::SetMediaMode(MediaMode::Bridged));
                        self.record(CallStateKind::Connecting, 200, "OK".to_owned(), None);
                        self.answered();
                    }
                    _ => {}
                }
            }
            RoomInput::Removed { why } => self.room_gone(Trigger::RoomRemoved(why)),
            RoomInput::Failed { why } => self.room_gone(Trigger::RoomFailed(why)),
        }
    }

    fn room_gone(&mut self, trigger: Trigger) {
        if self.room == RoomLink::Gone {
            return;
        }
        // Nothing to leave: the room let go first.
        self.room = RoomLink::Gone;
        self.leave(trigger);
    }

    fn handle_media(&mut self, media: MediaInput) {
        match media {
            MediaInput::Dtmf { digit } => {
                let at = self.now;
                self.out
                    .push_back(Output::Event(Event::DtmfReceived { digit, at }));
            }
            MediaInput::Timeout => {
                if matches!(
                    self.phase,
                    Phase::Confirmed | Phase::AwaitingAck { pending: None }
                ) {
                    self.leave(Trigger::MediaTimeout);
                }
            }
        }
    }

    // === Transitions ===

    /// Ends the call from our side in whatever way the phase allows.
    fn leave(&mut self, trigger: Trigger) {
        let end = self.end_of(trigger);
        match std::mem::replace(&mut self.phase, Phase::Ended) {
            Phase::JoiningRoom => self.finish(end),
            Phase::AwaitingAnswer { provisional } => {
                if provisional {
                    self.command(Command::SendCancel);
                }
                self.release();
                self.guard();
                self.phase = Phase::Cancelling {
                    end,
                    cancel_sent: provisional,
                };
            }
            Phase::Incoming => {
                self.command(Command::Reject {
                    code: end.code,
                    reason: phrase(end.code).to_owned(),
                });
                self.finish(end);
            }
            Phase::AwaitingAck { pending: None } => {
                self.release();
                self.guard();
                self.phase = Phase::AwaitingAck { pending: Some(end) };
            }
            Phase::Confirmed => {
                self.command(Command::SendBye);
                self.finish(end);
            }
            // Already ending or over.
            other @ (Phase::Cancelling { .. } | Phase::AwaitingAck { .. } | Phase::Ended) => {
                self.phase = other;
            }
        }
    }

    /// What `DISCONNECTED` will say for an ending we (or the room) start in this phase.
    fn end_of(&self, trigger: Trigger) -> End {
        let answered = matches!(self.phase, Phase::Confirmed | Phase::AwaitingAck { .. });
        let inbound = self.direction == Direction::Inbound;
        // Before an answer the code is the one the caller sees (inbound: our final response).
        let unanswered = |outbound: u16, inbound_code: u16| {
            if answered {
                200
            } else if inbound {
                inbound_code
            } else {
                outbound
            }
        };
        match trigger {
            Trigger::LocalHangup if answered => {
                End::new(200, "Normal call clearing", EndCause::LocalHangup)
            }
            Trigger::Transferred if answered => End::new(200, "Transferred", EndCause::Transferred),
            Trigger::LocalHangup | Trigger::Transferred => {
                let code = unanswered(487, 603);
                End::new(code, phrase(code), EndCause::LocalHangup)
            }
            Trigger::RingTimeout if inbound || matches!(self.phase, Phase::JoiningRoom) => {
                End::new(
                    unanswered(500, 480),
                    "Room join timed out",
                    EndCause::RoomFailed,
                )
            }
            Trigger::RingTimeout => End::new(408, "No answer", EndCause::NoAnswer),
            Trigger::RoomRemoved(why) => End::new(
                unanswered(487, 480),
                cut(format!("Removed from room: {why}")),
                EndCause::RoomRemoved,
            ),
            Trigger::RoomFailed(why) => End::new(
                unanswered(500, 480),
                cut(format!("Room failed: {why}")),
                EndCause::RoomFailed,
            ),
            Trigger::MaxDuration => End::new(200, "Max duration reached", EndCause::MaxDuration),
            Trigger::MediaTimeout => End::new(200, "Media timeout", EndCause::MediaTimeout),
            // As an inbound call's row says it (a 408 of the session, RFC 4028 §10).
            Trigger::SessionExpired => End::new(408, "Session expired", EndCause::SessionExpired),
            Trigger::AnswerRefused(why) => End::new(488, cut(why), EndCause::MediaRefused),
            Trigger::ShuttingDown => {
                End::new(unanswered(487, 503), SHUTTING_DOWN, EndCause::LocalHangup)
            }
        }
    }

    /// Gives up what is ours at once: the room, the media, pending DTMF and the call's timers.
    fn release(&mut self) {
        if self.room != RoomLink::Gone {
            self.room = RoomLink::Gone;
            self.command(Command::LeaveRoom);
        }
        if self.media {
            self.media = false;
            self.command(Command::StopMedia);
        }
        self.dtmf.clear();
        for timer in [Timer::Ring, Timer::MaxDuration, Timer::Dtmf] {
            self.timers.set(timer, None);
        }
    }

    /// Waits `end_guard` at most for the other side to finish an ending.
    fn guard(&mut self) {
        let at = self.now + self.cfg.end_guard;
        self.timers.set(Timer::EndGuard, Some(at));
    }

    /// `DISCONNECTED`: the last output of the call.
    fn finish(&mut self, end: End) {
        self.release();
        self.timers.clear_all();
        self.phase = Phase::Ended;
        self.record(
            CallStateKind::Disconnected,
            end.code,
            end.reason,
            Some(end.cause),
        );
    }

    /// The answer: `max_duration` starts, and the dial string after answer plays.
    fn answered(&mut self) {
        let now = self.now;
        self.answered_at = Some(now);
        self.timers.set(Timer::Ring, None);
        self.timers
            .set(Timer::MaxDuration, self.max_duration.map(|d| now + d));
        self.pace_dtmf();
    }

    /// Sends the DTMF steps due now and arms the timer for the next.
    fn pace_dtmf(&mut self) {
        while let Some(step) = self.dtmf.pop_due(self.now, &self.cfg.dtmf) {
            if let DtmfStep::Digit(digit) = step {
                let duration = self.cfg.dtmf.tone;
                self.command(Command::SendDtmf { digit, duration });
            }
        }
        self.timers.set(Timer::Dtmf, self.dtmf.next_due());
    }

    fn record(&mut self, kind: CallStateKind, code: u16, reason: String, cause: Option<EndCause>) {
        let entry = CallState {
            kind,
            at: self.now,
            code,
            reason,
            cause,
        };
        self.state = kind;
        self.history.push(entry.clone());
        self.out
            .push_back(Output::Event(Event::StateChanged(entry)));
    }

    fn command(&mut self, c: Command) {
        self.out.push_back(Output::Command(c));
    }

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }
}
