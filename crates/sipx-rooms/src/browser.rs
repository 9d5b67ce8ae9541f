//! One browser's WebRTC session: a str0m `Rtc` (ICE-lite, DTLS-SRTP) and the SDP negotiation of
//! the tracks it receives, driven by the room.
//!
//! str0m panics on broken internal invariants; every call into the `Rtc` goes through
//! [`Browser::guard`], which turns a panic into a failed session so one peer cannot take the
//! rooms thread down.

use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

use crate::ids::ParticipantId;
use crate::track::{TrackIn, TrackOut, TrackOutState};

/// A keyframe is asked of a publisher at most this often per track.
const KEYFRAME_INTERVAL: Duration = Duration::from_secs(1);
/// How often str0m sums up what each track's receiver reported.
const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// ICE may recover (restart) within this time after it reports a disconnection.
const ICE_GRACE: Duration = Duration::from_secs(15);

/// What a session produced that the room must act on.
#[derive(Debug)]
pub enum BrowserOutput {
    Transmit {
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// The browser started sending a new track, or sends again on an m-line it had stopped.
    TrackAdded(TrackIn),
    /// The browser stopped sending a track (unpublished): its m-line stays, inactive.
    TrackRemoved(TrackIn),
    Media(Box<str0m::media::MediaData>),
    /// A subscriber wants a keyframe of the track it receives on `mid`.
    KeyframeWanted {
        mid: Mid,
    },
    /// The fraction (0.0–1.0) of what it receives on `mid` the browser reports lost.
    ReportedLoss {
        mid: Mid,
        fraction: f32,
    },
}

#[derive(Debug)]
pub enum SessionFailure {
    Panicked,
    Error(String),
    IceGaveUp,
}

pub struct Browser {
    pub id: ParticipantId,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    /// The tracks the browser sends now.
    pub tracks_in: Vec<TrackIn>,
    pub tracks_out: Vec<TrackOut>,
    /// Every m-line the browser opened to send on, sending or stopped: its tracks come and go
    /// on them as it publishes and unpublishes.
    sent_mids: Vec<(Mid, MediaKind)>,
    /// Tracks started or stopped by a negotiation that just settled, for the next drain.
    settled: Vec<BrowserOutput>,
    /// Inactive m-lines, reused for new tracks of their kind.
    idle: Vec<(Mid, MediaKind)>,
    next_timeout: Instant,
    last_keyframe_request: Vec<(Mid, Instant)>,
    ice_disconnected_since: Option<Instant>,
    failed: Option<SessionFailure>,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("id", &self.id)
            .field("tracks_in", &self.tracks_in.len())
            .field("tracks_out", &self.tracks_out.len())
            .finish_non_exhaustive()
    }
}

impl Browser {
    pub fn new(id: ParticipantId, now: Instant, candidate: SocketAddr) -> Result<Browser, String> {
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            // Egress stats carry the loss the browser reports on each track it receives,
            // which sizes the phones' Opus FEC (`sfu/listener_loss.rs`).
            .set_stats_interval(Some(STATS_INTERVAL))
            .build(now);
        let candidate = Candidate::host(candidate, "udp")
            .map_err(|e| format!("the rooms address cannot be an ICE candidate: {e}"))?;
        rtc.add_local_candidate(candidate);
        Ok(Browser {
            id,
            rtc,
            pending: None,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            sent_mids: Vec::new(),
            settled: Vec::new(),
            idle: Vec::new(),
            next_timeout: now,
            last_keyframe_request: Vec::new(),
            ice_disconnected_since: None,
            failed: None,
        })
    }

