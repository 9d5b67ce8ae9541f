//! [`RoomListener`]: what the phones of a room hear of it, decoded once for all of them. Each
//! participant heard (a *source*, keyed by the rooms thread) gets a jitter buffer and an Opus
//! decoder at the phones' frame rate; every 20 ms ([`RoomListener::prepare`]) each source's
//! frame is decoded once and the frames go through a [`Mixer`]: every phone listening
//! ([`RoomListener::add_listener`]) hears the sources but itself, loud voices together turned
//! down by a limiter, never clipped. A phone alone needs no mix-minus, as the SFU never
//! forwards a phone its own audio: [`RoomListener::mix`] serves that case.
//!
//! The listening phones' own voices do not go through Opus here: each gives its frame as it
//! is ([`RoomListener::speak`]), and the others hear it in the same tick (mix-minus keeps it
//! from its speaker). Packets keyed by a listening phone (the room's copy of that voice, when
//! it is also encoded for someone elsewhere) are dropped, so no one hears it twice. A room of
//! phones on one thread therefore costs no Opus at all.
//!
//! Work is saved where the result is known without mixing (the mixer's fast paths): no source
//! with audio gives silence, one gives that source's decoded frame as is (no sum, no limiter),
//! and every phone that does not talk hears the same output, which [`Heard::talked`] lets the
//! caller encode once for all of them.
//!
//! Bounds: at most [`MAX_SOURCES`] sources are decoded. A newcomer beyond that takes the place
//! of the source that has been quiet (no frame louder than -50 dBov) the longest, once that
//! one has been quiet for [`QUIET_FOR`]; until then its packets are refused (counted). So the
//! ones talking keep their place and a room full of listeners does not bar a new talker for
//! long. A source with no packet for [`IDLE_AFTER`] is dropped.
//!
//! Memory: a source's jitter buffer and decoder are allocated when it first sends (a join, not
//! a packet), a listener's mixer buffers when it is added; mixing, packets and ticks allocate
//! nothing.

use std::time::{Duration, Instant};

use sipx_codec::CodecKind;

use super::source::Source;
use crate::error::MediaError;
use crate::jitter::JitterConfig;
use crate::mixer::{self, Mixer};

/// Sources decoded at once.
pub const MAX_SOURCES: usize = 16;
/// A source without packets for this long is dropped.
pub const IDLE_AFTER: Duration = Duration::from_secs(2);
/// A source quiet for this long may give its place to a newcomer.
pub const QUIET_FOR: Duration = Duration::from_secs(1);

/// Counters, for stats and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// Sources decoded now.
    pub sources: usize,
    /// Packets of newcomers refused because every place was taken by someone talking.
    pub refused: u64,
    /// Quiet sources that gave their place to a newcomer.
    pub replaced: u64,
    /// Sources dropped after [`IDLE_AFTER`] without packets.
    pub expired: u64,
    /// Packets that came after their time had played, over all sources.
    pub late: u64,
    /// Frames concealed for lost packets, over all sources.
    pub concealed: u64,
}

/// A phone listening through a [`RoomListener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerId(mixer::ParticipantId);

/// What one listener hears this tick.
#[derive(Debug, Clone, Copy)]
pub struct Heard<'a> {
    pub pcm: &'a [i16],
    /// It talked this tick, so it hears a mix of its own; otherwise it hears what every
    /// listener who did not talk hears.
    pub talked: bool,
}

/// A listening phone: its participant key (when known) and its place in the mixer.
#[derive(Debug, Clone, Copy)]
struct Listening {
    key: Option<u64>,
    slot: mixer::ParticipantId,
}

/// What the phones of a room hear. See the module docs.
#[derive(Debug)]
pub struct RoomListener {
    frame_rate: u32,
    /// The delay bounds of new sources' jitter buffers.
    jitter: JitterConfig,
    /// At most [`MAX_SOURCES`], in no order; the capacity is reserved up front.
    sources: Vec<Source>,
    listeners: Vec<Listening>,
    /// The listener of [`RoomListener::mix`].
    anonymous: ListenerId,
    mixer: Mixer,
    /// One source's decoded frame on its way into the mixer.
    frame: Box<[i16]>,
    stats: ListenerStats,
}

impl RoomListener {
    /// A listener mixing 20 ms frames at `frame_rate` (a rate Opus decodes to: 8, 12, 16, 24
    /// or 48 kHz), with jitter buffers adapting within `jitter`'s delays.
    pub fn new(frame_rate: u32, jitter: &JitterConfig) -> Result<RoomListener, MediaError> {
        if !CodecKind::Opus.supports_audio_rate(frame_rate) {
            return Err(MediaError::ApiMisuse(
                "frame rate must be one Opus decodes to",
            ));
        }
        let frame = frame_rate as usize / 50;
        let mut mixer = Mixer::new(frame, frame_rate);
        let anonymous = ListenerId(mixer.add());
        Ok(RoomListener {
            frame_rate,
            jitter: jitter.clone(),
            sources: Vec::with_capacity(MAX_SOURCES),
            listeners: Vec::new(),
            anonymous,
            mixer,
            frame: vec![0; frame].into(),
            stats: ListenerStats::default(),
        })
    }

    /// Samples of one frame (the length `mix` fills).
    pub fn frame_samples(&self) -> usize {
        self.frame.len()
    }

    /// A phone starts listening; `own` is its participant key, so that it does not hear
    /// itself. Allocates its mixer buffers.
    pub fn add_listener(&mut self, own: Option<u64>) -> ListenerId {
        // Its voice comes through `speak` from now on, not as a decoded source.
        if let Some(index) = own.and_then(|key| self.sources.iter().position(|s| s.key == key)) {
            self.retire(index);
        }
        let slot = self.mixer.add();
        self.listeners.push(Listening { key: own, slot });
        ListenerId(slot)
    }

