//! An adaptive jitter buffer for one incoming RTP stream.
//!
//! Packets go in as they arrive ([`JitterBuffer::push`]); every 20 ms the caller asks what to
//! play ([`JitterBuffer::tick`]). The buffer works in RTP timestamp units and never decodes:
//! each tick covers the next frame of timestamps (the *window*) and answers with the payloads
//! that start inside it, so a 10 ms packetisation gives two payloads per tick and a 60 ms one
//! gives one payload then two [`Playout::Continue`]s. The decoder side keeps a small PCM FIFO.
//!
//! How delay adapts (see `delay.rs` for the estimate):
//! - A talkspurt start (first packet, marker bit, or speech after silence) waits until the
//!   packet's ideal playout time: this re-centres the delay on the target in both directions,
//!   which absorbs clock drift and target changes at no cost to speech.
//! - In continuous speech the playout point is allowed to drift within about
//!   [-½, +2] frames of the ideal; beyond that one frame is repeated (concealed) or dropped.
//! - A packet whose window has already played is late and is dropped (counted).
//! - A timestamp jump the arrival times do not explain, or a sequence jump beyond the ring,
//!   resynchronises; a new SSRC restarts the stream.

mod delay;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::ids::{Pt, Ssrc};
use crate::rtp::RtpHeader;
use delay::DelayTracker;

/// A slot's sequence number before any packet (or since a restart) used it.
const NO_PACKET: i64 = i64::MIN;

/// Consecutive underrun ticks concealed before the stream is taken as silent.
const MAX_UNDERRUN_TICKS: u32 = 5;

/// Settings of one buffer. Durations are converted to timestamp units at `clock_rate`.
#[derive(Debug, Clone)]
pub struct JitterConfig {
    /// RTP clock rate of the stream (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Playout tick (20 ms).
    pub frame: Duration,
    /// The target delay never goes below this.
    pub min_delay: Duration,
    /// The target delay before any jitter has been measured.
    pub initial_delay: Duration,
    /// The target delay never goes above this, and the playout delay is cut back to it.
    pub max_delay: Duration,
    /// Ring size in packets (rounded up to a power of two); bounds memory and reordering reach.
    pub capacity: usize,
    /// Largest payload kept; each slot preallocates this much.
    pub max_payload: usize,
    /// Payload type of comfort noise (RFC 3389), reported as such instead of being decoded.
    pub cn_pt: Option<Pt>,
    /// A timestamp that disagrees with arrival times by more than this resynchronises.
    pub resync_after: Duration,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            clock_rate: 8000,
            frame: Duration::from_millis(20),
            min_delay: Duration::from_millis(20),
            initial_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(200),
            capacity: 64,
            max_payload: 1500,
            cn_pt: Some(Pt::CN),
            resync_after: Duration::from_secs(1),
        }
    }
}

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Buffered,
    /// Buffered after throwing the old stream away (timestamp or sequence jump, new SSRC).
    Resynced,
    /// Here before: buffered, played or dropped already.
    Duplicate,
    /// Its window already played; dropped.
    Late,
    /// Larger than `max_payload`; dropped.
    TooLarge,
}

/// A packet held by the buffer, as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferedPacket<'a> {
    pub seq: u16,
    pub timestamp: u32,
    pub marker: bool,
    pub pt: Pt,
    pub payload: &'a [u8],
    /// Timestamp units of audio it carries, once the next packet in sequence showed them.
    pub units: Option<u32>,
}

/// The payloads that start inside one tick's window, in order (comfort noise excluded).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    slots: &'a [Slot],
    payloads: Payloads<'a>,
    first: i64,
    end: i64,
    cn_pt: Option<Pt>,
    gaps: Gaps,
    packet_units: Option<u32>,
    carry: u32,
}

/// Audio missing inside one tick's window, in timestamp units: before its first packet (the
/// packet that should have started the window was lost) and after its last one (the packet
/// that should have ended it was lost or is late). Only with packets shorter than the frame
/// (10 ms) can a window be part played, part missing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gaps {
    pub before: u32,
    pub after: u32,
}

impl<'a> Frame<'a> {
    /// What of this window no packet covers: to conceal around the packets' audio, so the
    /// window still gives a whole frame.
    pub fn gaps(&self) -> Gaps {
        self.gaps
    }

