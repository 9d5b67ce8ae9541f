//! Repairs senders whose RTP timestamps do not say how long their audio is. For G.711 and
//! G.722 a packet's payload length is its duration (`CodecKind::ticks_per_payload_byte`;
//! G.722's clock is 8000 Hz although it samples at 16 kHz, RFC 3551 §4.5.2). Two faults are
//! met in the field:
//! - a clock at twice the rate: some G.722 senders stamp at 16 kHz. Their timestamps run twice
//!   as fast as their audio, the jitter buffer sees a stream gaining 20 ms every packet and
//!   throws most of it away. Once a run of packets in sequence shows steps of exactly twice
//!   their length, their timestamps are halved from where the stream stood;
//! - a clock that does not move: gateways that stamp every packet alike. Taken as written,
//!   each packet would fall into a window that has already played. Once two packets in
//!   sequence share a timestamp, timestamps are counted from the sequence numbers instead,
//!   one packet's length per number.
//!
//! Either way a step of the packets' own length ends the repair: the sender's timestamps are
//! taken again, shifted to go on from where the repaired ones stood, so the jitter buffer
//! sees one stream throughout.

/// Packets in sequence, each a step of twice its length, before the halving starts.
const RUN: u8 = 8;
/// Packets in sequence with the same timestamp before counting starts: audio packets never
/// share one otherwise.
const STUCK_RUN: u8 = 1;

#[derive(Debug, Clone, Copy)]
enum Repair {
    /// A timestamp as sent, and the timestamp it was given: halve from there.
    Halve { from: u32, to: u32 },
    /// A sequence number, the timestamp it was given, and the packets' length.
    Count { seq: u16, to: u32, len: u32 },
    /// Healed: as sent, plus this.
    Shift(u32),
}

#[derive(Debug, Default)]
pub(super) struct ClockStep {
    /// The last packet: sequence number, timestamp as sent, duration in ticks, and the
    /// timestamp it was given.
    last: Option<(u16, u32, u32, u32)>,
    fast_run: u8,
    stuck_run: u8,
    repair: Option<Repair>,
}

impl ClockStep {
    /// The timestamp to use for a packet `len` ticks long (from its payload's length).
    pub fn timestamp(&mut self, seq: u16, ts: u32, len: u32) -> u32 {
        let in_order = self
            .last
            .is_some_and(|(last_seq, ..)| seq == last_seq.wrapping_add(1));
        if let Some((last_seq, last_ts, last_len, last_given)) = self.last
            && in_order
            && last_len > 0
        {
            let step = ts.wrapping_sub(last_ts);
            if step == last_len.wrapping_mul(2) {
                (self.fast_run, self.stuck_run) = (self.fast_run.saturating_add(1), 0);
                if self.fast_run >= RUN && !self.repairing() {
                    // From the previous packet's place, as given: the stream goes on.
                    self.repair = Some(Repair::Halve {
                        from: last_ts,
                        to: last_given,
                    });
                }
            } else if step == 0 {
                (self.fast_run, self.stuck_run) = (0, self.stuck_run.saturating_add(1));
                if self.stuck_run >= STUCK_RUN && !self.repairing() {
                    self.repair = Some(Repair::Count {
                        seq: last_seq,
                        to: last_given,
                        len: last_len,
                    });
                }
            } else if step == last_len {
                (self.fast_run, self.stuck_run) = (0, 0);
                if self.repairing() {
                    self.repair = Some(Repair::Shift(last_given.wrapping_sub(last_ts)));
                }
            }
        }
        let given = self.map(seq, ts);
        // Each packet in order is the new anchor, so the distances from it stay short: the
        // sequence numbers wrap every 65 536 packets, the timestamps every 2^32 ticks.
        if in_order {
            self.repair = match self.repair {
                Some(Repair::Halve { .. }) => Some(Repair::Halve {
                    from: ts,
                    to: given,
                }),
                Some(Repair::Count { len, .. }) => Some(Repair::Count {
                    seq,
                    to: given,
                    len,
                }),
                other => other,
            };
        }
        self.last = Some((seq, ts, len, given));
        given
    }

