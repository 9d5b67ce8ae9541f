//! Repairs a sender whose RTP clock runs at twice the rate RFC 3551 gives its codec. For G.711
//! and G.722 a packet's payload length is its duration (`CodecKind::ticks_per_payload_byte`;
//! G.722's clock is 8000 Hz although it samples at 16 kHz, RFC 3551 §4.5.2), and some G.722
//! senders stamp at 16 kHz instead. Taken as written, their timestamps run twice as fast as their audio: the
//! jitter buffer sees a stream gaining 20 ms every packet and throws most of it away. Once
//! a run of packets in sequence shows steps of exactly twice their length, their timestamps
//! are halved (from where the stream stood) before anything else sees them; a step of their
//! length ends the repair.

/// Packets in sequence, each a step of twice its length, before the repair starts.
const RUN: u8 = 8;

#[derive(Debug, Default)]
pub(super) struct ClockStep {
    /// The last packet: sequence number, timestamp as sent, duration in ticks.
    last: Option<(u16, u32, u32)>,
    run: u8,
    /// While repairing: a timestamp as sent, and the timestamp it was given.
    anchor: Option<(u32, u32)>,
}

impl ClockStep {
    /// The timestamp to use for a packet `len` ticks long (from its payload's length).
    pub fn timestamp(&mut self, seq: u16, ts: u32, len: u32) -> u32 {
        if let Some((last_seq, last_ts, last_len)) = self.last
            && seq == last_seq.wrapping_add(1)
            && last_len > 0
        {
            let step = ts.wrapping_sub(last_ts);
            if step == last_len.wrapping_mul(2) {
                self.run = self.run.saturating_add(1);
                if self.run >= RUN && self.anchor.is_none() {
                    // From the previous packet's place, as given: the stream goes on.
                    self.anchor = Some((last_ts, self.map(last_ts)));
                }
            } else if step == last_len {
                self.run = 0;
                self.anchor = None;
            }
        }
        self.last = Some((seq, ts, len));
        self.map(ts)
    }

    fn map(&self, ts: u32) -> u32 {
        match self.anchor {
            Some((from, to)) => to.wrapping_add(ts.wrapping_sub(from) / 2),
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
        // A step of the packet's own length ends the repair.
        let last = (u32::MAX - 1000).wrapping_add(320 * 49);
        assert_eq!(
            fast.timestamp(50, last.wrapping_add(160), 160),
            last.wrapping_add(160)
        );
    }
}