    /// How long the stream's packets last on its timeline (timestamp units, learned from
    /// consecutive packets): how much of the window the last of these packets stands for.
    /// `None` until two consecutive packets have shown it.
    pub fn packet_units(&self) -> Option<u32> {
        self.packet_units
    }

    /// How much audio handed out before this window still plays in it (timestamp units):
    /// what earlier packets and concealment may have left queued, and no more. A packet
    /// taken whole before the next one showed its length, or one whose payload says more
    /// than its timestamps, leaves no delay past the packet after it.
    pub fn carry(&self) -> u32 {
        self.carry
    }

    pub fn packets(&self) -> impl Iterator<Item = BufferedPacket<'a>> + 'a {
        let (slots, payloads, cn_pt) = (self.slots, self.payloads, self.cn_pt);
        (self.first..self.end).filter_map(move |ext| {
            let index = slot_index(ext, slots.len() - 1);
            let slot = &slots[index];
            (slot.state == SlotState::Played && slot.ext_seq == ext && Some(slot.pt) != cn_pt)
                .then(|| slot.view(payloads.of(index)))
        })
    }
}

/// What to play for one tick.
#[derive(Debug, Clone, Copy)]
pub enum Playout<'a> {
    /// Decode these payloads (their audio may extend past this tick).
    Frame(Frame<'a>),
    /// Nothing new starts here: the audio of an earlier frame or loss still covers this tick.
    Continue,
    /// A packet is missing: conceal `units` of timestamp (a frame while waiting for a late
    /// packet, else up to the missing packet's length, the ticks after it `Continue`). `fec`
    /// is the packet after the gap when it is already here, for codecs with in-band FEC (Opus).
    Lost {
        fec: Option<BufferedPacket<'a>>,
        units: u32,
    },
    /// Comfort noise: `update` carries a new RFC 3389 payload, `None` means keep generating.
    ComfortNoise { update: Option<BufferedPacket<'a>> },
    /// Nothing to play: not started, or silence without comfort noise.
    Empty,
}

/// Counters and levels, for stats and tests. `depth_ms` is measured from the playout point to
/// the end of the newest packet; during a silence the playout point waits, so it can exceed
/// the delay the next talkspurt will actually get.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    pub buffered: usize,
    /// Audio queued ahead of the playout point.
    pub depth_ms: f64,
    pub target_ms: f64,
    pub played: u64,
    /// Packets that never came (their sequence numbers passed over; late ones count in
    /// `late`, and numbers other packets of the stream took, such as key presses, in neither).
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    pub too_large: u64,
    /// Frames dropped to bring the delay back down (sender clock fast, target fell).
    pub skipped: u64,
    /// Frames concealed to let the delay grow (sender clock slow, target rose).
    pub stretched: u64,
    /// Ticks concealed, wholly or in part, while waiting for a packet that had not arrived
    /// (lost, late, or none: a talkspurt's end).
    pub underruns: u64,
    pub resyncs: u64,
    pub ssrc_changes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Empty,
    Buffered,
    /// Handed out by the last tick; free for reuse.
    Played,
}

#[derive(Debug, Clone)]
struct Slot {
    state: SlotState,
    ext_seq: i64,
    ts: i64,
    seq: u16,
    timestamp: u32,
    marker: bool,
    pt: Pt,
    /// Bytes of its payload, kept at its place in the buffer's `payloads`.
    len: usize,
    /// Timestamp units of audio it carries, once the next packet in sequence told (0: not
    /// known yet, the stream's `packet_units` stands in). Senders may change packet lengths
    /// mid-stream: a 60 ms packet after 20 ms ones still lasts 60 ms.
    units: i64,
}

impl Slot {
    /// The packet, with `payload` its place in the buffer's payloads.
    fn view<'a>(&self, payload: &'a [u8]) -> BufferedPacket<'a> {
        BufferedPacket {
            seq: self.seq,
            timestamp: self.timestamp,
            marker: self.marker,
            pt: self.pt,
            payload: payload.get(..self.len).unwrap_or_default(),
            units: (self.units > 0).then(|| units_u32(self.units)),
        }
    }
}

/// Every slot's payload bytes in one block, `max` bytes per slot: one zeroed allocation per
/// buffer instead of one per slot (a leg is made per call; under call churn the per-slot
/// allocations and copies were most of a new leg's cost).
#[derive(Debug, Clone, Copy)]
struct Payloads<'a> {
    bytes: &'a [u8],
    max: usize,
}