    /// The timestamp for a packet that tells no length (comfort noise, a codec whose payload
    /// does not say its duration): the repair in force, without learning from it.
    pub fn apply(&self, seq: u16, ts: u32) -> u32 {
        self.map(seq, ts)
    }

    fn repairing(&self) -> bool {
        matches!(
            self.repair,
            Some(Repair::Halve { .. } | Repair::Count { .. })
        )
    }

    fn map(&self, seq: u16, ts: u32) -> u32 {
        match self.repair {
            Some(Repair::Halve { from, to }) => to.wrapping_add(ts.wrapping_sub(from) / 2),
            Some(Repair::Count { seq: from, to, len }) => {
                // Signed: a packet reordered behind the anchor goes before it.
                let packets = i32::from(seq.wrapping_sub(from) as i16);
                to.wrapping_add_signed(packets.wrapping_mul(len as i32))
            }
            Some(Repair::Shift(by)) => ts.wrapping_add(by),
            None => ts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_at_twice_the_rate_is_halved_after_a_run_and_a_right_one_left_alone() {
        let mut right = ClockStep::default();
        for k in 0..50u32 {
            assert_eq!(
                right.timestamp(k as u16, 1000 + 160 * k, 160),
                1000 + 160 * k
            );
        }
        let mut fast = ClockStep::default();
        let given: Vec<u32> = (0..50u32)
            .map(|k| fast.timestamp(k as u16, (u32::MAX - 1000).wrapping_add(320 * k), 160))
            .collect();
        // Taken as sent until the run is complete, then 160 a packet from there on.
        for k in 1..usize::from(RUN) {
            assert_eq!(given[k].wrapping_sub(given[k - 1]), 320, "packet {k}");
        }
        for k in usize::from(RUN) + 1..50 {
            assert_eq!(given[k].wrapping_sub(given[k - 1]), 160, "packet {k}");
        }
        // A step of the packet's own length ends the repair, going on from where it was.
        let last = (u32::MAX - 1000).wrapping_add(320 * 49);
        assert_eq!(
            fast.timestamp(50, last.wrapping_add(160), 160),
            given[49].wrapping_add(160)
        );
        assert_eq!(
            fast.timestamp(51, last.wrapping_add(320), 160),
            given[49].wrapping_add(320)
        );
    }

    #[test]
    fn a_clock_that_does_not_move_is_counted_from_the_sequence_numbers() {
        let mut stuck = ClockStep::default();
        let start = u16::MAX - 3; // across the sequence wrap
        let mut given = Vec::new();
        for k in 0..20u16 {
            given.push(stuck.timestamp(start.wrapping_add(k), 7777, 160));
        }
        assert_eq!(given[0], 7777);
        for k in 1..20 {
            assert_eq!(given[k].wrapping_sub(given[k - 1]), 160, "packet {k}");
        }
        // Past a sequence wrap and beyond half the sequence space: still one step a packet.
        let mut long = ClockStep::default();
        let mut previous = long.timestamp(0, 42, 160);
        for k in 1..100_000u32 {
            let given = long.timestamp(k as u16, 42, 160);
            assert_eq!(given.wrapping_sub(previous), 160, "packet {k}");
            previous = given;
        }
        // A lost packet leaves its place; a late one goes back into it.
        let after_gap = stuck.timestamp(start.wrapping_add(21), 7777, 160);
        assert_eq!(after_gap.wrapping_sub(given[19]), 320);
        let late = stuck.timestamp(start.wrapping_add(20), 7777, 160);
        assert_eq!(late.wrapping_sub(given[19]), 160);
        // The sender's clock moving again ends it, where the counted one stood.
        let mut healed = ClockStep::default();
        for k in 0..5u16 {
            healed.timestamp(k, 500, 160);
        }
        assert_eq!(healed.timestamp(5, 660, 160), 500 + 5 * 160);
        assert_eq!(healed.timestamp(6, 820, 160), 500 + 6 * 160);
    }
}
