//! RFC 4733 telephone events: a receiver that turns event packets into one [`DtmfEvent`] per key
//! press, and a sender that produces the packet sequence for a key press on a 20 ms tick.
//!
//! The payload (§2.3): event code, E(nd) bit, reserved bit, 6-bit volume, 16-bit duration in
//! timestamp units. All packets of one event share its start timestamp; the duration grows; the
//! last packet has E set and is sent three times. Events longer than 16 bits of duration are
//! sent as segments whose timestamps follow each other (§2.5.2.3).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{DtmfDigit, DtmfEvent};
use crate::error::MediaError;
use crate::rtp::RtpHeader;

/// How many times the final packet is sent (§2.5.1.4).
const END_REPEATS: u8 = 3;
/// What a key's reported length may exceed the time its packets took to arrive by: the
/// first packet's own share of the duration, and a few lost at the start.
const HEARD_SLACK_MS: u64 = 120;
/// Largest duration one segment can say.
const MAX_SEGMENT: u32 = 0xffff;

/// One telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub code: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl EventPayload {
    pub fn parse(data: &[u8]) -> Result<EventPayload, MediaError> {
        let [code, flags, hi, lo, ..] = *data else {
            return Err(MediaError::MalformedDtmf("shorter than 4 bytes"));
        };
        Ok(EventPayload {
            code,
            end: flags & 0x80 != 0,
            volume: flags & 0x3f,
            duration: u16::from_be_bytes([hi, lo]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let [hi, lo] = self.duration.to_be_bytes();
        [
            self.code,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            hi,
            lo,
        ]
    }
}

/// The event being received.
#[derive(Debug, Clone, Copy)]
struct Receiving {
    digit: DtmfDigit,
    /// Timestamp of the current segment.
    ts: u32,
    /// Duration of earlier segments of the same event.
    earlier: u32,
    duration: u32,
    first_packet: Instant,
    last_packet: Instant,
    /// Newest sequence number seen of the event.
    seq: u16,
}

/// Receives telephone events of one stream.
#[derive(Debug)]
pub struct DtmfReceiver {
    clock_rate: u32,
    /// An event without packets for this long has ended (its end packets were all lost).
    timeout: Duration,
    current: Option<Receiving>,
    /// Timestamp and key of the last event reported, so its repeated end packets are ignored
    /// (a packet of another key with that timestamp is a new event: some senders stamp
    /// back-to-back keys alike).
    last_reported: Option<(u32, DtmfDigit)>,
    /// Newest sequence number of the event reported last: a start packet of that event
    /// arriving after its end (reordered) is older than it, a new press of the same key
    /// stamped alike is newer.
    last_reported_seq: u16,
    events: VecDeque<DtmfEvent>,
}

impl DtmfReceiver {
    /// `clock_rate` of the telephone-event payload type (8000, 16000 or 48000).
    pub fn new(clock_rate: u32) -> Self {
        DtmfReceiver {
            clock_rate: clock_rate.max(1),
            timeout: Duration::from_millis(300),
            current: None,
            last_reported: None,
            last_reported_seq: 0,
            events: VecDeque::with_capacity(4),
        }
    }

    /// Feeds one telephone-event packet. Unknown event codes (tones, §3.2 codes above 16) are
    /// ignored.
    pub fn push(
        &mut self,
        now: Instant,
        header: &RtpHeader,
        payload: &[u8],
    ) -> Result<(), MediaError> {
        let p = EventPayload::parse(payload)?;
        let Some(digit) = DtmfDigit::from_event_code(p.code) else {
            return Ok(());
        };
        let ts = header.timestamp;
        let of_current = self
            .current
            .is_some_and(|cur| cur.ts == ts && cur.digit == digit);
        // The same key stamped alike again is a new press when its first packet says so
        // (the marker, on a packet that is not an end packet) and comes after the last one
        // reported; before it, it is that event's own start packet, reordered.
        let restart = header.marker && !p.end && seq_newer(header.seq, self.last_reported_seq);
        let repeat = self.last_reported == Some((ts, digit)) && !restart;
        if !of_current && (repeat || p.end && self.is_reported(ts, digit)) {
            // A repeated packet of the event reported last, or an end packet of an earlier
            // one arriving late (§2.5.1.4): the key was pressed once. Other packets with an
            // older timestamp start a new event: senders that replay recorded events (sipp's
            // pcaps) send each key with the timestamps it was recorded with.
            return Ok(());
        }
        let duration = u32::from(p.duration);
        match &mut self.current {
            Some(cur) if cur.ts == ts && cur.digit == digit => {
                cur.duration = cur.duration.max(duration);
                cur.last_packet = now;
                if seq_newer(header.seq, cur.seq) {
                    cur.seq = header.seq;
                }
            }
            Some(cur) if (ts.wrapping_sub(cur.ts) as i32) < 0 => return Ok(()), // stale, reordered
            Some(cur) if cur.digit == digit && !header.marker && continues(cur, ts) => {
                // The next segment of a long event (§2.5.2.3): its timestamp is the last
                // one plus that segment's whole length, which counts even when the segment's
                // last packets were lost.
                cur.earlier = cur.earlier.saturating_add(ts.wrapping_sub(cur.ts));
                cur.ts = ts;
                cur.duration = duration;
                cur.last_packet = now;
                cur.seq = header.seq;
            }
            _ => {
                // A new event; a previous one whose end packets were all lost ends here. The
                // start packets of this one may be lost too: any packet starts it.
                self.finish();
                self.current = Some(Receiving {
                    digit,
                    ts,
                    earlier: 0,
                    duration,
                    first_packet: now,
                    last_packet: now,
                    seq: header.seq,
                });
            }
        }
        if p.end {
            self.finish();
        }
        Ok(())
    }

    /// Whether `ts` belongs to the last event reported or one before it. Only the last ten
    /// seconds count as before: a stream whose timestamps start again elsewhere (a new source
    /// after a re-INVITE) is not taken for old events.
    fn is_reported(&self, ts: u32, digit: DtmfDigit) -> bool {
        self.last_reported.is_some_and(|(last, last_digit)| {
            let age = last.wrapping_sub(ts);
            (age > 0 || last_digit == digit) && age <= self.clock_rate.saturating_mul(10)
        })
    }

    fn finish(&mut self) {
        if let Some(cur) = self.current.take() {
            let units = u64::from(cur.earlier) + u64::from(cur.duration);
            let said_ms = units * 1000 / u64::from(self.clock_rate);
            // No longer than its packets took to come, give or take the first one's share
            // and lost ones: some senders count the duration on another clock than the one
            // their SDP gave (baresip on Opus: 48 kHz units under telephone-event/8000, six
            // times the real length).
            let heard = cur.last_packet.saturating_duration_since(cur.first_packet);
            let heard_ms = heard.as_millis() as u64 + HEARD_SLACK_MS;
            self.events.push_back(DtmfEvent {
                digit: cur.digit,
                duration_ms: said_ms.min(heard_ms) as u32,
            });
            self.last_reported = Some((cur.ts, cur.digit));
            self.last_reported_seq = cur.seq;
        }
    }

    /// When an unfinished event should be given up on, if one is in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_packet + self.timeout)
    }

    /// Ends an event whose packets stopped without an end packet.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| now >= t) {
            self.finish();
        }
    }

    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }
}

