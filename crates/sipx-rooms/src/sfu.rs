//! [`Sfu`]: every built-in room served by one rooms thread (one UDP port), sans-IO.
//!
//! Inputs: datagrams, timeouts, signalling messages, phone audio and API commands, each with
//! `now`. Outputs ([`Sfu::poll_output`]): datagrams to send, signalling messages, audio for phone
//! participants, room events, and the next timeout. The rule of str0m holds: after any input,
//! drain `poll_output` until it returns `Output::Timeout`.
//!
//! Forwarding: a browser's packet is routed to its session with `Rtc::accepts` (asked first of
//! the session that last took a datagram from that address, then of every session), its media is
//! written to every other browser that receives the track (never back to the sender) and, when
//! it is Opus audio, handed to every phone participant of the room, whose media thread decodes
//! and mixes it. A phone's voice comes back as Opus and is written to the browsers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid};

use crate::browser::{Browser, BrowserOutput, SessionFailure};
use crate::error::RoomError;
use crate::ids::{ParticipantId, RoomKey, valid_name};
use crate::signal::{ClientMessage, LeaveReason, ServerMessage, Speaker, TrackKind, TrackMapping};
use crate::speaking::SpeakingDetector;
use crate::track::{TrackIn, kind_of};
use crate::view::{ParticipantKind, ParticipantView, RoomView, TrackView};

/// How often speaking states are checked for participants that went quiet on the wire.
const SPEAKING_CHECK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The address browsers send to: the advertised (external) address and the rooms port.
    pub candidate: SocketAddr,
    /// A join to a room that does not exist creates it.
    pub auto_create: bool,
    /// An auto-created room is closed after being empty this long.
    pub empty_room_timeout: Duration,
    pub max_participants: usize,
}

/// Who joins.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub room: RoomKey,
    pub identity: String,
    pub name: String,
    pub can_publish: bool,
    pub can_subscribe: bool,
    /// Set for a phone participant: the call it stands for.
    pub call_id: Option<String>,
    /// Unix seconds, for the views.
    pub wall: u64,
}

#[derive(Debug, Clone)]
pub enum RoomEvent {
    Joined {
        room: RoomKey,
        id: ParticipantId,
        participant: ParticipantView,
    },
    Left {
        room: RoomKey,
        id: ParticipantId,
        identity: String,
        kind: ParticipantKind,
        call_id: Option<String>,
        reason: LeaveReason,
    },
    Closed {
        room: RoomKey,
    },
}

#[derive(Debug)]
pub enum Output {
    Transmit {
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    Signal {
        to: ParticipantId,
        message: ServerMessage,
    },
    /// Opus audio of `source` for the phone participant `to`.
    ToPhone {
        to: ParticipantId,
        source: ParticipantId,
        seq: u64,
        rtp_time: u64,
        payload: Arc<[u8]>,
    },
    /// `source` left: the phone `to` can drop its decoder.
    SourceGone {
        to: ParticipantId,
        source: ParticipantId,
    },
    /// Who hears the phone participant `phone` now (`sfu/audience.rs`), in no order; empty
    /// when nobody does (alone, or muted): its voice then need not be encoded.
    PhoneHeard {
        phone: ParticipantId,
        heard_by: Vec<ParticipantId>,
    },
    /// The packet loss, in percent, the phone's Opus FEC should be sized for: the worst its
    /// browser listeners report (`sfu/listener_loss.rs`); told when it changes.
    PhoneLoss {
        phone: ParticipantId,
        percent: u8,
    },
    Event(RoomEvent),
    Timeout(Instant),
}

enum Role {
    Browser(Box<Browser>),
    Phone,
}

struct Participant {
    room: RoomKey,
    identity: String,
    name: String,
    can_publish: bool,
    can_subscribe: bool,
    call_id: Option<String>,
    call_state: Option<String>,
    /// Muted by itself (its own `mute` message).
    self_muted: bool,
    video_muted: bool,
    /// Muted through the API: its audio is not forwarded.
    muted: bool,
    joined_at: u64,
    speaking: SpeakingDetector,
    role: Role,
    /// A phone's audience, as last told (`Output::PhoneHeard`).
    heard: Option<Vec<ParticipantId>>,
}

impl Participant {
    fn kind(&self) -> ParticipantKind {
        match self.role {
            Role::Browser(_) => ParticipantKind::Browser,
            Role::Phone => ParticipantKind::Phone,
        }
    }