    /// Whether `key` is a listening phone's participant key (its voice comes through
    /// [`RoomListener::speak`]).
    pub fn is_listening(&self, key: u64) -> bool {
        self.listeners.iter().any(|l| l.key == Some(key))
    }

    /// A listening phone's voice this tick, as it is (no codec): the other listeners hear it
    /// in the next [`RoomListener::prepare`]. A phone that says nothing in a tick is silent
    /// in it.
    pub fn speak(&mut self, listener: ListenerId, pcm: &[i16]) -> Result<(), MediaError> {
        if !self.listeners.iter().any(|l| l.slot == listener.0) {
            return Err(MediaError::ApiMisuse("not a listener of this room"));
        }
        self.mixer.set_frame(listener.0, pcm)
    }

    /// A phone stops listening (and speaking).
    pub fn remove_listener(&mut self, id: ListenerId) {
        let Some(index) = self.listeners.iter().position(|l| l.slot == id.0) else {
            return;
        };
        self.listeners.swap_remove(index);
        let _ = self.mixer.remove(id.0);
    }

    /// Phones listening (not counting [`RoomListener::mix`]'s own).
    pub fn listeners(&self) -> usize {
        self.listeners.len()
    }

    /// One Opus packet of participant `source`: extended sequence number, RTP time in 48 kHz
    /// ticks, arrival time `now`. A packet already buffered (from another phone's link) is
    /// recognised and dropped by the source's jitter buffer; one of a listening phone is
    /// dropped, as that voice comes through [`RoomListener::speak`].
    pub fn handle_packet(
        &mut self,
        now: Instant,
        source: u64,
        seq: u64,
        rtp_time_48k: u64,
        payload: &[u8],
    ) {
        if self.is_listening(source) {
            return;
        }
        let index = match self.sources.iter().position(|s| s.key == source) {
            Some(index) => index,
            None => match self.admit(now, source) {
                Some(index) => index,
                None => {
                    self.stats.refused += 1;
                    return;
                }
            },
        };
        if let Some(s) = self.sources.get_mut(index) {
            s.push(now, seq, rtp_time_48k, payload);
        }
    }

    /// Makes a place for a new source; `None` when everyone placed is talking.
    fn admit(&mut self, now: Instant, key: u64) -> Option<usize> {
        if self.sources.len() >= MAX_SOURCES {
            let (index, quietest) = self
                .sources
                .iter()
                .enumerate()
                .min_by_key(|(_, s)| s.loud_at)?;
            if now.saturating_duration_since(quietest.loud_at) < QUIET_FOR {
                return None;
            }
            self.retire(index);
            self.stats.replaced += 1;
        }
        let slot = self.mixer.add_talker();
        // The rate was checked in `new`, so only a failing libopus gets here.
        match Source::new(key, slot, now, self.frame_rate, &self.jitter) {
            Ok(source) => {
                self.sources.push(source);
                Some(self.sources.len() - 1)
            }
            Err(_) => {
                let _ = self.mixer.remove(slot);
                None
            }
        }
    }

    /// Participant `source` left: its decoder goes.
    pub fn forget(&mut self, source: u64) {
        if let Some(index) = self.sources.iter().position(|s| s.key == source) {
            self.retire(index);
        }
    }

    /// Removes a source and its place in the mixer, keeping its counts.
    fn retire(&mut self, index: usize) {
        let s = self.sources.swap_remove(index);
        self.stats.late += s.late;
        self.stats.concealed += s.concealed;
        let _ = self.mixer.remove(s.slot);
    }

    /// This tick: each source's frame decoded once and mixed for every listener. Returns how
    /// many sources had audio. Call once per 20 ms tick, then [`RoomListener::heard`].
    pub fn prepare(&mut self, now: Instant) -> usize {
        self.expire(now);
        let mut heard = 0;
        for s in &mut self.sources {
            s.play(now);
            if s.ready {
                s.take(now, &mut self.frame);
                // The frame has the mixer's length: both come from the frame rate.
                let _ = self.mixer.set_frame(s.slot, &self.frame);
                heard += 1;
            }
        }
        self.mixer.mix();
        heard
    }

    /// What `listener` hears this tick (after [`RoomListener::prepare`]).
    pub fn heard(&self, listener: ListenerId) -> Result<Heard<'_>, MediaError> {
        Ok(Heard {
            pcm: self.mixer.output(listener.0)?,
            talked: self.mixer.talked(listener.0)?,
        })
    }

    /// The next 20 ms a phone alone hears, into `out` ([`RoomListener::frame_samples`] long):
    /// every source. Returns how many sources had audio in it. Call once per 20 ms tick.
    pub fn mix(&mut self, now: Instant, out: &mut [i16]) -> Result<usize, MediaError> {
        if out.len() != self.frame.len() {
            return Err(MediaError::ApiMisuse(
                "frame length differs from the listener's",
            ));
        }
        let heard = self.prepare(now);
        out.copy_from_slice(self.heard(self.anonymous)?.pcm);
        Ok(heard)
    }

    /// Drops the sources that sent nothing for [`IDLE_AFTER`].
    fn expire(&mut self, now: Instant) {
        while let Some(index) = self
            .sources
            .iter()
            .position(|s| now.saturating_duration_since(s.last_packet) > IDLE_AFTER)
        {
            self.retire(index);
            self.stats.expired += 1;
        }
    }

    /// Counters.
    pub fn stats(&self) -> ListenerStats {
        let mut stats = self.stats;
        stats.sources = self.sources.len();
        for s in &self.sources {
            stats.late += s.late;
            stats.concealed += s.concealed;
        }
        stats
    }
}