/// Whether sequence number `a` comes after `b` (RFC 3550 numbers wrap at 16 bits).
fn seq_newer(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) > 0
}

/// Whether a packet stamped `ts` starts the next segment of `cur` (same key, no marker): a
/// segment ends only when its duration runs out of 16 bits, so the next one starts between
/// half that and the full 16 bits after it, and never before what the segment already said.
fn continues(cur: &Receiving, ts: u32) -> bool {
    let step = ts.wrapping_sub(cur.ts);
    step == cur.duration
        || (step >= cur.duration && (MAX_SEGMENT / 2..=MAX_SEGMENT).contains(&step))
}

/// A telephone-event packet to send: the caller's RTP sender adds its own sequence number (so
/// events and audio share one sequence), this timestamp and marker, and the event payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    pub marker: bool,
    pub timestamp: u32,
    pub payload: [u8; 4],
}

#[derive(Debug, Clone, Copy)]
struct Sending {
    digit: DtmfDigit,
    volume: u8,
    /// Timestamp of the current segment.
    ts: u32,
    /// Units of the event not yet covered by finished segments.
    remaining: u32,
    /// Units of the current segment sent so far.
    elapsed: u32,
    first: bool,
    ends_left: u8,
}

/// Produces the packets of one key press at a time, one packet per tick.
#[derive(Debug)]
pub struct DtmfSender {
    clock_rate: u32,
    tick_units: u32,
    current: Option<Sending>,
}

impl DtmfSender {
    /// `clock_rate` of the telephone-event payload type; `tick` is the send interval (20 ms).
    pub fn new(clock_rate: u32, tick: Duration) -> Self {
        let tick_units = (u128::from(clock_rate) * tick.as_nanos() / 1_000_000_000) as u32;
        DtmfSender {
            clock_rate,
            tick_units: tick_units.max(1),
            current: None,
        }
    }