    /// Runs `f` on the session unless it failed; a panic fails it.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Rtc) -> T) -> Option<T> {
        if self.failed.is_some() {
            return None;
        }
        match catch_unwind(AssertUnwindSafe(|| f(&mut self.rtc))) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::error!(
                    participant = self.id.0,
                    "WebRTC session panicked; dropping it"
                );
                self.failed = Some(SessionFailure::Panicked);
                None
            }
        }
    }

    pub fn failure(&mut self, now: Instant) -> Option<&SessionFailure> {
        if self.failed.is_none() {
            if let Some(since) = self.ice_disconnected_since
                && now.duration_since(since) >= ICE_GRACE
            {
                self.failed = Some(SessionFailure::IceGaveUp);
            } else if !self.rtc.is_alive() {
                self.failed = Some(SessionFailure::Error("the session closed".into()));
            }
        }
        self.failed.as_ref()
    }

    pub fn next_timeout(&self) -> Instant {
        match (self.ice_disconnected_since, self.failed.is_some()) {
            (_, true) => self.next_timeout,
            (Some(since), false) => self.next_timeout.min(since + ICE_GRACE),
            (None, false) => self.next_timeout,
        }
    }

    /// Whether a datagram belongs to this session.
    pub fn accepts(
        &self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) -> bool {
        self.failed.is_none()
            && receive_input(now, source, destination, bytes).is_some_and(|i| self.rtc.accepts(&i))
    }

    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<BrowserOutput>,
    ) {
        if let Some(input) = receive_input(now, source, destination, bytes) {
            self.input(input, out);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<BrowserOutput>) {
        if now >= self.next_timeout {
            self.input(Input::Timeout(now), out);
        }
    }

    fn input(&mut self, input: Input<'_>, out: &mut Vec<BrowserOutput>) {
        match self.guard(|rtc| rtc.handle_input(input)) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::info!(participant = self.id.0, error = %e, "WebRTC input refused");
            }
            None => return,
        }
        self.drain(out);
    }

    /// Polls the session until it only has a timeout to report.
    pub fn drain(&mut self, out: &mut Vec<BrowserOutput>) {
        out.append(&mut self.settled);
        loop {
            let Some(polled) = self.guard(|rtc| match rtc.poll_output() {
                Ok(o) => Ok(Polled::from(o)),
                Err(e) => Err(e.to_string()),
            }) else {
                return;
            };
            match polled {
                Err(e) => {
                    self.failed = Some(SessionFailure::Error(e));
                    return;
                }
                Ok(Polled::Timeout(t)) => {
                    self.next_timeout = t;
                    return;
                }
                Ok(Polled::Transmit(destination, contents)) => {
                    out.push(BrowserOutput::Transmit {
                        destination,
                        contents,
                    });
                }
                Ok(Polled::Event(e)) => self.on_event(*e, out),
            }
        }
    }

    fn on_event(&mut self, event: Event, out: &mut Vec<BrowserOutput>) {
        if let Event::IceConnectionStateChange(state) = &event {
            tracing::info!(participant = self.id.0, ?state, "ICE state");
        }
        match event {
            Event::Closed => {
                tracing::info!(participant = self.id.0, "WebRTC session closed by the peer");
            }
            Event::IceConnectionStateChange(state) => match state {
                IceConnectionState::Disconnected => {
                    self.ice_disconnected_since.get_or_insert(self.next_timeout);
                }
                IceConnectionState::Connected | IceConnectionState::Completed => {
                    self.ice_disconnected_since = None;
                }
                _ => {}
            },
            // A new m-line the browser sends on: its track starts as any other does.
            Event::MediaAdded(added)
                if matches!(added.direction, Direction::RecvOnly | Direction::SendRecv)
                    && !self.sent_mids.iter().any(|&(m, _)| m == added.mid) =>
            {
                self.sent_mids.push((added.mid, added.kind));
                self.reconcile_sent();
                out.append(&mut self.settled);
            }
            Event::MediaData(data) => out.push(BrowserOutput::Media(Box::new(data))),
            Event::KeyframeRequest(req) => out.push(BrowserOutput::KeyframeWanted { mid: req.mid }),
            Event::MediaEgressStats(stats) => {
                if let Some(fraction) = stats.loss {
                    out.push(BrowserOutput::ReportedLoss {
                        mid: stats.mid,
                        fraction,
                    });
                }
            }
            _ => {}
        }
    }

    // ---- negotiation ----

    /// The browser's offer (publishing, or an ICE restart). Any offer of ours is dropped: the
    /// server is the polite side (docs/rooms-signalling.md).
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        // Parsed inside the guard too: str0m's parser is the first to see the browser's text.
        let answer = self
            .guard(|rtc| {
                let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| unreadable("offer", &e))?;
                rtc.sdp_api()
                    .accept_offer(offer)
                    .map_err(|e| format!("offer refused: {e}"))
            })
            .ok_or_else(|| "the session failed".to_owned())??;
        self.pending = None;
        self.settle_after_rollback();
        self.reconcile_sent();
        Ok(answer.to_sdp_string())
    }

    /// The session's direction on `mid` (ours: `RecvOnly` while the browser sends there).
    fn direction(&self, mid: Mid) -> Option<Direction> {
        self.rtc.media(mid).map(|m| m.direction())
    }

    /// Once a negotiation settled: which of the browser's sending m-lines carry a track now.
    /// Read from the session, not from its direction events: those also fire for the
    /// `recvonly` our own offer proposes (`make_offer`), before the browser agreed to anything.
    fn reconcile_sent(&mut self) {
        for &(mid, kind) in &self.sent_mids {
            let sending = matches!(
                self.direction(mid),
                Some(Direction::RecvOnly | Direction::SendRecv)
            );
            let at = self.tracks_in.iter().position(|t| t.mid == Some(mid));
            match (sending, at) {
                (true, None) => {
                    let track = TrackIn {
                        origin: self.id,
                        mid: Some(mid),
                        kind,
                    };
                    self.tracks_in.push(track);
                    self.settled.push(BrowserOutput::TrackAdded(track));
                }
                (false, Some(i)) => {
                    let track = self.tracks_in.remove(i);
                    self.settled.push(BrowserOutput::TrackRemoved(track));
                }
                _ => {}
            }
        }
    }

    /// The browser's answer to our offer. Returns the tracks that just opened.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<Vec<TrackIn>, String> {
        let Some(pending) = self.pending.take() else {
            // An answer to an offer we already dropped (glare): nothing to do.
            return Ok(Vec::new());
        };
        let result = self
            .guard(|rtc| {
                let answer =
                    SdpAnswer::from_sdp_string(sdp).map_err(|e| unreadable("answer", &e))?;
                rtc.sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| e.to_string())
            })
            .ok_or_else(|| "the session failed".to_owned())?;
        if let Err(e) = result {
            // What the offer added is rolled back; directions already changed stay changed.
            self.settle_after_rollback();
            return Err(format!("answer refused: {e}"));
        }
        let mut opened = Vec::new();
        for t in &mut self.tracks_out {
            match t.state {
                TrackOutState::Negotiating(m) => {
                    t.state = TrackOutState::Open(m);
                    opened.push(t.source);
                }
                TrackOutState::NegotiatingIdle(m) => self.idle.push((m, t.source.kind)),
                _ => {}
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, TrackOutState::NegotiatingIdle(_)));
        self.reconcile_sent();
        Ok(opened)
    }

    /// Our offer was dropped (the browser offered meanwhile) or refused. str0m applies
    /// direction changes to the session at once (only added m-lines wait for the answer), so a
    /// reused or idled m-line already has its new direction, which any answer we give carries:
    /// count those as done; m-lines that were only proposed are proposed again.
    fn settle_after_rollback(&mut self) {
        let rtc = &self.rtc;
        let idle = &mut self.idle;
        for t in &mut self.tracks_out {
            match t.state {
                TrackOutState::Negotiating(m) if rtc.media(m).is_some() => {
                    t.state = TrackOutState::Open(m);
                }
                TrackOutState::Negotiating(_) => t.state = TrackOutState::ToOpen,
                TrackOutState::NegotiatingIdle(m) => idle.push((m, t.source.kind)),
                _ => {}
            }
        }
        self.tracks_out
            .retain(|t| !matches!(t.state, TrackOutState::NegotiatingIdle(_)));
    }

    /// Receive a track published by someone else.
    pub fn subscribe(&mut self, source: TrackIn) {
        // A gone one of the same source (stopped, published again on its m-line) is on its way
        // out: the track gets a new m-line.
        if !self
            .tracks_out
            .iter()
            .any(|t| t.source == source && !t.gone)
        {
            self.tracks_out.push(TrackOut {
                source,
                state: TrackOutState::ToOpen,
                gone: false,
            });
        }
    }

    /// A publisher left: stop receiving its tracks.
    pub fn unsubscribe_origin(&mut self, origin: ParticipantId) {
        self.unsubscribe_where(|s| s.origin == origin);
    }

    /// Stops receiving one track (its publisher stopped sending it).
    pub fn unsubscribe(&mut self, source: TrackIn) {
        self.unsubscribe_where(|s| *s == source);
    }

    fn unsubscribe_where(&mut self, gone: impl Fn(&TrackIn) -> bool) {
        self.tracks_out
            .retain(|t| !(gone(&t.source) && t.state == TrackOutState::ToOpen));
        for t in &mut self.tracks_out {
            if gone(&t.source) {
                t.gone = true;
            }
        }
    }

    /// When tracks wait to be opened or stopped and no offer of ours is out, makes the offer
    /// (its SDP). Send [`Browser::mapping`] before it.
    pub fn offer_if_needed(&mut self) -> Option<String> {
        if self.pending.is_some() || self.failed.is_some() {
            return None;
        }
        for t in &mut self.tracks_out {
            if let (TrackOutState::Open(m), true) = (t.state, t.gone) {
                t.state = TrackOutState::ToIdle(m);
            }
        }
        let wanted = self
            .tracks_out
            .iter()
            .any(|t| matches!(t.state, TrackOutState::ToOpen | TrackOutState::ToIdle(_)));
        if !wanted {
            return None;
        }
        let (offer, pending, mids) = self.make_offer()?;
        // `mids` follows the order of `tracks_out` for the ones that were opened.
        let mut it = mids.into_iter();
        for t in &mut self.tracks_out {
            match t.state {
                TrackOutState::ToOpen => {
                    if let Some(Some(m)) = it.next() {
                        t.state = TrackOutState::Negotiating(m);
                    }
                }
                TrackOutState::ToIdle(m) => {
                    let _ = it.next();
                    t.state = TrackOutState::NegotiatingIdle(m);
                }
                _ => {}
            }
        }
        self.pending = Some(pending);
        Some(offer)
    }

    /// Builds the offer for the waiting tracks. Returns per waiting track (in order) the mid
    /// it was given (`None` for stops).
    fn make_offer(&mut self) -> Option<(String, SdpPendingOffer, Vec<Option<Mid>>)> {
        let waiting: Vec<TrackOut> = self
            .tracks_out
            .iter()
            .filter(|t| matches!(t.state, TrackOutState::ToOpen | TrackOutState::ToIdle(_)))
            .copied()
            .collect();
        let mut idle = std::mem::take(&mut self.idle);
        let origin_names: Vec<String> = waiting
            .iter()
            .map(|t| format!("p{}", t.source.origin.0))
            .collect();
        // The browser's own m-lines it stopped sending on are offered `recvonly`, not
        // `inactive` as it left them: an answer to `inactive` can only be `inactive`, so a
        // browser that publishes again while this offer is out would never renegotiate
        // (JSEP §5.3.1) and its track would stay off.
        let stopped: Vec<Mid> = self
            .sent_mids
            .iter()
            .map(|&(m, _)| m)
            .filter(|&m| self.direction(m) == Some(Direction::Inactive))
            .collect();
        let result = self.guard(move |rtc| {
            let mut change = rtc.sdp_api();
            for m in stopped {
                change.set_direction(m, Direction::RecvOnly);
            }
            let mut mids = Vec::with_capacity(waiting.len());
            for (t, stream) in waiting.iter().zip(origin_names) {
                match t.state {
                    TrackOutState::ToOpen => {
                        let reuse = idle.iter().position(|(_, k)| *k == t.source.kind);
                        let mid = match reuse {
                            Some(i) => {
                                let (m, _) = idle.swap_remove(i);
                                change.set_direction(m, Direction::SendOnly);
                                m
                            }
                            None => change.add_media(
                                t.source.kind,
                                Direction::SendOnly,
                                Some(stream),
                                None,
                                None,
                            ),
                        };
                        mids.push(Some(mid));
                    }
                    TrackOutState::ToIdle(m) => {
                        change.set_direction(m, Direction::Inactive);
                        mids.push(None);
                    }
                    _ => {}
                }
            }
            let applied = change
                .apply()
                .map(|(offer, pending)| (offer.to_sdp_string(), pending, mids));
            (applied, idle)
        });
        let (applied, idle) = result?;
        self.idle = idle;
        applied
    }

    /// The received m-lines (offered or open) and whose tracks they carry.
    pub fn mapping(&self) -> Vec<(String, ParticipantId, MediaKind)> {
        self.tracks_out
            .iter()
            .filter_map(|t| match t.state {
                TrackOutState::Negotiating(m) | TrackOutState::Open(m) => {
                    Some((m.to_string(), t.source.origin, t.source.kind))
                }
                _ => None,
            })
            .collect()
    }

    // ---- media ----

    /// Forwards media of `source` to this browser, if it receives that track.
    #[allow(clippy::too_many_arguments)]
    pub fn write_media(
        &mut self,
        source: TrackIn,
        params: Option<str0m::format::PayloadParams>,
        wallclock: Instant,
        time: MediaTime,
        data: &std::sync::Arc<[u8]>,
        audio_level: Option<i8>,
        out: &mut Vec<BrowserOutput>,
    ) {
        let Some(mid) = self
            .tracks_out
            .iter()
            .filter(|t| t.source == source && !t.gone)
            .find_map(TrackOut::open_mid)
        else {
            return;
        };
        let written = self.guard(|rtc| {
            let Some(writer) = rtc.writer(mid) else {
                return Ok(false);
            };
            let pt = match params {
                Some(p) => writer.match_params(p),
                // A phone's audio: the Opus payload type negotiated on this m-line.
                None => writer
                    .payload_params()
                    .find(|p| p.spec().codec == str0m::format::Codec::Opus)
                    .map(|p| p.pt()),
            };
            let Some(pt) = pt else {
                return Ok(false);
            };
            let writer = match audio_level {
                Some(level) => writer.audio_level(level, level > -50),
                None => writer,
            };
            writer
                .write(pt, wallclock, time, data.clone())
                .map(|()| true)
        });
        match written {
            Some(Ok(true)) => self.drain(out),
            Some(Ok(false)) | None => {}
            Some(Err(e)) => {
                tracing::debug!(participant = self.id.0, error = %e, "media not written");
            }
        }
    }

    /// Asks this (publishing) browser for a keyframe of its track `mid`, at most once a second.
    pub fn request_keyframe(&mut self, now: Instant, mid: Mid, out: &mut Vec<BrowserOutput>) {
        if let Some((_, at)) = self.last_keyframe_request.iter().find(|(m, _)| *m == mid)
            && now.duration_since(*at) < KEYFRAME_INTERVAL
        {
            return;
        }
        self.last_keyframe_request.retain(|(m, _)| *m != mid);
        self.last_keyframe_request.push((mid, now));
        let _ = self.guard(|rtc| {
            if let Some(mut w) = rtc.writer(mid) {
                let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
            }
        });
        self.drain(out);
    }

    /// The source of the track this browser receives on `mid`.
    pub fn source_of(&self, mid: Mid) -> Option<TrackIn> {
        self.tracks_out
            .iter()
            .find(|t| t.mid() == Some(mid))
            .map(|t| t.source)
    }

    pub fn close(&mut self) {
        let _ = self.guard(|rtc| rtc.disconnect());
    }
}