impl<'a> Payloads<'a> {
    fn of(self, index: usize) -> &'a [u8] {
        self.bytes
            .get(payload_place(index, self.max, self.max))
            .unwrap_or_default()
    }
}

/// Where slot `index`'s first `len` payload bytes live in the block (`max` bytes per slot).
fn payload_place(index: usize, max: usize, len: usize) -> std::ops::Range<usize> {
    let start = index * max;
    start..start + len
}

/// The ring slot of an extended sequence number; `mask` is the capacity (a power of two)
/// minus one, so this is a non-negative modulo even for negative numbers.
fn slot_index(ext_seq: i64, mask: usize) -> usize {
    (ext_seq as usize) & mask
}

/// Extends 16-bit sequence numbers and 32-bit timestamps to i64 across wraps.
#[derive(Debug, Clone, Copy, Default)]
struct Extender {
    highest_seq: i64,
    last_seq: u16,
    highest_ts: i64,
    last_ts: u32,
}

impl Extender {
    fn start(seq: u16, ts: u32) -> Self {
        Extender {
            highest_seq: i64::from(seq),
            last_seq: seq,
            highest_ts: i64::from(ts),
            last_ts: ts,
        }
    }

    /// The extended number of `seq`, the nearest to the highest seen.
    fn seq_of(&self, seq: u16) -> i64 {
        self.highest_seq + i64::from(seq.wrapping_sub(self.last_seq) as i16)
    }

    fn extend(&mut self, seq: u16, ts: u32) -> (i64, i64) {
        let ext_seq = self.seq_of(seq);
        if ext_seq > self.highest_seq {
            (self.highest_seq, self.last_seq) = (ext_seq, seq);
        }
        let ext_ts = self.highest_ts + i64::from(ts.wrapping_sub(self.last_ts) as i32);
        if ext_ts > self.highest_ts {
            (self.highest_ts, self.last_ts) = (ext_ts, ts);
        }
        (ext_seq, ext_ts)
    }
}

/// The stream being played: where playout is and what it has seen.
#[derive(Debug, Clone, Copy)]
struct Stream {
    ext: Extender,
    /// Start of the next window, in extended timestamp units.
    cursor: i64,
    /// Packets before this sequence number are played or given up.
    play_seq: i64,
    /// Concealed or skipped audio reaches this far.
    covered_until: i64,
    /// Timestamp of the last audio packet handed out: its audio lasts one packet time, which
    /// is only known once the next packet has arrived, so it is applied when asked.
    last_audio_ts: Option<i64>,
    /// That packet's sequence number: its slot tells its own length once the next packet
    /// showed it.
    last_audio_ext: i64,
    /// Playout has begun (before it, a reordered earlier packet may move the start back).
    started: bool,
    talking: bool,
    in_cn: bool,
    /// The sequence number that would confirm a backwards restart of the sender.
    suspect: Option<u16>,
    underrun_ticks: u32,
    /// Timestamp units per packet, learned from consecutive packets (until then, a frame).
    packet_units: i64,
    /// Whether `packet_units` was learned.
    packet_units_learned: bool,
    last_pushed: Option<(i64, i64)>,
}

impl Stream {
    /// How far audio already handed out or concealed reaches.
    fn covered(&self, slots: &[Slot], mask: usize) -> i64 {
        let played = self.last_audio_ts.map_or(i64::MIN, |ts| {
            let slot = &slots[slot_index(self.last_audio_ext, mask)];
            match slot.ext_seq == self.last_audio_ext {
                true => ts + self.units_of(slot),
                // Its slot holds a newer packet already: the stream's length stands in.
                false => ts + self.packet_units,
            }
        });
        self.covered_until.max(played)
    }

    /// How long the packet in `slot` lasts: its own length if known, else the stream's.
    fn units_of(&self, slot: &Slot) -> i64 {
        match slot.units {
            0 => self.packet_units,
            known => known,
        }
    }
}