    /// Starts a key press at RTP timestamp `ts` (the timestamp the next audio packet would
    /// have had). `volume` is in -dBm0 (0..=63, 10 is usual).
    pub fn start(
        &mut self,
        digit: DtmfDigit,
        duration: Duration,
        volume: u8,
        ts: u32,
    ) -> Result<(), MediaError> {
        if self.current.is_some() {
            return Err(MediaError::ApiMisuse("a DTMF event is already being sent"));
        }
        let units = u128::from(self.clock_rate) * duration.as_nanos() / 1_000_000_000;
        let units =
            u32::try_from(units).map_err(|_| MediaError::ApiMisuse("DTMF duration too long"))?;
        self.current = Some(Sending {
            digit,
            volume: volume.min(63),
            ts,
            remaining: units.max(self.tick_units),
            elapsed: 0,
            first: true,
            ends_left: END_REPEATS,
        });
        Ok(())
    }

    /// Cuts the key press being sent short: its next packets are its end, at the duration
    /// sent so far (at least one packet's). An end already under way is left as it is.
    pub fn end_now(&mut self) {
        let tick = self.tick_units;
        if let Some(cur) = self.current.as_mut() {
            cur.remaining = cur.elapsed.max(tick);
        }
    }

    /// True while packets remain; the leg sends no audio meanwhile.
    pub fn is_active(&self) -> bool {
        self.current.is_some()
    }