/// A datagram as str0m's input (None: not STUN, DTLS, RTP or RTCP).
fn receive_input(
    now: Instant,
    source: SocketAddr,
    destination: SocketAddr,
    bytes: &[u8],
) -> Option<Input<'_>> {
    let contents = DatagramRecv::try_from(bytes).ok()?;
    Some(Input::Receive(
        now,
        Receive {
            proto: Protocol::Udp,
            source,
            destination,
            contents,
        },
    ))
}

/// `Rtc::poll_output` borrows the session; this owns what the room needs of it.
enum Polled {
    Timeout(Instant),
    Transmit(SocketAddr, Vec<u8>),
    Event(Box<Event>),
}

impl From<Output> for Polled {
    fn from(o: Output) -> Self {
        match o {
            Output::Timeout(t) => Polled::Timeout(t),
            Output::Transmit(t) => Polled::Transmit(t.destination, t.contents.to_vec()),
            Output::Event(e) => Polled::Event(Box::new(e)),
        }
    }
}

/// The error a client gets for SDP that does not parse. The parser's own message goes to the
/// log only: it names places in the server's memory (`PointerOffset(0x…)`).
fn unreadable(what: &str, error: &dyn std::fmt::Display) -> String {
    tracing::debug!(%error, "unreadable {what}");
    format!("bad {what}: the SDP could not be read")
}