/// The adaptive jitter buffer. All memory is allocated in [`JitterBuffer::new`].
#[derive(Debug)]
pub struct JitterBuffer {
    frame: i64,
    max_delay: i64,
    resync_units: i64,
    cn_pt: Option<Pt>,
    max_payload: usize,
    slots: Vec<Slot>,
    /// The slots' payload bytes, `max_payload` per slot ([`Payloads`]).
    payloads: Box<[u8]>,
    /// `slots.len() - 1`.
    mask: usize,
    delay: DelayTracker,
    ssrc: Option<Ssrc>,
    stream: Option<Stream>,
    /// Sequence range handed out by the last tick as a frame.
    played: (i64, i64),
    stats: JitterStats,
    rate: u32,
}

impl JitterBuffer {
    pub fn new(config: &JitterConfig) -> Self {
        let rate = config.clock_rate.max(1);
        let units = |d: Duration| crate::stats::duration_to_units(d, rate) as i64;
        let frame = units(config.frame).max(1);
        let capacity = config.capacity.clamp(4, 1 << 14).next_power_of_two();
        let slot = Slot {
            state: SlotState::Empty,
            ext_seq: NO_PACKET,
            ts: 0,
            seq: 0,
            timestamp: 0,
            marker: false,
            pt: Pt(0),
            len: 0,
            units: 0,
        };
        JitterBuffer {
            frame,
            max_delay: units(config.max_delay),
            resync_units: units(config.resync_after).max(4 * frame),
            cn_pt: config.cn_pt,
            max_payload: config.max_payload,
            slots: vec![slot; capacity],
            payloads: vec![0; capacity * config.max_payload].into_boxed_slice(),
            mask: capacity - 1,
            delay: DelayTracker::new(
                rate,
                units(Duration::from_secs(2)),
                units(config.initial_delay),
                units(config.min_delay),
                units(config.max_delay),
                frame,
            ),
            ssrc: None,
            stream: None,
            played: (0, 0),
            stats: JitterStats::default(),
            rate,
        }
    }

    /// A packet of the stream that does not come here took `header`'s sequence number (an
    /// RFC 4733 event: same source, same numbering, to the DTMF receiver): that number is not
    /// a loss.
    pub fn note_other_packet(&mut self, header: &RtpHeader) {
        let Some(stream) = self
            .stream
            .as_ref()
            .filter(|_| self.ssrc == Some(header.ssrc))
        else {
            return;
        };
        let ext_seq = stream.ext.seq_of(header.seq);
        let slot = &mut self.slots[slot_index(ext_seq, self.mask)];
        // Only a free slot: one holding a packet, or handed out by the last tick, stays.
        if slot.state == SlotState::Empty {
            slot.ext_seq = ext_seq;
        }
    }

    /// Offers one received packet (not telephone-events: those go to the DTMF receiver).
    pub fn push(&mut self, now: Instant, header: &RtpHeader, payload: &[u8]) -> Pushed {
        if payload.len() > self.max_payload {
            self.stats.too_large += 1;
            return Pushed::TooLarge;
        }
        let mut outcome = Pushed::Buffered;
        if self.ssrc != Some(header.ssrc) {
            if self.ssrc.is_some() {
                self.stats.ssrc_changes += 1;
                outcome = Pushed::Resynced;
            }
            self.ssrc = Some(header.ssrc);
            self.restart();
        }
        let capacity = self.slots.len() as i64;
        let stream = self
            .stream
            .get_or_insert_with(|| new_stream(header, self.frame));
        let (ext_seq, ts) = stream.ext.extend(header.seq, header.timestamp);
        let sample = self.delay.measure(now, ts);
        let far_behind = ext_seq < stream.play_seq - capacity;
        let jumped = if far_behind {
            // A lone stray old packet is only late; two in sequence mean a sender restart.
            let restart = stream.suspect == Some(header.seq);
            stream.suspect = Some(header.seq.wrapping_add(1));
            restart
        } else {
            stream.suspect = None;
            // The next packet in sequence stamped more than a frame before the one ahead of
            // it: the sender rebased its clock (some do after a hold or a media switch; RFC
            // 3550 lets a stream's timestamps jump). Its packets would all be late until the
            // old clock was caught up: start over from it instead.
            let rebased = stream.last_pushed.is_some_and(|(last_seq, last_ts)| {
                ext_seq == last_seq + 1 && ts < last_ts - self.frame
            });
            rebased
                || ext_seq >= stream.play_seq
                    && (ext_seq >= stream.play_seq + capacity
                        || self
                            .delay
                            .base()
                            .is_some_and(|b| (sample.transit - b).abs() > self.resync_units))
        };
        if jumped {
            self.stats.resyncs += 1;
            self.restart();
            return match self.push(now, header, payload) {
                Pushed::Buffered => Pushed::Resynced,
                other => other,
            };
        }
        if far_behind {
            self.stats.late += 1;
            return Pushed::Late;
        }
        let index = slot_index(ext_seq, self.mask);
        if self.slots[index].ext_seq == ext_seq {
            // Here before (buffered, played or dropped): a copy, as a redundant path or an
            // SBC's failover sends. Its lateness says nothing of the network's delay.
            self.stats.duplicates += 1;
            return Pushed::Duplicate;
        }
        self.delay.record(sample);
        if !stream.started && ext_seq < stream.play_seq {
            // Reordered before playout began: move the start back to it.
            stream.play_seq = ext_seq;
            stream.cursor = stream.cursor.min(ts);
            stream.covered_until = stream.cursor;
        }
        if ext_seq < stream.play_seq || ts < stream.cursor {
            self.stats.late += 1;
            return Pushed::Late;
        }
        let slot = &mut self.slots[index];
        slot.state = SlotState::Buffered;
        slot.ext_seq = ext_seq;
        slot.ts = ts;
        slot.seq = header.seq;
        slot.timestamp = header.timestamp;
        slot.marker = header.marker;
        slot.pt = header.pt;
        slot.len = payload.len();
        slot.units = 0;
        let place = payload_place(index, self.max_payload, payload.len());
        if let Some(place) = self.payloads.get_mut(place) {
            place.copy_from_slice(payload);
        }
        self.learn_lengths(ext_seq, ts);
        outcome
    }

