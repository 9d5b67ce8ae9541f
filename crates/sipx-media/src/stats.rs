//! Per-source receive statistics (RFC 3550 A.1 sequence validation, A.3 loss, A.8 jitter),
//! send counters, and the [`MediaStats`] snapshot a leg reports.

use std::time::{Duration, Instant};

use crate::ids::Ssrc;
use crate::rtcp::ReportBlock;

/// A jump larger than this (forward) is not a loss but a possible restart (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A packet this far behind the highest is late, not a restart.
const MAX_MISORDER: u16 = 100;
/// Sequential packets needed before a new source is believed.
const MIN_SEQUENTIAL: u8 = 2;

/// What the sequence check made of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// Counted.
    Valid,
    /// The source is still on probation (new source or after a restart); not counted.
    Probation,
    /// A large jump: counted only if the next packet follows it, as a sender restart.
    Jump,
}

/// Receive statistics for one source.
#[derive(Debug, Clone)]
pub struct ReceiveStats {
    ssrc: Ssrc,
    clock_rate: u32,
    /// False until the first packet: A.1 initialises from it.
    started: bool,
    max_seq: u16,
    /// Sequence wraps seen, shifted: the high 16 bits of the extended sequence number.
    cycles: u32,
    base_seq: u32,
    /// The sequence number after a suspicious jump; if it comes next, the sender restarted.
    bad_seq: u32,
    probation: u8,
    received: u64,
    /// Every packet from the source, counted or not by A.1 (probation, restarts, strays):
    /// what a call's statistics say arrived.
    arrived: u64,
    octets: u64,
    /// Loss counted before the last restart of the numbering (A.1 starts again from zero).
    lost_before: i64,
    expected_prior: u64,
    received_prior: u64,
    last_fraction: u8,
    /// Interarrival jitter (A.8) in timestamp units, kept as a float to avoid A.8's scaling.
    jitter: f64,
    /// The last packet counted for jitter: its timestamp and transit time.
    last_transit: Option<(u32, u32)>,
    /// Arrival times are measured in timestamp units from here.
    epoch: Instant,
    /// Middle bits of the last SR's NTP time and when it arrived, for LSR/DLSR.
    last_sr: Option<(u32, Instant)>,
}

impl ReceiveStats {
    /// Starts tracking a source seen first at `now`; `clock_rate` is the RTP clock in Hz.
    pub fn new(ssrc: Ssrc, clock_rate: u32, now: Instant) -> Self {
        ReceiveStats {
            ssrc,
            clock_rate: clock_rate.max(1),
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: u32::MAX,
            probation: MIN_SEQUENTIAL,
            received: 0,
            arrived: 0,
            octets: 0,
            lost_before: 0,
            expected_prior: 0,
            received_prior: 0,
            last_fraction: 0,
            jitter: 0.0,
            last_transit: None,
            epoch: now,
            last_sr: None,
        }
    }

    pub fn ssrc(&self) -> Ssrc {
        self.ssrc
    }

    /// Another stream of the peer takes over (a new SSRC): A.1 starts again for it, while
    /// what the call received and lost so far goes on. Duplicates (negative loss) of the old
    /// stream do not hide the new one's loss.
    pub fn new_source(&mut self, ssrc: Ssrc, now: Instant) {
        let kept = (self.arrived, self.octets, self.lost_total().max(0));
        *self = ReceiveStats::new(ssrc, self.clock_rate, now);
        (self.arrived, self.octets, self.lost_before) = kept;
    }

    /// Feeds one received packet: sequence validation, counters and jitter. `sampled`: whether
    /// its timestamp is when its audio was sampled (audio, comfort noise), which jitter needs;
    /// an RFC 4733 event's is when its key press began, and a sender that interleaves its
    /// events with audio would otherwise swing the transit time by the event's age.
    pub fn on_packet(
        &mut self,
        now: Instant,
        seq: u16,
        (timestamp, sampled): (u32, bool),
        payload_len: usize,
    ) -> SeqCheck {
        let check = self.update_seq(seq);
        self.arrived += 1;
        self.octets += payload_len as u64;
        if check == SeqCheck::Valid && sampled {
            self.update_jitter(now, timestamp);
        }
        check
    }