    fn audio_muted(&self) -> bool {
        self.muted || self.self_muted
    }

    fn view(&self) -> ParticipantView {
        let tracks = match &self.role {
            // A browser that may not publish sends nothing anyone receives: no tracks to show.
            Role::Browser(_) if !self.can_publish => Vec::new(),
            Role::Browser(b) => b
                .tracks_in
                .iter()
                .map(|t| TrackView {
                    kind: kind_of(t.kind),
                    muted: match t.kind {
                        MediaKind::Audio => self.audio_muted(),
                        MediaKind::Video => self.video_muted,
                    },
                })
                .collect(),
            Role::Phone => vec![TrackView {
                kind: TrackKind::Audio,
                muted: self.audio_muted(),
            }],
        };
        ParticipantView {
            identity: self.identity.clone(),
            name: self.name.clone(),
            kind: self.kind(),
            tracks,
            muted: self.audio_muted(),
            speaking: self.speaking.speaking(),
            call_id: self.call_id.clone(),
            call_state: self.call_state.clone(),
            joined_at: self.joined_at,
        }
    }

    /// What it publishes, as seen by subscribers.
    fn published(&self, id: ParticipantId) -> Vec<TrackIn> {
        if !self.can_publish {
            return Vec::new();
        }
        match &self.role {
            Role::Browser(b) => b.tracks_in.clone(),
            Role::Phone => vec![TrackIn {
                origin: id,
                mid: None,
                kind: MediaKind::Audio,
            }],
        }
    }
}

/// One published packet on its way to a room's subscribers.
struct Fanout<'a> {
    source: TrackIn,
    /// The publisher's codec parameters (a browser's); `None`: Opus (a phone's).
    params: Option<str0m::format::PayloadParams>,
    wallclock: Instant,
    time: MediaTime,
    payload: &'a Arc<[u8]>,
    /// RFC 6464 level as str0m writes it (negative dBov).
    rtp_level: Option<i8>,
    /// Opus audio for phones: (extended seq, RTP time at 48 kHz); `None`: not for phones.
    to_phones: Option<(u64, u64)>,
}

struct Room {
    created_at: u64,
    auto_created: bool,
    /// In join order.
    members: Vec<ParticipantId>,
    empty_since: Option<Instant>,
    /// The speakers last announced.
    speakers: Vec<ParticipantId>,
}

pub struct Sfu {
    cfg: SfuConfig,
    rooms: BTreeMap<RoomKey, Room>,
    participants: HashMap<ParticipantId, Participant>,
    next_id: u64,
    out: VecDeque<Output>,
    /// Reused per input.
    scratch: Vec<BrowserOutput>,
    next_speaking_check: Instant,
    /// The session that last took a datagram from each source address, at most one address per
    /// participant: a browser sends from its nominated candidate, so its datagrams are offered
    /// to that session first instead of to every session in turn.
    routes: HashMap<SocketAddr, ParticipantId>,
    /// The loss browsers report on the phones' voices.
    listener_loss: listener_loss::ListenerLoss,
    loss_reports: u64,
}

impl Sfu {
    pub fn new(cfg: SfuConfig, now: Instant) -> Sfu {
        Sfu {
            cfg,
            rooms: BTreeMap::new(),
            participants: HashMap::new(),
            next_id: 1,
            out: VecDeque::new(),
            scratch: Vec::new(),
            next_speaking_check: now + SPEAKING_CHECK,
            routes: HashMap::new(),
            listener_loss: listener_loss::ListenerLoss::default(),
            loss_reports: 0,
        }
    }

    // ---- rooms ----

    pub fn create_room(
        &mut self,
        now: Instant,
        key: RoomKey,
        wall: u64,
    ) -> Result<RoomView, RoomError> {
        if !valid_name(&key.name) {
            return Err(RoomError::InvalidName);
        }
        if self.rooms.contains_key(&key) {
            return Err(RoomError::AlreadyExists);
        }
        self.rooms.insert(
            key.clone(),
            Room {
                created_at: wall,
                auto_created: false,
                members: Vec::new(),
                empty_since: Some(now),
                speakers: Vec::new(),
            },
        );
        self.room(&key).ok_or(RoomError::NotFound)
    }