    /// Learns packet lengths from the timestamps of consecutive packets (believed between
    /// half a frame and six frames, i.e. 10..=120 ms with 20 ms frames): the packets on
    /// either side of the one just in (`ext_seq` at `ts`) get their own, and the one before
    /// it gives the stream's packetisation, which stands in for lengths not yet known.
    fn learn_lengths(&mut self, ext_seq: i64, ts: i64) {
        let plausible = self.frame / 2..=self.frame * 6;
        let before = slot_index(ext_seq - 1, self.mask);
        if self.slots[before].ext_seq == ext_seq - 1 {
            let units = ts - self.slots[before].ts;
            if plausible.contains(&units) {
                self.slots[before].units = units;
                if let Some(stream) = self.stream.as_mut() {
                    stream.packet_units = units;
                    stream.packet_units_learned = true;
                }
            }
        }
        let after = slot_index(ext_seq + 1, self.mask);
        if self.slots[after].ext_seq == ext_seq + 1 {
            let units = self.slots[after].ts - ts;
            if plausible.contains(&units) {
                let index = slot_index(ext_seq, self.mask);
                self.slots[index].units = units;
            }
        }
        if let Some(stream) = self.stream.as_mut() {
            stream.last_pushed = Some((ext_seq, ts));
        }
    }

    /// Forgets the stream (not the measured target): the next packet starts a new one.
    fn restart(&mut self) {
        for slot in &mut self.slots {
            slot.state = SlotState::Empty;
            slot.ext_seq = NO_PACKET;
        }
        self.stream = None;
        self.played = (0, 0);
        self.delay.reset_base();
    }