    /// RFC 3550 A.1 `update_seq`, in the RFC's own structure so the two can be compared.
    fn update_seq(&mut self, seq: u16) -> SeqCheck {
        if !self.started {
            // The very first packet: A.1 `init_seq`, then probation with max_seq = seq - 1.
            self.started = true;
            self.init_seq(seq);
            self.max_seq = seq.wrapping_sub(1);
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqCheck::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqCheck::Probation;
        }
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(1 << 16);
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets after a jump: the sender restarted its numbering.
                self.init_seq(seq);
                self.last_transit = None;
            } else {
                self.bad_seq = u32::from(seq.wrapping_add(1));
                return SeqCheck::Jump;
            }
        }
        // Otherwise a duplicate or reordered packet: counted, as A.1 does.
        self.received += 1;
        SeqCheck::Valid
    }

    fn init_seq(&mut self, seq: u16) {
        self.lost_before += self.cumulative_lost();
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        // Out of the 16-bit range: matches no packet until a jump sets it.
        self.bad_seq = u32::MAX;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, with D the change in transit time. Packets that
    /// share the last one's timestamp (every packet of an RFC 4733 key press) are left out:
    /// sent 50 ms apart with one sampling instant, each would count as 50 ms of jitter.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let arrival = duration_to_units(now.saturating_duration_since(self.epoch), self.clock_rate);
        // Transit times only matter as differences, so wrapping u32 arithmetic is exact.
        let transit = (arrival as u32).wrapping_sub(timestamp);
        match self.last_transit {
            Some((last_timestamp, _)) if last_timestamp == timestamp => return,
            Some((_, last)) => {
                let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
                self.jitter += (d - self.jitter) / 16.0;
            }
            None => {}
        }
        self.last_transit = Some((timestamp, transit));
    }

    /// Remembers an SR from this source, for the LSR/DLSR of our next report.
    pub fn on_sender_report(&mut self, now: Instant, ntp_middle32: u32) {
        self.last_sr = Some((ntp_middle32, now));
    }

    /// Extended highest sequence number received (cycles in the high 16 bits).
    pub fn extended_max(&self) -> u32 {
        self.cycles | u32::from(self.max_seq)
    }

    fn expected(&self) -> u64 {
        u64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1
    }

    /// Packets expected minus packets received since the start (negative with duplicates).
    pub fn cumulative_lost(&self) -> i64 {
        if self.received == 0 {
            return 0;
        }
        self.expected() as i64 - self.received as i64
    }

    /// Builds the report block for this source and starts a new loss interval (A.3).
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = if self.received == 0 {
            0
        } else {
            self.expected()
        };
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        self.last_fraction = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            // lost_interval <= expected_interval, so the quotient fits in 8 bits.
            ((lost_interval as u64) * 256 / expected_interval).min(255) as u8
        };
        let (lsr, dlsr) = match self.last_sr {
            Some((lsr, at)) => (
                lsr,
                duration_to_ntp_short(now.saturating_duration_since(at)),
            ),
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost: self.last_fraction,
            cumulative_lost: self.cumulative_lost().clamp(-0x80_0000, 0x7f_ffff) as i32,
            highest_seq: self.extended_max(),
            jitter: self.jitter as u32,
            lsr,
            dlsr,
        }
    }

    /// Packets counted by A.1 since the numbering last (re)started.
    pub fn packets(&self) -> u64 {
        self.received
    }

    /// Every packet that arrived from the source.
    pub fn arrived(&self) -> u64 {
        self.arrived
    }

    /// Loss over the source's whole life, across restarts of its numbering.
    pub fn lost_total(&self) -> i64 {
        self.lost_before + self.cumulative_lost()
    }

    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// The fraction lost computed for the last report, 0.0..=1.0.
    pub fn fraction_lost(&self) -> f32 {
        f32::from(self.last_fraction) / 256.0
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter_units(&self) -> f64 {
        self.jitter
    }

    /// Interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.clock_rate)
    }
}