    pub fn room(&self, key: &RoomKey) -> Option<RoomView> {
        let room = self.rooms.get(key)?;
        Some(RoomView {
            name: key.name.clone(),
            created_at: room.created_at,
            auto_created: room.auto_created,
            participants: room
                .members
                .iter()
                .filter_map(|id| self.participants.get(id))
                .map(Participant::view)
                .collect(),
        })
    }

    /// An application's rooms, by name.
    pub fn rooms_of(&self, app: &str) -> Vec<RoomView> {
        self.rooms
            .keys()
            .filter(|k| k.app == app)
            .filter_map(|k| self.room(k))
            .collect()
    }

    pub fn close_room(&mut self, now: Instant, key: &RoomKey) -> Result<(), RoomError> {
        let room = self.rooms.get(key).ok_or(RoomError::NotFound)?;
        for id in room.members.clone() {
            self.remove(now, id, LeaveReason::RoomClosed);
        }
        self.rooms.remove(key);
        self.out
            .push_back(Output::Event(RoomEvent::Closed { room: key.clone() }));
        Ok(())
    }

    // ---- participants ----

    /// A browser (no `call_id`) or a phone participant joins. A browser of the same identity
    /// replaces the one in the room (the same person reconnecting); a phone never replaces
    /// anyone, nor is replaced (`RoomError::IdentityTaken`).
    pub fn join(&mut self, now: Instant, req: JoinRequest) -> Result<ParticipantId, RoomError> {
        if !valid_name(&req.room.name) || !valid_name(&req.identity) {
            return Err(RoomError::InvalidName);
        }
        if !self.rooms.contains_key(&req.room) {
            if !self.cfg.auto_create {
                return Err(RoomError::NotFound);
            }
            self.rooms.insert(
                req.room.clone(),
                Room {
                    created_at: req.wall,
                    auto_created: true,
                    members: Vec::new(),
                    empty_since: None,
                    speakers: Vec::new(),
                },
            );
        }
        if let Some(old) = self.find(&req.room, &req.identity) {
            let old_is_browser = self
                .participants
                .get(&old)
                .is_some_and(|p| matches!(p.role, Role::Browser(_)));
            if !old_is_browser || req.call_id.is_some() {
                return Err(RoomError::IdentityTaken);
            }
            self.remove(now, old, LeaveReason::Replaced);
        }
        let members = self.rooms.get(&req.room).map_or(0, |r| r.members.len());
        if members >= self.cfg.max_participants {
            return Err(RoomError::Full);
        }
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let role = match req.call_id {
            Some(_) => Role::Phone,
            None => Role::Browser(Box::new(
                Browser::new(id, now, self.cfg.candidate).map_err(RoomError::Internal)?,
            )),
        };
        let participant = Participant {
            room: req.room.clone(),
            identity: req.identity,
            name: req.name,
            can_publish: req.can_publish,
            can_subscribe: req.can_subscribe,
            call_id: req.call_id,
            call_state: None,
            self_muted: false,
            video_muted: false,
            muted: false,
            joined_at: req.wall,
            speaking: SpeakingDetector::default(),
            role,
            heard: None,
        };
        let view = participant.view();
        let is_browser = matches!(participant.role, Role::Browser(_));
        let published = participant.published(id);
        self.participants.insert(id, participant);
        let Some(room) = self.rooms.get_mut(&req.room) else {
            return Err(RoomError::NotFound);
        };
        room.members.push(id);
        room.empty_since = None;
        let others: Vec<ParticipantId> =
            room.members.iter().copied().filter(|m| *m != id).collect();

        if is_browser {
            let participants = others
                .iter()
                .filter_map(|o| self.participants.get(o))
                .map(Participant::view)
                .collect();
            self.signal(
                id,
                ServerMessage::Welcome {
                    room: req.room.name.clone(),
                    participant: view.clone(),
                    participants,
                },
            );
            // Everything already published in the room.
            let existing: Vec<TrackIn> = others
                .iter()
                .filter_map(|o| self.participants.get(o).map(|p| p.published(*o)))
                .flatten()
                .collect();
            let subscribes = self.participants.get(&id).is_some_and(|p| p.can_subscribe);
            if let (true, Some(b)) = (subscribes, self.browser_mut(id)) {
                for t in existing {
                    b.subscribe(t);
                }
            }
        }
        for o in &others {
            self.signal(
                *o,
                ServerMessage::ParticipantJoined {
                    participant: view.clone(),
                },
            );
        }
        for t in published {
            self.publish(t);
        }
        for o in others.iter().copied().chain([id]) {
            self.negotiate(o);
        }
        self.update_audience(&req.room);
        self.out.push_back(Output::Event(RoomEvent::Joined {
            room: req.room,
            id,
            participant: view,
        }));
        Ok(id)
    }

