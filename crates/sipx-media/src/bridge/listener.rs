//! [`RoomListener`]: what a phone hears of a room. Each other participant (a *source*, keyed by
//! the rooms thread) gets a jitter buffer and an Opus decoder at the phone's frame rate; every
//! 20 ms the sources' frames are summed through a limiter, so loud voices together are turned
//! down, never clipped. The SFU never forwards the phone's own audio, so the sum is already the
//! phone's mix-minus.
//!
//! Work is saved where the result is known without mixing: no source with audio gives silence,
//! one gives that source's decoded frame as is (no sum, no limiter).
//!
//! Bounds: at most [`MAX_SOURCES`] sources are decoded. A newcomer beyond that takes the place
//! of the source that has been quiet (no frame louder than -50 dBov) the longest, once that
//! one has been quiet for [`QUIET_FOR`]; until then its packets are refused (counted). So the
//! ones talking keep their place and a room full of listeners does not bar a new talker for
//! long. A source with no packet for [`IDLE_AFTER`] is dropped.
//!
//! Memory: a source's jitter buffer and decoder are allocated when it first sends (a join, not
//! a packet); mixing, packets and ticks allocate nothing.

use std::time::{Duration, Instant};

use sipx_codec::CodecKind;

use super::source::Source;
use crate::error::MediaError;
use crate::jitter::JitterConfig;
use crate::limiter::{self, Limiter};

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

/// What a phone hears of a room. See the module docs.
#[derive(Debug)]
pub struct RoomListener {
    frame_rate: u32,
    /// The delay bounds of new sources' jitter buffers.
    jitter: JitterConfig,
    /// At most [`MAX_SOURCES`], in no order; the capacity is reserved up front.
    sources: Vec<Source>,
    /// The sum of the sources' frames, one frame taken at a time into `frame`.
    total: Box<[i32]>,
    frame: Box<[i16]>,
    gains: Box<[f32]>,
    limiter: Limiter,
    steps: (f32, f32),
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
        Ok(RoomListener {
            frame_rate,
            jitter: jitter.clone(),
            sources: Vec::with_capacity(MAX_SOURCES),
            total: vec![0; frame].into(),
            frame: vec![0; frame].into(),
            gains: vec![0.0; frame].into(),
            limiter: Limiter::new(),
            steps: limiter::steps(frame_rate),
            stats: ListenerStats::default(),
        })
    }

    /// Samples of one frame (the length `mix` fills).
    pub fn frame_samples(&self) -> usize {
        self.frame.len()
    }

    /// One Opus packet of participant `source`: extended sequence number, RTP time in 48 kHz
    /// ticks, arrival time `now`.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        source: u64,
        seq: u64,
        rtp_time_48k: u64,
        payload: &[u8],
    ) {
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
        // The rate was checked in `new`, so only a failing libopus gets here.
        let source = Source::new(key, now, self.frame_rate, &self.jitter).ok()?;
        self.sources.push(source);
        Some(self.sources.len() - 1)
    }

    /// Participant `source` left: its decoder goes.
    pub fn forget(&mut self, source: u64) {
        if let Some(index) = self.sources.iter().position(|s| s.key == source) {
            self.retire(index);
        }
    }

    /// Removes a source, keeping its counts.
    fn retire(&mut self, index: usize) {
        let s = self.sources.swap_remove(index);
        self.stats.late += s.late;
        self.stats.concealed += s.concealed;
    }

    /// The next 20 ms the phone hears, into `out` ([`RoomListener::frame_samples`] long).
    /// Returns how many sources had audio in it. Call once per 20 ms tick.
    pub fn mix(&mut self, now: Instant, out: &mut [i16]) -> Result<usize, MediaError> {
        if out.len() != self.frame.len() {
            return Err(MediaError::ApiMisuse(
                "frame length differs from the listener's",
            ));
        }
        self.expire(now);
        let mut heard = 0;
        for s in &mut self.sources {
            s.play(now);
            heard += usize::from(s.ready);
        }
        match heard {
            0 => out.fill(0),
            1 => {
                if let Some(s) = self.sources.iter_mut().find(|s| s.ready) {
                    s.take(now, out);
                }
            }
            _ => {
                self.total.fill(0);
                for s in self.sources.iter_mut().filter(|s| s.ready) {
                    s.take(now, &mut self.frame);
                    limiter::accumulate(&mut self.total, &self.frame);
                }
                self.limiter
                    .apply(&self.total, out, &mut self.gains, self.steps);
            }
        }
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