/// What we sent, for SR sender info.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendStats {
    pub packets: u64,
    pub octets: u64,
    /// Timestamp and time of the last packet sent with a new timestamp, to place "now" on the
    /// RTP clock.
    pub last: Option<(u32, Instant)>,
}

impl SendStats {
    pub fn on_packet(&mut self, now: Instant, timestamp: u32, payload_len: usize) {
        self.packets += 1;
        self.octets += payload_len as u64;
        // The packets of one key press all carry its start's timestamp, over 100 ms and more:
        // the first one places it on the clock, the later ones would drag the clock back.
        if self.last.is_none_or(|(last, _)| last != timestamp) {
            self.last = Some((timestamp, now));
        }
    }
}

/// A snapshot of one leg's media quality, for events, logs and CDRs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MediaStats {
    pub packets_received: u64,
    pub octets_received: u64,
    /// Cumulative loss as seen here (RFC 3550 A.3).
    pub packets_lost: i64,
    /// Fraction lost over the last report interval, 0.0..=1.0.
    pub fraction_lost: f32,
    /// Interarrival jitter of what we receive.
    pub jitter_ms: f64,
    pub packets_sent: u64,
    pub octets_sent: u64,
    /// Round-trip time from the last report block about us that carried an LSR.
    pub rtt_ms: Option<f64>,
    /// What the far end reported about our stream.
    pub remote_fraction_lost: Option<f32>,
    pub remote_jitter_ms: Option<f64>,
}

impl MediaStats {
    /// These counts added to `earlier`'s (the same call before its RTCP session restarted);
    /// the rates, jitter and round trip are this session's.
    pub fn after(self, earlier: &MediaStats) -> MediaStats {
        MediaStats {
            packets_received: self.packets_received + earlier.packets_received,
            octets_received: self.octets_received + earlier.octets_received,
            packets_lost: self.packets_lost + earlier.packets_lost,
            packets_sent: self.packets_sent + earlier.packets_sent,
            octets_sent: self.octets_sent + earlier.octets_sent,
            ..self
        }
    }
}

/// Converts a duration into clock ticks at `rate` Hz (rounding down).
pub(crate) fn duration_to_units(d: Duration, rate: u32) -> u64 {
    (d.as_nanos() * u128::from(rate) / 1_000_000_000) as u64
}