    /// What to play for the next frame; call once per frame period.
    pub fn tick(&mut self, now: Instant) -> Playout<'_> {
        self.release_played();
        self.delay.on_tick();
        let Some(ideal) = self.delay.ideal_cursor(now) else {
            return Playout::Empty;
        };
        let decision = self.decide(ideal);
        self.render(decision)
    }

    fn release_played(&mut self) {
        let (first, end) = std::mem::take(&mut self.played);
        for ext in first..end {
            let slot = &mut self.slots[slot_index(ext, self.mask)];
            if slot.state == SlotState::Played {
                slot.state = SlotState::Empty;
            }
        }
    }

    /// The first buffered packet at or after the playout point, dropping any left behind it
    /// (the cursor can jump past packets when it re-centres or skips).
    fn next_buffered(&mut self) -> Option<(i64, i64, bool)> {
        let stream = self.stream.as_mut()?;
        let end = stream.ext.highest_seq;
        for ext in stream.play_seq..=end {
            let slot = &mut self.slots[slot_index(ext, self.mask)];
            if slot.state != SlotState::Buffered || slot.ext_seq != ext {
                continue;
            }
            if slot.ts < stream.cursor {
                slot.state = SlotState::Empty;
                self.stats.late += 1;
                continue;
            }
            return Some((ext, slot.ts, slot.marker));
        }
        None
    }

    /// Chooses this tick's output and moves the playout point. Bounded: each pass either
    /// returns or moves the cursor forward over buffered packets.
    fn decide(&mut self, ideal: i64) -> Decision {
        let f = self.frame;
        for _ in 0..=self.slots.len() + 1 {
            let next = self.next_buffered();
            let Some(stream) = self.stream.as_mut() else {
                return Decision::Empty;
            };
            let c = stream.cursor;
            let Some((ext, ts, marker)) = next else {
                return self.on_nothing_buffered();
            };
            let in_window = ts < c + f;
            let covered = stream.covered(&self.slots, self.mask);
            if !in_window && c < covered {
                // Audio handed out earlier still plays here. When it ends inside this window
                // (30 ms packets), the rest is concealed now rather than found short later:
                // as the missing packet's (a sequence gap) or as a talkspurt's tail.
                if covered < c + f {
                    if ext > stream.play_seq {
                        match self.conceal_loss(ext, ts) {
                            Some(decision) => return decision,
                            None => continue,
                        }
                    }
                    return self.conceal_tail();
                }
                stream.cursor += f;
                return Decision::Continue;
            }
            let spurt_start = !stream.talking || (marker && !in_window);
            if spurt_start {
                if ideal < ts {
                    // Early for this talkspurt: let the silence last a little longer.
                    return silence(stream);
                }
                stream.cursor = ts.max(c);
                stream.started = true;
                stream.talking = true;
                stream.underrun_ticks = 0;
                return self.play_window();
            }
            if !in_window {
                if ext > stream.play_seq {
                    match self.conceal_loss(ext, ts) {
                        Some(decision) => return decision,
                        None => continue,
                    }
                }
                // No sequence gap: the sender went quiet without a marker (DTX).
                stream.talking = false;
                continue;
            }
            let error = ideal - c;
            // Cut back to the largest delay with half a frame to spare: a skip moves the
            // cursor a whole frame, and without the spare a target at its maximum would land
            // it under the stretch threshold below, to drop and conceal frames by turns.
            if error >= 2 * f || error + self.delay.target() > self.max_delay + f / 2 {
                self.skip_window();
                continue;
            }
            if error < -f / 2 {
                self.stats.stretched += 1;
                return Decision::Lost {
                    fec: None,
                    units: f,
                };
            }
            return self.play_window();
        }
        Decision::Empty
    }

    fn on_nothing_buffered(&mut self) -> Decision {
        let Some(stream) = self.stream.as_mut() else {
            return Decision::Empty;
        };
        let (c, covered) = (stream.cursor, stream.covered(&self.slots, self.mask));
        if c < covered {
            if covered < c + self.frame && stream.talking {
                // The packet to go on from it is not here (it is late now if it comes).
                return self.conceal_tail();
            }
            stream.cursor += self.frame;
            return Decision::Continue;
        }
        if stream.talking && stream.underrun_ticks < MAX_UNDERRUN_TICKS {
            // Probably a late packet: conceal and keep the playout point, so it still plays.
            stream.underrun_ticks += 1;
            self.stats.underruns += 1;
            return Decision::Lost {
                fec: None,
                units: self.frame,
            };
        }
        stream.talking = false;
        silence(stream)
    }

    /// The audio handed out ends inside this window: conceal the rest of it, so the window
    /// still gives a whole frame, and move on.
    fn conceal_tail(&mut self) -> Decision {
        let f = self.frame;
        let Some(stream) = self.stream.as_mut() else {
            return Decision::Empty;
        };
        let (c, covered) = (stream.cursor, stream.covered(&self.slots, self.mask));
        stream.cursor += f;
        stream.covered_until = c + f;
        self.stats.underruns += 1;
        Decision::Lost {
            fec: None,
            units: c + f - covered,
        }
    }

    /// A packet is missing before `next` (at sequence `ext`, timestamp `ts`): conceal from
    /// where the audio handed out ends, one packet's worth (at least to the end of this
    /// window, at most up to `next`). The playout point moves one frame; the ticks the
    /// concealed audio still covers `Continue`. `None`: the ticks spent waiting for the
    /// missing packet already concealed all of it, and `next` plays now.
    fn conceal_loss(&mut self, ext: i64, ts: i64) -> Option<Decision> {
        let f = self.frame;
        let stream = self.stream.as_mut()?;
        // Ticks that waited for this packet (underruns) concealed its start, holding the
        // playout point in case it came late. It was lost: that concealment stands for it,
        // and the playout point moves over it, so the wait adds no delay (with 60 ms packets
        // it took two ticks, whose frames a later skip would have cut from real audio).
        let waited = i64::from(stream.underrun_ticks) * f;
        stream.underrun_ticks = 0;
        stream.cursor = (stream.cursor + waited).min(ts);
        let c = stream.cursor;
        let from = stream.play_seq;
        if c >= ts {
            stream.play_seq = ext;
            stream.covered_until = ts;
            self.stats.lost += never_came(&self.slots, self.mask, from, ext);
            return None;
        }
        let start = stream.covered(&self.slots, self.mask).max(c);
        let end = (start + stream.packet_units).max(c + f).min(ts).max(start);
        // The packet after a single loss, for Opus FEC; comfort noise carries none.
        let next_pt = self.slots[slot_index(ext, self.mask)].pt;
        let fec = (ext == stream.play_seq + 1 && Some(next_pt) != self.cn_pt).then_some(ext);
        let packets = ((end - start) / stream.packet_units.max(1)).max(1);
        stream.play_seq = (stream.play_seq + packets).min(ext);
        stream.covered_until = end;
        stream.cursor += f;
        let to = stream.play_seq;
        self.stats.lost += never_came(&self.slots, self.mask, from, to);
        Some(Decision::Lost {
            fec,
            units: end - start,
        })
    }

    /// Drops what starts in the current window to cut the delay by a frame (or a packet).
    fn skip_window(&mut self) {
        let f = self.frame;
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let c = stream.cursor;
        let mut end = c + f;
        for ext in stream.play_seq..=stream.ext.highest_seq {
            let slot = &mut self.slots[slot_index(ext, self.mask)];
            if slot.state != SlotState::Buffered || slot.ext_seq != ext {
                continue;
            }
            if slot.ts >= c + f {
                break;
            }
            slot.state = SlotState::Empty;
            stream.play_seq = ext + 1;
            end = end.max(slot.ts + stream.units_of(slot));
        }
        stream.cursor = end;
        stream.covered_until = end;
        self.stats.skipped += 1;
    }

    /// Hands out everything that starts in the current window, with what of the window no
    /// packet covers (`Gaps`): a lost packet before the first one handed out (a sequence gap),
    /// and the rest of the window after the last one, whose next packet has not come.
    fn play_window(&mut self) -> Decision {
        let f = self.frame;
        let cn_pt = self.cn_pt;
        let Some(stream) = self.stream.as_mut() else {
            return Decision::Empty;
        };
        let c = stream.cursor;
        let first = stream.play_seq;
        let start = stream.covered(&self.slots, self.mask).max(c);
        let (mut audio, mut last_cn) = (0, None);
        let mut gaps = Gaps::default();
        let (mut audio_end, mut missing) = (None, 0);
        for ext in stream.play_seq..=stream.ext.highest_seq {
            let index = slot_index(ext, self.mask);
            let slot = &self.slots[index];
            if slot.state != SlotState::Buffered || slot.ext_seq != ext {
                continue;
            }
            if slot.ts >= c + f {
                break;
            }
            missing += never_came(&self.slots, self.mask, stream.play_seq, ext);
            let slot = &mut self.slots[index];
            slot.state = SlotState::Played;
            stream.play_seq = ext + 1;
            if Some(slot.pt) == cn_pt {
                last_cn = Some(ext);
                audio_end = None;
            } else {
                if audio == 0 && ext > first && slot.ts > start {
                    gaps.before = units_u32(slot.ts - start);
                }
                audio += 1;
                stream.last_audio_ts = Some(slot.ts);
                stream.last_audio_ext = ext;
                audio_end = Some(slot.ts + stream.units_of(slot));
            }
        }
        self.played = (first, stream.play_seq);
        stream.cursor += f;
        stream.underrun_ticks = 0;
        if audio > 0 {
            if let Some(end) = audio_end
                && end < c + f
            {
                // Lost or late (it is late now if it comes), or the talkspurt's end.
                gaps.after = units_u32(c + f - end);
                stream.covered_until = c + f;
                self.stats.underruns += 1;
            }
            self.stats.lost += missing;
            stream.in_cn = false;
            self.stats.played += audio;
            return Decision::Frame {
                gaps,
                carry: start - c,
            };
        }
        stream.talking = false;
        stream.in_cn = true;
        Decision::ComfortNoise(last_cn)
    }

    fn render(&self, decision: Decision) -> Playout<'_> {
        let payloads = Payloads {
            bytes: &self.payloads,
            max: self.max_payload,
        };
        let view = |ext: i64| {
            let index = slot_index(ext, self.mask);
            self.slots[index].view(payloads.of(index))
        };
        match decision {
            Decision::Frame { gaps, carry } => Playout::Frame(Frame {
                slots: &self.slots,
                payloads,
                first: self.played.0,
                end: self.played.1,
                cn_pt: self.cn_pt,
                gaps,
                packet_units: self
                    .stream
                    .as_ref()
                    .filter(|s| s.packet_units_learned)
                    .map(|s| units_u32(s.packet_units)),
                carry: units_u32(carry),
            }),
            Decision::Continue => Playout::Continue,
            Decision::Lost { fec, units } => Playout::Lost {
                fec: fec.map(view),
                units: units_u32(units),
            },
            Decision::ComfortNoise(update) => Playout::ComfortNoise {
                update: update.map(view),
            },
            Decision::Empty => Playout::Empty,
        }
    }

    /// How much audio the peer's packets carry, as learned from consecutive packets in
    /// sequence (the frame length until then).
    pub fn packet_time(&self) -> Duration {
        let units = self.stream.as_ref().map_or(self.frame, |s| s.packet_units);
        Duration::from_micros(
            (units.max(1) as u64).saturating_mul(1_000_000) / u64::from(self.rate),
        )
    }

    /// Counters and current levels.
    pub fn stats(&self) -> JitterStats {
        let to_ms = |units: i64| units as f64 * 1000.0 / f64::from(self.rate);
        let mut stats = self.stats;
        stats.buffered = self
            .slots
            .iter()
            .filter(|s| s.state == SlotState::Buffered)
            .count();
        stats.target_ms = to_ms(self.delay.target());
        stats.depth_ms = match &self.stream {
            Some(s) if stats.buffered > 0 => {
                to_ms((s.ext.highest_ts + s.packet_units - s.cursor).max(0))
            }
            _ => 0.0,
        };
        stats
    }
}