    /// The packet for this tick, if an event is being sent.
    pub fn poll_packet(&mut self) -> Option<DtmfPacket> {
        let tick = self.tick_units;
        let cur = self.current.as_mut()?;
        let segment_total = cur.remaining.min(MAX_SEGMENT);
        let last_segment = cur.remaining <= MAX_SEGMENT;
        cur.elapsed = (cur.elapsed + tick).min(segment_total);
        let end = last_segment && cur.elapsed == segment_total;
        let packet = DtmfPacket {
            marker: cur.first,
            timestamp: cur.ts,
            payload: EventPayload {
                code: cur.digit.event_code(),
                end,
                volume: cur.volume,
                // `segment_total <= 0xffff`, so the duration fits.
                duration: cur.elapsed as u16,
            }
            .to_bytes(),
        };
        cur.first = false;
        if end {
            cur.ends_left -= 1;
            if cur.ends_left == 0 {
                self.current = None;
            }
        } else if cur.elapsed == segment_total {
            // Segment full: the next one starts where it ends (§2.5.2.3).
            cur.ts = cur.ts.wrapping_add(segment_total);
            cur.remaining -= segment_total;
            cur.elapsed = 0;
        }
        Some(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Pt, Ssrc};

    /// Sends `digit` for `ms` through sender and receiver, dropping packets whose index is in
    /// `drop`; returns the packets sent and the events received.
    fn run(
        rate: u32,
        digit: DtmfDigit,
        ms: u64,
        drop: &[usize],
    ) -> (Vec<DtmfPacket>, Vec<DtmfEvent>) {
        let t0 = Instant::now();
        let mut tx = DtmfSender::new(rate, Duration::from_millis(20));
        let mut rx = DtmfReceiver::new(rate);
        tx.start(digit, Duration::from_millis(ms), 10, 1_000)
            .unwrap();
        let mut sent = Vec::new();
        let mut i = 0;
        while let Some(p) = tx.poll_packet() {
            let now = t0 + Duration::from_millis(20 * i as u64);
            if !drop.contains(&i) {
                let header = RtpHeader {
                    marker: p.marker,
                    pt: Pt(101),
                    seq: i as u16,
                    timestamp: p.timestamp,
                    ssrc: Ssrc(1),
                };
                rx.push(now, &header, &p.payload).unwrap();
            }
            sent.push(p);
            i += 1;
        }
        rx.handle_timeout(t0 + Duration::from_secs(30));
        (sent, std::iter::from_fn(|| rx.poll_event()).collect())
    }

    #[test]
    fn sends_a_growing_duration_then_three_ends() {
        let (sent, events) = run(8000, DtmfDigit::D5, 100, &[]);
        let parsed: Vec<_> = sent
            .iter()
            .map(|p| EventPayload::parse(&p.payload).unwrap())
            .collect();
        let durations: Vec<u16> = parsed.iter().map(|p| p.duration).collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        let ends: Vec<bool> = parsed.iter().map(|p| p.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        assert!(sent[0].marker && sent[1..].iter().all(|p| !p.marker));
        assert!(sent.iter().all(|p| p.timestamp == 1_000));
        assert!(parsed.iter().all(|p| p.code == 5 && p.volume == 10));
        assert_eq!(
            events,
            [DtmfEvent {
                digit: DtmfDigit::D5,
                duration_ms: 100
            }]
        );
    }

    #[test]
    fn every_digit_and_flash_round_trips() {
        for digit in DtmfDigit::ALL {
            let (_, events) = run(8000, digit, 160, &[]);
            assert_eq!(
                events,
                [DtmfEvent {
                    digit,
                    duration_ms: 160
                }]
            );
        }
    }

    #[test]
    fn lost_start_or_end_packets_still_give_the_digit_once() {
        // Start packets lost.
        let (_, events) = run(8000, DtmfDigit::Pound, 120, &[0, 1]);
        assert_eq!(
            events,
            [DtmfEvent {
                digit: DtmfDigit::Pound,
                duration_ms: 120
            }]
        );
        // All three end packets lost: reported at the timeout with the duration seen.
        let (sent, events) = run(8000, DtmfDigit::Star, 120, &[5, 6, 7]);
        assert_eq!(sent.len(), 8);
        assert_eq!(
            events,
            [DtmfEvent {
                digit: DtmfDigit::Star,
                duration_ms: 100
            }]
        );
    }

    #[test]
    fn a_long_event_at_48khz_is_sent_in_segments_and_received_as_one() {
        let (sent, events) = run(48_000, DtmfDigit::D1, 3_000, &[]);
        let stamps: Vec<u32> = sent.iter().map(|p| p.timestamp).collect();
        assert!(stamps.contains(&(1_000 + 0xffff)), "{stamps:?}");
        assert_eq!(
            events,
            [DtmfEvent {
                digit: DtmfDigit::D1,
                duration_ms: 3_000
            }]
        );
    }

    /// The keys `receive` hears at 8 kHz, as characters.
    fn keys_heard(packets: &[Packet]) -> String {
        receive(8000, packets)
            .iter()
            .map(|e| e.digit.as_char())
            .collect()
    }

    /// A telephone-event packet: (timestamp, marker, code, end, duration).
    type Packet = (u32, bool, u8, bool, u16);

    /// Feeds packets 20 ms apart, numbered in the order given; the digits heard.
    fn receive(rate: u32, packets: &[Packet]) -> Vec<DtmfEvent> {
        let numbered: Vec<_> = (0..).zip(packets.iter().copied()).collect();
        receive_numbered(rate, &numbered)
    }

    /// As `receive`, with each packet's sequence number given first.
    fn receive_numbered(rate: u32, packets: &[(u16, Packet)]) -> Vec<DtmfEvent> {
        let t0 = Instant::now();
        let mut rx = DtmfReceiver::new(rate);
        for (i, &(seq, (timestamp, marker, code, end, duration))) in packets.iter().enumerate() {
            let header = RtpHeader {
                marker,
                pt: Pt(101),
                seq,
                timestamp,
                ssrc: Ssrc(1),
            };
            let payload = EventPayload {
                code,
                end,
                volume: 10,
                duration,
            };
            let now = t0 + Duration::from_millis(20 * i as u64);
            rx.push(now, &header, &payload.to_bytes()).unwrap();
        }
        rx.handle_timeout(t0 + Duration::from_secs(60));
        std::iter::from_fn(|| rx.poll_event()).collect()
    }

    #[test]
    fn an_end_packet_of_an_earlier_key_arriving_late_is_not_a_second_press() {
        let t = 50_000;
        let events = receive(
            8000,
            &[
                (t, true, 4, false, 160),
                (t, false, 4, true, 800),
                (t, false, 4, true, 800),
                (t + 1280, true, 2, false, 160),
                (t + 1280, false, 2, true, 640),
                (t + 1280, false, 2, true, 640),
                (t + 1280, false, 2, true, 640),
                // The third end packet of the '4', held up in the network.
                (t, false, 4, true, 800),
            ],
        );
        let digits: Vec<_> = events.iter().map(|e| e.digit).collect();
        assert_eq!(digits, [DtmfDigit::D4, DtmfDigit::D2]);
        // A source that starts its timestamps again far away is heard.
        let events = receive(
            8000,
            &[
                (t, true, 4, true, 800),
                (t.wrapping_sub(1_000_000), true, 6, true, 800),
            ],
        );
        assert_eq!(events.len(), 2, "{events:?}");
    }

    #[test]
    fn a_start_packet_arriving_after_its_end_is_not_a_second_press() {
        // The marker packet (seq 10) held up behind the first end packet; sequence numbers
        // wrap on the way.
        let seq = |n: u16| 65_530u16.wrapping_add(n);
        let nine = |marker, end, duration| (4_000, marker, 9, end, duration);
        let events = receive_numbered(
            8000,
            &[
                (seq(11), nine(false, false, 320)),
                (seq(12), nine(false, true, 480)),
                (seq(10), nine(true, false, 160)),
                (seq(13), nine(false, true, 480)),
                (seq(14), nine(false, true, 480)),
                // The same key pressed again, stamped alike: a second press.
                (seq(15), nine(true, false, 160)),
                (seq(16), nine(false, true, 320)),
            ],
        );
        let nine_for = |duration_ms| DtmfEvent {
            digit: DtmfDigit::D9,
            duration_ms,
        };
        assert_eq!(events, [nine_for(60), nine_for(40)]);
    }

    #[test]
    fn a_duration_counted_on_a_faster_clock_is_held_to_the_time_the_key_took() {
        // telephone-event/8000 in the SDP, 48 kHz units in the packets: 180 ms said as 8640
        // units, which at 8 kHz would be 1080 ms. Packets 20 ms apart over 160 ms.
        let t = 9_000;
        let mut packets: Vec<Packet> = (1..=9).map(|k| (t, k == 1, 3, false, k * 960)).collect();
        packets.extend([(t, false, 3, true, 8_640); 3]);
        let events = receive(8000, &packets);
        assert_eq!(events.len(), 1, "{events:?}");
        assert!((160..=300).contains(&events[0].duration_ms), "{events:?}");
    }

    #[test]
    fn keys_replayed_with_older_timestamps_are_each_heard() {
        // sipp's dtmf_2833_*.pcap, played 4, 3, 2, 1, #: each key keeps the timestamp it was
        // recorded with, earlier than the one before, and ends with three end packets.
        let mut packets = Vec::new();
        for (code, t) in [
            (4, 37_120),
            (3, 31_040),
            (2, 23_200),
            (1, 13_280),
            (11, 92_640),
        ] {
            packets.push((t, true, code, false, 160));
            packets.push((t, false, code, false, 320));
            packets.extend([(t, false, code, true, 480); 3]);
        }
        let digits = keys_heard(&packets);
        assert_eq!(digits, "4321#");
    }

    #[test]
    fn keys_stamped_alike_are_each_heard_once() {
        // A sender that stamps back-to-back keys with one timestamp: each is a key, each
        // ends with three end packets.
        let t = 8_000;
        let mut packets = Vec::new();
        for code in [1, 2, 1, 1] {
            packets.push((t, true, code, false, 160));
            packets.extend([(t, false, code, true, 640); 3]);
        }
        let digits = keys_heard(&packets);
        assert_eq!(digits, "1211");
    }

    #[test]
    fn a_long_press_stays_one_key_when_a_segment_loses_its_last_packets() {
        // 10 s of '7' at 8 kHz: a first segment of 0xffff units whose packets from 65440 on
        // were lost, then a second segment of 14465 units.
        let t = 1_000;
        let mut packets = vec![(t, true, 7, false, 160)];
        packets.extend((2..=409).map(|k| (t, false, 7, false, k * 160)));
        let next = t + 0xffff;
        packets.extend((1..=90).map(|k| (next, false, 7, false, (k * 160).min(14_465))));
        packets.extend([(next, false, 7, true, 14_465); 3]);
        let events = receive(8000, &packets);
        assert_eq!(
            events,
            [DtmfEvent {
                digit: DtmfDigit::D7,
                duration_ms: 10_000
            }]
        );
    }

    #[test]
    fn refuses_short_payloads_and_ignores_unknown_events() {
        let mut rx = DtmfReceiver::new(8000);
        let header = RtpHeader {
            marker: true,
            pt: Pt(101),
            seq: 1,
            timestamp: 1,
            ssrc: Ssrc(1),
        };
        assert!(rx.push(Instant::now(), &header, &[1, 2, 3]).is_err());
        rx.push(Instant::now(), &header, &[70, 0x80, 0, 160])
            .unwrap();
        assert_eq!(rx.poll_event(), None);
        let mut tx = DtmfSender::new(8000, Duration::from_millis(20));
        tx.start(DtmfDigit::D1, Duration::from_millis(100), 10, 0)
            .unwrap();
        assert!(
            tx.start(DtmfDigit::D2, Duration::from_millis(100), 10, 0)
                .is_err()
        );
    }
}