/// Converts a duration into 1/65536 s units, saturating at u32::MAX (18 hours).
pub(crate) fn duration_to_ntp_short(d: Duration) -> u32 {
    u32::try_from((d.as_nanos() << 16) / 1_000_000_000).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: u32 = 8000;

    /// Feeds `seqs` 20 ms apart with matching timestamps; returns the checks.
    fn feed(stats: &mut ReceiveStats, t0: Instant, seqs: &[u16]) -> Vec<SeqCheck> {
        seqs.iter()
            .enumerate()
            .map(|(i, &s)| {
                let now = t0 + Duration::from_millis(20 * i as u64);
                stats.on_packet(now, s, (u32::from(s) * 160, true), 160)
            })
            .collect()
    }

    #[test]
    fn probation_then_counting_across_the_wrap() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        let seqs: Vec<u16> = (0..10u16).map(|i| 65530u16.wrapping_add(i)).collect();
        let checks = feed(&mut s, t0, &seqs);
        assert_eq!(checks[0], SeqCheck::Probation);
        assert!(
            checks[1..].iter().all(|c| *c == SeqCheck::Valid),
            "{checks:?}"
        );
        assert_eq!(s.packets(), 9);
        assert_eq!(s.extended_max(), 65536 + 3);
        assert_eq!(s.cumulative_lost(), 0);
    }

    #[test]
    fn loss_and_fraction_per_interval() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        // 0..=99 with every tenth missing (after probation): 9 lost of 99 expected.
        let seqs: Vec<u16> = (0..100u16).filter(|i| i % 10 != 5).collect();
        feed(&mut s, t0, &seqs);
        let block = s.report_block(t0);
        assert_eq!(block.cumulative_lost, 10);
        assert_eq!(block.highest_seq, 99);
        assert_eq!(block.fraction_lost, (10 * 256 / 99) as u8);
        assert_eq!((s.arrived(), s.lost_total()), (90, 10));
        // A clean interval next: fraction 0, cumulative unchanged.
        let more: Vec<u16> = (100..150u16).collect();
        feed(&mut s, t0, &more);
        let block = s.report_block(t0);
        assert_eq!((block.fraction_lost, block.cumulative_lost), (0, 10));
    }

    #[test]
    fn a_jump_is_believed_only_when_followed() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        feed(&mut s, t0, &[1, 2, 3]);
        assert_eq!(s.on_packet(t0, 20_000, (0, true), 1), SeqCheck::Jump);
        assert_eq!(s.on_packet(t0, 4, (0, true), 1), SeqCheck::Valid);
        assert_eq!(s.on_packet(t0, 30_000, (0, true), 1), SeqCheck::Jump);
        assert_eq!(s.on_packet(t0, 30_001, (0, true), 1), SeqCheck::Valid);
        // Restarted: the base moved, no loss for the gap.
        assert_eq!(s.packets(), 1);
        assert_eq!(s.cumulative_lost(), 0);
        // Every packet still arrived.
        assert_eq!(s.arrived(), 7);
    }

    #[test]
    fn loss_before_a_restart_of_the_numbering_is_kept_in_the_total() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        feed(&mut s, t0, &[1, 2, 3, 5, 6]);
        assert_eq!(s.lost_total(), 1);
        feed(&mut s, t0, &[40_000, 40_001, 40_003]);
        assert_eq!(s.cumulative_lost(), 1, "A.1 counts from the restart");
        assert_eq!(s.lost_total(), 2);
        assert_eq!(s.arrived(), 8);
    }

    #[test]
    fn jitter_matches_the_rfc_estimator() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        // Alternate 0 and 10 ms of extra delay: |D| = 80 units every packet after the first
        // two; J converges to 80 units = 10 ms.
        for i in 0..400u32 {
            let extra = if i % 2 == 0 { 0 } else { 10 };
            let now = t0 + Duration::from_millis(u64::from(20 * i + extra));
            s.on_packet(now, i as u16, (i * 160, true), 160);
        }
        assert!((s.jitter_ms() - 10.0).abs() < 0.1, "{}", s.jitter_ms());
        assert_eq!(s.report_block(t0).jitter, 79);
    }

    #[test]
    fn key_presses_stamped_once_add_no_jitter() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        // Audio on time, then a 100 ms key press: six event packets 20 ms apart, all with the
        // timestamp of its start, then audio again.
        let mut seq = 0u16;
        let mut at = |s: &mut ReceiveStats, ms: u64, ts: u32| {
            s.on_packet(t0 + Duration::from_millis(ms), seq, (ts, true), 160);
            seq += 1;
        };
        for i in 0..50u32 {
            at(&mut s, u64::from(20 * i), i * 160);
        }
        for k in 0..6u64 {
            at(&mut s, 1000 + 20 * k, 50 * 160);
        }
        at(&mut s, 56 * 20, 56 * 160);
        assert!(s.jitter_ms() < 0.5, "{}", s.jitter_ms());
    }

    #[test]
    fn dlsr_counts_from_the_sender_report() {
        let t0 = Instant::now();
        let mut s = ReceiveStats::new(Ssrc(1), RATE, t0);
        s.on_sender_report(t0, 0xabcd_0000);
        let block = s.report_block(t0 + Duration::from_millis(1500));
        assert_eq!((block.lsr, block.dlsr), (0xabcd_0000, 0x0001_8000));
    }
}