    fn find(&self, room: &RoomKey, identity: &str) -> Option<ParticipantId> {
        self.rooms.get(room)?.members.iter().copied().find(|id| {
            self.participants
                .get(id)
                .is_some_and(|p| p.identity == identity)
        })
    }

    pub fn participant_id(&self, room: &RoomKey, identity: &str) -> Option<ParticipantId> {
        self.find(room, identity)
    }

    /// The participant leaves (it said so, its socket closed, its call ended, the API removed
    /// it). Unknown ids are ignored: leaving twice is harmless.
    pub fn leave(&mut self, now: Instant, id: ParticipantId, reason: LeaveReason) {
        self.remove(now, id, reason);
    }

    pub fn remove_participant(
        &mut self,
        now: Instant,
        room: &RoomKey,
        identity: &str,
    ) -> Result<(), RoomError> {
        let id = self
            .find(room, identity)
            .ok_or(RoomError::ParticipantNotFound)?;
        self.remove(now, id, LeaveReason::Removed);
        Ok(())
    }

    /// Mutes (or unmutes) a participant's audio for everyone.
    pub fn set_muted(
        &mut self,
        room: &RoomKey,
        identity: &str,
        muted: bool,
    ) -> Result<ParticipantView, RoomError> {
        let id = self
            .find(room, identity)
            .ok_or(RoomError::ParticipantNotFound)?;
        if let Some(p) = self.participants.get_mut(&id) {
            p.muted = muted;
        }
        self.announce_update(id);
        self.update_audience(room);
        self.participants
            .get(&id)
            .map(Participant::view)
            .ok_or(RoomError::ParticipantNotFound)
    }

    /// The state of a phone participant's call, shown to the room.
    pub fn set_call_state(&mut self, id: ParticipantId, state: &str) {
        if let Some(p) = self.participants.get_mut(&id) {
            p.call_state = Some(state.to_owned());
            self.announce_update(id);
        }
    }

    fn remove(&mut self, now: Instant, id: ParticipantId, reason: LeaveReason) {
        let Some(mut p) = self.participants.remove(&id) else {
            return;
        };
        self.routes.retain(|_, owner| *owner != id);
        if let Role::Browser(b) = &mut p.role {
            b.close();
            self.out.push_back(Output::Signal {
                to: id,
                message: ServerMessage::Closed { reason },
            });
        }
        let kind = p.kind();
        let mut others = Vec::new();
        if let Some(room) = self.rooms.get_mut(&p.room) {
            room.members.retain(|m| *m != id);
            room.speakers.retain(|m| *m != id);
            if room.members.is_empty() {
                room.empty_since = Some(now);
            }
            others = room.members.clone();
        }
        for o in &others {
            self.signal(
                *o,
                ServerMessage::ParticipantLeft {
                    identity: p.identity.clone(),
                    reason,
                },
            );
            match self.participants.get_mut(o).map(|q| &mut q.role) {
                Some(Role::Browser(b)) => b.unsubscribe_origin(id),
                Some(Role::Phone) => self
                    .out
                    .push_back(Output::SourceGone { to: *o, source: id }),
                None => {}
            }
            self.negotiate(*o);
        }
        self.update_audience(&p.room);
        for (phone, percent) in self.listener_loss.forget(id) {
            self.out.push_back(Output::PhoneLoss { phone, percent });
        }
        tracing::info!(room = %p.room, identity = p.identity, reason = reason.as_str(), "participant left");
        self.out.push_back(Output::Event(RoomEvent::Left {
            room: p.room,
            id,
            identity: p.identity,
            kind,
            call_id: p.call_id,
            reason,
        }));
    }