/// A tick's choice, before borrowing the slots for the caller.
#[derive(Debug, Clone, Copy)]
enum Decision {
    Frame { gaps: Gaps, carry: i64 },
    Continue,
    Lost { fec: Option<i64>, units: i64 },
    ComfortNoise(Option<i64>),
    Empty,
}

/// A span (at most a few frames) as the `u32` the playout reports.
fn units_u32(units: i64) -> u32 {
    u32::try_from(units.max(0)).unwrap_or(u32::MAX)
}

/// How many of the sequence numbers `from..to` never came: losses. One that came late, or
/// that another packet of the stream took (`note_other_packet`), left its number in its slot.
/// At most a ring's worth is looked at.
fn never_came(slots: &[Slot], mask: usize, from: i64, to: i64) -> u64 {
    let to = to.min(from.saturating_add(slots.len() as i64));
    (from..to)
        .filter(|&e| slots[slot_index(e, mask)].ext_seq != e)
        .count() as u64
}

fn silence(stream: &Stream) -> Decision {
    if stream.in_cn {
        Decision::ComfortNoise(None)
    } else {
        Decision::Empty
    }
}

fn new_stream(header: &RtpHeader, frame: i64) -> Stream {
    let ext = Extender::start(header.seq, header.timestamp);
    Stream {
        ext,
        cursor: i64::from(header.timestamp),
        play_seq: i64::from(header.seq),
        covered_until: i64::from(header.timestamp),
        last_audio_ts: None,
        last_audio_ext: NO_PACKET,
        started: false,
        talking: false,
        in_cn: false,
        suspect: None,
        underrun_ticks: 0,
        packet_units: frame,
        packet_units_learned: false,
        last_pushed: None,
    }
}