    // ---- signalling ----

    /// A text frame from a browser's signalling socket.
    pub fn handle_signal(&mut self, now: Instant, id: ParticipantId, text: &str) {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(m) => m,
            Err(e) => {
                self.signal(
                    id,
                    ServerMessage::Error {
                        code: "bad_message",
                        message: format!("not a signalling message: {e}"),
                    },
                );
                return;
            }
        };
        match message {
            ClientMessage::Offer { sdp } => {
                let result = self.browser_mut(id).map(|b| b.accept_offer(&sdp));
                match result {
                    Some(Ok(answer)) => {
                        self.signal(id, ServerMessage::Answer { sdp: answer });
                        self.drive(now, id);
                    }
                    Some(Err(message)) => self.signal(
                        id,
                        ServerMessage::Error {
                            code: "offer_refused",
                            message,
                        },
                    ),
                    None => {}
                }
                self.negotiate(id);
            }
            ClientMessage::Answer { sdp } => {
                let result = self.browser_mut(id).map(|b| b.accept_answer(&sdp));
                match result {
                    Some(Ok(opened)) => {
                        for source in opened {
                            self.keyframe_for_new_subscriber(now, source);
                        }
                        self.drive(now, id);
                    }
                    Some(Err(message)) => self.signal(
                        id,
                        ServerMessage::Error {
                            code: "answer_refused",
                            message,
                        },
                    ),
                    None => {}
                }
                self.negotiate(id);
            }
            ClientMessage::Mute { kind, muted } => {
                if let Some(p) = self.participants.get_mut(&id) {
                    match kind {
                        TrackKind::Audio => p.self_muted = muted,
                        TrackKind::Video => p.video_muted = muted,
                    }
                    self.announce_update(id);
                }
            }
            ClientMessage::Leave => self.remove(now, id, LeaveReason::Left),
            ClientMessage::Ping => self.signal(id, ServerMessage::Pong),
        }
    }

    fn signal(&mut self, to: ParticipantId, message: ServerMessage) {
        if matches!(
            self.participants.get(&to).map(|p| &p.role),
            Some(Role::Browser(_))
        ) {
            self.out.push_back(Output::Signal { to, message });
        }
    }

    fn announce_update(&mut self, id: ParticipantId) {
        let Some(p) = self.participants.get(&id) else {
            return;
        };
        let view = p.view();
        let members = self
            .rooms
            .get(&p.room)
            .map(|r| r.members.clone())
            .unwrap_or_default();
        for m in members {
            self.signal(
                m,
                ServerMessage::ParticipantUpdated {
                    participant: view.clone(),
                },
            );
        }
    }

    /// Offers the browser what it should receive, when it can be offered now.
    fn negotiate(&mut self, id: ParticipantId) {
        let Some(offer) = self.browser_mut(id).and_then(|b| b.offer_if_needed()) else {
            return;
        };
        let mapping = self.track_mapping(id);
        self.signal(id, ServerMessage::Tracks { tracks: mapping });
        self.signal(id, ServerMessage::Offer { sdp: offer });
    }

    fn track_mapping(&self, id: ParticipantId) -> Vec<TrackMapping> {
        let Some(Participant {
            role: Role::Browser(b),
            ..
        }) = self.participants.get(&id)
        else {
            return Vec::new();
        };
        b.mapping()
            .into_iter()
            .filter_map(|(mid, origin, kind)| {
                Some(TrackMapping {
                    mid,
                    participant: self.participants.get(&origin)?.identity.clone(),
                    kind: kind_of(kind),
                })
            })
            .collect()
    }

    fn browser_mut(&mut self, id: ParticipantId) -> Option<&mut Browser> {
        match &mut self.participants.get_mut(&id)?.role {
            Role::Browser(b) => Some(b),
            Role::Phone => None,
        }
    }

    /// A new track in the room: every other subscribing browser receives it.
    fn publish(&mut self, track: TrackIn) {
        for m in self.members_of(track.origin) {
            if m == track.origin {
                continue;
            }
            let subscribes = self.participants.get(&m).is_some_and(|p| p.can_subscribe);
            if let (true, Some(b)) = (subscribes, self.browser_mut(m)) {
                b.subscribe(track);
            }
        }
    }

    /// `from`'s tracks changed: the room is told, and everyone is offered what changed.
    fn tracks_changed(&mut self, from: ParticipantId) {
        self.announce_update(from);
        for m in self.members_of(from) {
            self.negotiate(m);
        }
    }

    /// A browser stopped sending a track: the others stop receiving it (its m-line at each
    /// goes inactive, which their clients report as the track's end).
    fn unpublish(&mut self, track: TrackIn) {
        for m in self.members_of(track.origin) {
            if let Some(b) = self.browser_mut(m).filter(|_| m != track.origin) {
                b.unsubscribe(track);
            }
        }
    }

    // ---- network ----

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        let accepts = |p: &Participant| match &p.role {
            Role::Browser(b) => b.accepts(now, source, destination, bytes),
            Role::Phone => false,
        };
        let routed = self
            .routes
            .get(&source)
            .copied()
            .filter(|id| self.participants.get(id).is_some_and(accepts));
        let owner = routed.or_else(|| {
            self.participants
                .iter()
                .find_map(|(id, p)| accepts(p).then_some(*id))
        });
        let Some(id) = owner else {
            tracing::trace!(%source, "datagram for no session");
            return;
        };
        if routed.is_none() {
            self.routes.retain(|_, owner| *owner != id);
            self.routes.insert(source, id);
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(b) = self.browser_mut(id) {
            b.handle_datagram(now, source, destination, bytes, &mut scratch);
        }
        self.process(now, id, &mut scratch);
        self.scratch = scratch;
        self.check_failed(now, id);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ParticipantId> = self
            .participants
            .iter()
            .filter_map(|(id, p)| match &p.role {
                Role::Browser(b) if b.next_timeout() <= now => Some(*id),
                _ => None,
            })
            .collect();
        for id in due {
            self.drive(now, id);
            self.check_failed(now, id);
        }
        if now >= self.next_speaking_check {
            self.next_speaking_check = now + SPEAKING_CHECK;
            let ids: Vec<ParticipantId> = self.participants.keys().copied().collect();
            for id in ids {
                let changed = self
                    .participants
                    .get_mut(&id)
                    .is_some_and(|p| p.speaking.check_silence(now));
                if changed {
                    self.speaking_changed(id);
                }
            }
        }
        let expired: Vec<RoomKey> = self
            .rooms
            .iter()
            .filter(|(_, r)| {
                r.auto_created
                    && r.empty_since
                        .is_some_and(|t| now.duration_since(t) >= self.cfg.empty_room_timeout)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let _ = self.close_room(now, &key);
        }
    }

    /// Runs a browser's timers and handles what it produced.
    fn drive(&mut self, now: Instant, id: ParticipantId) {
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(b) = self.browser_mut(id) {
            b.handle_timeout(now, &mut scratch);
            b.drain(&mut scratch);
        }
        self.process(now, id, &mut scratch);
        self.scratch = scratch;
    }

    fn check_failed(&mut self, now: Instant, id: ParticipantId) {
        let failure = self.browser_mut(id).and_then(|b| match b.failure(now) {
            Some(SessionFailure::Panicked) => Some("internal error".to_owned()),
            Some(SessionFailure::IceGaveUp) => Some("ICE did not recover".to_owned()),
            Some(SessionFailure::Error(e)) => Some(e.clone()),
            None => None,
        });
        if let Some(why) = failure {
            tracing::info!(participant = id.0, why, "WebRTC session failed");
            self.remove(now, id, LeaveReason::Failed);
        }
    }

    /// Acts on what browser `from` produced: datagrams out, new tracks, media to forward.
    fn process(&mut self, now: Instant, from: ParticipantId, outputs: &mut Vec<BrowserOutput>) {
        let mut forwarded = Vec::new();
        for o in outputs.drain(..) {
            match o {
                BrowserOutput::Transmit {
                    destination,
                    contents,
                } => self.out.push_back(Output::Transmit {
                    destination,
                    contents,
                }),
                BrowserOutput::TrackAdded(track) => {
                    if self.participants.get(&from).is_some_and(|p| p.can_publish) {
                        self.publish(track);
                        self.tracks_changed(from);
                    }
                }
                BrowserOutput::TrackRemoved(track) => {
                    self.unpublish(track);
                    self.tracks_changed(from);
                }
                BrowserOutput::Media(data) => forwarded.push(data),
                BrowserOutput::ReportedLoss { mid, fraction } => {
                    self.on_reported_loss(from, mid, fraction);
                }
                BrowserOutput::KeyframeWanted { mid } => {
                    let source = match self.participants.get(&from).map(|p| &p.role) {
                        Some(Role::Browser(b)) => b.source_of(mid),
                        _ => None,
                    };
                    if let Some(source) = source {
                        self.keyframe_for_new_subscriber(now, source);
                    }
                }
            }
        }
        for data in forwarded {
            self.forward_browser_media(now, from, data);
        }
    }

    /// Browser `from` reported `fraction` lost on what it receives on `mid`: if that is a
    /// phone's voice, the phone's FEC may change.
    fn on_reported_loss(&mut self, from: ParticipantId, mid: Mid, fraction: f32) {
        self.loss_reports += 1;
        let source = match self.participants.get(&from).map(|p| &p.role) {
            Some(Role::Browser(b)) => b.source_of(mid),
            _ => None,
        };
        let Some(phone) = source.map(|s| s.origin).filter(|origin| {
            matches!(
                self.participants.get(origin).map(|p| &p.role),
                Some(Role::Phone)
            )
        }) else {
            return;
        };
        if let Some(percent) = self.listener_loss.report(phone, from, fraction) {
            self.out.push_back(Output::PhoneLoss { phone, percent });
        }
    }

    fn members_of(&self, id: ParticipantId) -> Vec<ParticipantId> {
        self.participants
            .get(&id)
            .and_then(|p| self.rooms.get(&p.room))
            .map(|r| r.members.clone())
            .unwrap_or_default()
    }

    fn keyframe_for_new_subscriber(&mut self, now: Instant, source: TrackIn) {
        let (Some(mid), MediaKind::Video) = (source.mid, source.kind) else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        if let Some(b) = self.browser_mut(source.origin) {
            b.request_keyframe(now, mid, &mut scratch);
        }
        self.process(now, source.origin, &mut scratch);
        self.scratch = scratch;
    }

    fn forward_browser_media(
        &mut self,
        now: Instant,
        from: ParticipantId,
        data: Box<str0m::media::MediaData>,
    ) {
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        if !p.can_publish {
            return;
        }
        let Some(source) = (match &p.role {
            Role::Browser(b) => b
                .tracks_in
                .iter()
                .find(|t| t.mid == Some(data.mid))
                .copied(),
            Role::Phone => None,
        }) else {
            return;
        };
        let audio = source.kind == MediaKind::Audio;
        if audio && p.audio_muted() {
            return;
        }
        let mut speaking_changed = false;
        if audio && let Some(level) = data.ext_vals.audio_level {
            speaking_changed = p.speaking.level(now, level.unsigned_abs());
        }
        if !data.contiguous && !audio {
            self.keyframe_for_new_subscriber(now, source);
        }
        let to_phones = (audio && data.params.spec().codec == Codec::Opus)
            .then(|| (**data.seq_range.start(), data.time.numer()));
        self.fan_out(
            now,
            Fanout {
                source,
                params: Some(data.params),
                wallclock: data.network_time,
                time: data.time,
                payload: &data.data,
                rtp_level: data.ext_vals.audio_level,
                to_phones,
            },
        );
        if speaking_changed {
            self.speaking_changed(from);
        }
    }

    /// Writes a published packet to every other subscriber of the room: browsers through
    /// their session, phones (Opus audio only) through `Output::ToPhone`. What a browser's
    /// session produces on the way (datagrams, feedback) is handled as its own output.
    fn fan_out(&mut self, now: Instant, f: Fanout<'_>) {
        let from = f.source.origin;
        let mut scratch = std::mem::take(&mut self.scratch);
        for m in self.members_of(from) {
            if m == from {
                continue;
            }
            let Some(q) = self.participants.get_mut(&m).filter(|q| q.can_subscribe) else {
                continue;
            };
            match (&mut q.role, f.to_phones) {
                (Role::Browser(b), _) => {
                    b.write_media(
                        f.source,
                        f.params,
                        f.wallclock,
                        f.time,
                        f.payload,
                        f.rtp_level,
                        &mut scratch,
                    );
                    self.process(now, m, &mut scratch);
                }
                (Role::Phone, Some((seq, rtp_time))) => self.out.push_back(Output::ToPhone {
                    to: m,
                    source: from,
                    seq,
                    rtp_time,
                    payload: f.payload.clone(),
                }),
                (Role::Phone, None) => {}
            }
        }
        self.scratch = scratch;
    }

    // ---- phones ----

    /// A 20 ms Opus packet of a phone participant's voice.
    pub fn handle_phone_audio(
        &mut self,
        now: Instant,
        from: ParticipantId,
        seq: u64,
        rtp_time: u64,
        level: Option<u8>,
        payload: &[u8],
    ) {
        let Some(p) = self.participants.get_mut(&from) else {
            return;
        };
        if !matches!(p.role, Role::Phone) || !p.can_publish || p.audio_muted() {
            return;
        }
        let speaking_changed = level.is_some_and(|l| p.speaking.level(now, l));
        let source = TrackIn {
            origin: from,
            mid: None,
            kind: MediaKind::Audio,
        };
        let payload: Arc<[u8]> = Arc::from(payload);
        self.fan_out(
            now,
            Fanout {
                source,
                params: None,
                wallclock: now,
                time: MediaTime::new(rtp_time, str0m::media::Frequency::FORTY_EIGHT_KHZ),
                payload: &payload,
                rtp_level: level.map(|l| -(l.min(127) as i8)),
                to_phones: Some((seq, rtp_time)),
            },
        );
        if speaking_changed {
            self.speaking_changed(from);
        }
    }

    fn speaking_changed(&mut self, id: ParticipantId) {
        let Some(room_key) = self.participants.get(&id).map(|p| p.room.clone()) else {
            return;
        };
        let Some(room) = self.rooms.get(&room_key) else {
            return;
        };
        let mut speakers: Vec<(ParticipantId, f32)> = room
            .members
            .iter()
            .filter_map(|m| {
                let p = self.participants.get(m)?;
                p.speaking.speaking().then(|| (*m, p.speaking.loudness()))
            })
            .collect();
        speakers.sort_by(|a, b| b.1.total_cmp(&a.1));
        let ids: Vec<ParticipantId> = speakers.iter().map(|s| s.0).collect();
        let members = room.members.clone();
        if let Some(room) = self.rooms.get_mut(&room_key) {
            room.speakers = ids;
        }
        let message = ServerMessage::Speaking {
            speakers: speakers
                .iter()
                .filter_map(|(m, level)| {
                    Some(Speaker {
                        identity: self.participants.get(m)?.identity.clone(),
                        level: *level,
                    })
                })
                .collect(),
        };
        for m in members {
            self.signal(m, message.clone());
        }
    }

    // ---- output ----

    /// Everything there is to say now, up to the timeout (tests read outputs whole).
    #[cfg(test)]
    pub(crate) fn drain_outputs(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        loop {
            match self.poll_output() {
                Output::Timeout(_) => return out,
                o => out.push(o),
            }
        }
    }

    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        let mut next = self.next_speaking_check;
        for p in self.participants.values() {
            if let Role::Browser(b) = &p.role {
                next = next.min(b.next_timeout());
            }
        }
        for r in self.rooms.values() {
            if r.auto_created
                && let Some(t) = r.empty_since
            {
                next = next.min(t + self.cfg.empty_room_timeout);
            }
        }
        Output::Timeout(next)
    }

    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Loss reports browsers sent on what they receive, since the start (for `/metrics`).
    pub fn loss_reports(&self) -> u64 {
        self.loss_reports
    }
}

mod audience;
mod listener_loss;
#[cfg(test)]
mod tests;
