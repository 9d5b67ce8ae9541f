//! One received stream from jitter buffer to PCM: decode what [`JitterBuffer::tick`] says to
//! play (concealing payloads the decoder refuses), conceal or recover (Opus in-band FEC) lost
//! packets, into a small PCM queue at the decoder's rate that absorbs packet sizes other than
//! the 20 ms frame: a 30 ms packet leaves 10 ms for the next tick, on which the jitter buffer
//! says `Continue`. Shared by the media leg and the room bridge's sources.
//!
//! [`JitterBuffer::tick`]: crate::jitter::JitterBuffer::tick

use sipx_codec::{AudioDecoder, CodecError, CodecKind, Decoder, new_decoder};

use crate::jitter::Playout;
use crate::pcm_queue::PcmQueue;

/// What one jitter buffer tick gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Played {
    /// Received payloads were decoded; `errors` of them were refused and concealed instead.
    Frame { errors: u32 },
    /// A lost packet was concealed (or recovered from the next one's FEC).
    Lost,
    /// RFC 3389 comfort noise; `level` is a new noise level in -dBov when one came.
    ComfortNoise { level: Option<u8> },
    /// Nothing new: earlier audio may still be queued.
    Nothing,
}

/// A decoder with its PCM queue. All memory is allocated in [`StreamDecoder::new`].
#[derive(Debug)]
pub(crate) struct StreamDecoder {
    kind: CodecKind,
    rate: u32,
    decoder: Decoder,
    queue: PcmQueue,
    /// One packet's decoded PCM, before it is queued.
    scratch: Box<[i16]>,
    /// Samples of the last received packet: what a packet the decoder refuses is replaced by.
    last_packet_samples: usize,
}

impl StreamDecoder {
    /// A decoder of `kind` producing PCM at `rate`.
    pub(crate) fn new(kind: CodecKind, rate: u32) -> Result<Self, CodecError> {
        // Up to 120 ms packets decode at once; the queue holds a few of them.
        let max_packet = rate as usize * 120 / 1000;
        Ok(StreamDecoder {
            kind,
            rate,
            decoder: new_decoder(kind, rate)?,
            queue: PcmQueue::new(4 * max_packet),
            scratch: vec![0; max_packet.max(rate as usize / 50)].into(),
            last_packet_samples: rate as usize / 50,
        })
    }

    /// Decodes or conceals what one tick of the jitter buffer handed out into the queue.
    pub(crate) fn play(&mut self, playout: Playout<'_>) -> Played {
        match playout {
            Playout::Frame(frame) => {
                // What earlier packets left queued plays up to its place on the timeline
                // and no further: a packet taken whole that said more than its timestamps
                // (below) leaves no delay behind.
                self.queue.truncate(self.samples_in(frame.carry()));
                let gaps = frame.gaps();
                self.conceal(gaps.before, None);
                let mut errors = 0;
                let step = frame.packet_units();
                let mut packets = frame.packets().peekable();
                while let Some(packet) = packets.next() {
                    // A packet holds no more audio than its place on the timeline: until the
                    // next packet starts. More (a payload that says 120 ms stamped as 20, a
                    // foreign or corrupt payload) would lengthen the queue, and so the delay;
                    // it is cut. The last one is cut to its own length once the packet after
                    // it showed it, else taken whole: senders change packet lengths (20 then
                    // 60 ms), and the next frame's `carry` cuts what it said too much.
                    let span = match packets.peek() {
                        Some(next) => Some(
                            next.timestamp
                                .wrapping_sub(packet.timestamp)
                                .max(step.unwrap_or(0)),
                        ),
                        None => packet.units,
                    };
                    let most = span.map_or(usize::MAX, |units| self.samples_in(units));
                    let out = &mut self.scratch;
                    match self.decoder.decode(packet.payload, out) {
                        Ok(n) => {
                            let n = n.min(most);
                            self.queue.push(&out[..n]);
                            self.last_packet_samples = n;
                        }
                        Err(_) => {
                            errors += 1;
                            let n = self.last_packet_samples.min(out.len());
                            if self.decoder.conceal(&mut out[..n]).is_ok() {
                                self.queue.push(&out[..n]);
                            }
                        }
                    }
                }
                self.conceal(gaps.after, None);
                Played::Frame { errors }
            }
            Playout::Continue | Playout::Empty => Played::Nothing,
            Playout::Lost { fec, units } => {
                self.conceal(units, fec.map(|next| next.payload));
                Played::Lost
            }
            Playout::ComfortNoise { update } => {
                self.queue.clear();
                // RFC 3389 §3: the first byte is the noise level in -dBov.
                let level = update.map(|p| p.payload.first().map_or(127, |l| l & 0x7f));
                Played::ComfortNoise { level }
            }
        }
    }

    /// Samples at the decoder's rate in `units` of RTP timestamp.
    fn samples_in(&self, units: u32) -> usize {
        let clock = u64::from(self.kind.rtp_clock_rate().max(1));
        usize::try_from(u64::from(units) * u64::from(self.rate) / clock).unwrap_or(usize::MAX)
    }

    /// Conceals `units` of RTP timestamp into the queue: exactly the span the jitter buffer
    /// accounts for, so the queue neither runs dry nor grows (concealing a whole 60 ms packet
    /// on each tick that waits for one would pile up delay nobody measures). In pieces the
    /// codec can make (Opus: 2.5 to 60 ms; G.729: 10 ms); the last piece, the one just before
    /// the next packet, recovers from its FEC when there is some.
    fn conceal(&mut self, units: u32, fec: Option<&[u8]>) {
        let mut left = self.samples_in(units).min(self.scratch.len());
        while left > 0 {
            let n = concealable(self.kind, self.rate, left);
            if n == 0 {
                return;
            }
            left -= n;
            let out = &mut self.scratch[..n];
            let recovered =
                left == 0 && fec.is_some_and(|next| self.decoder.recover(next, out).is_ok());
            // Without FEC, or when the next payload holds none it can read: concealment.
            if !recovered && self.decoder.conceal(out).is_err() {
                return;
            }
            self.queue.push(out);
        }
    }

    /// Samples decoded and not yet taken.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Moves the oldest decoded samples into `out` (zero-filling what is missing); returns
    /// how many were real.
    pub(crate) fn pop_into(&mut self, out: &mut [i16]) -> usize {
        self.queue.pop_into(out)
    }

    /// Forgets the old stream's decoder state and queued audio (a new source starts).
    pub(crate) fn reset(&mut self) {
        if let Ok(decoder) = new_decoder(self.kind, self.rate) {
            self.decoder = decoder;
        }
        self.queue.clear();
        self.last_packet_samples = self.rate as usize / 50;
    }
}

/// The longest piece of at most `samples` that `kind`'s concealment makes in one call at
/// `rate` (0: none, the rest stays unfilled): the longest frame the codec takes.
fn concealable(kind: CodecKind, rate: u32, samples: usize) -> usize {
    (1..=samples)
        .rev()
        .find(|&n| kind.is_valid_frame(n, rate))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    //! The jitter buffer and the stream decoder together, as a leg runs them once per 20 ms,
    //! for every packet time, under loss, drift and jitter: every tick gets a whole frame of
    //! audio (nothing zero-filled mid-stream) and no delay piles up in the PCM queue.

    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, Instant};

    use sipx_codec::tone::Sine;
    use sipx_codec::{AudioEncoder, EncoderOptions, new_encoder};

    use super::*;
    use crate::ids::{Pt, Ssrc};
    use crate::jitter::{JitterBuffer, JitterConfig};
    use crate::rng::Rng;
    use crate::rtp::RtpHeader;

    struct Net {
        ptime_ms: u32,
        /// Packets the network drops, by index.
        drop: fn(u32) -> bool,
        /// Sender clock error: +0.005 sends 0.5 % more audio per real second.
        drift: f64,
        jitter_ms: f64,
        /// One-way delay before jitter.
        base_ms: f64,
    }

    struct Outcome {
        /// Samples zero-filled for want of audio, after the start and before the end.
        starved: usize,
        /// The most audio left queued after a tick took its frame, in ms.
        max_queued_ms: f64,
        lost: u64,
        /// Packets that came and were dropped, or frames concealed, to move the delay.
        delay_moves: u64,
    }

    fn run(kind: CodecKind, net: &Net) -> Outcome {
        let rate = 8000;
        let clock = kind.rtp_clock_rate();
        let packet_samples = (rate * net.ptime_ms / 1000) as usize;
        let mut encoder = new_encoder(kind, rate, &EncoderOptions::default()).unwrap();
        let mut tone = Sine::new(440.0, rate, 8000.0);
        let mut rng = Rng::new(7);
        let t0 = Instant::now();
        let seconds = 12;
        let count = seconds * 1000 / net.ptime_ms;
        let mut arrivals = Vec::new();
        for i in 0..count {
            let pcm = tone.take(packet_samples);
            let mut payload = vec![0u8; 1500];
            let n = encoder.encode(&pcm, &mut payload).unwrap();
            payload.truncate(n);
            if (net.drop)(i) {
                continue;
            }
            let sent_ms = f64::from(i * net.ptime_ms) / (1.0 + net.drift);
            let at = sent_ms + net.base_ms + rng.unit() * net.jitter_ms;
            arrivals.push((t0 + Duration::from_micros((at * 1000.0) as u64), i, payload));
        }
        arrivals.sort_by_key(|a| a.0);
        let config = JitterConfig {
            clock_rate: clock,
            ..JitterConfig::default()
        };
        let mut jitter = JitterBuffer::new(&config);
        let mut decoder = StreamDecoder::new(kind, rate).unwrap();
        let mut frame = vec![0i16; rate as usize / 50];
        let mut next = arrivals.iter().peekable();
        let (mut starved, mut max_queued) = (0, 0);
        let ticks = seconds * 50;
        for k in 0..ticks {
            let now = t0 + Duration::from_millis(u64::from(k) * 20);
            while let Some((at, i, payload)) = next.next_if(|a| a.0 <= now) {
                let header = header(kind, *i, i * net.ptime_ms * clock / 1000);
                jitter.push(*at, &header, payload);
            }
            decoder.play(jitter.tick(now));
            let real = decoder.pop_into(&mut frame);
            // After the first second (playout started) and before the stream's last second.
            if k >= 50 && k < ticks - 50 {
                starved += frame.len() - real;
                max_queued = max_queued.max(decoder.queued());
            }
        }
        Outcome {
            starved,
            max_queued_ms: max_queued as f64 * 1000.0 / f64::from(rate),
            lost: jitter.stats().lost,
            delay_moves: jitter.stats().skipped + jitter.stats().stretched,
        }
    }

    #[test]
    fn a_span_is_concealed_whole_in_pieces_each_codec_makes() {
        // (codec, its RTP clock units for the span, samples at 8 kHz)
        let mut cases = vec![
            (CodecKind::Pcmu, 200, 200),
            (CodecKind::Opus, 1440, 240), // 30 ms: 20 + 10
            (CodecKind::Opus, 2400, 400), // 50 ms: 40 + 10
            (CodecKind::Opus, 5760, 960), // 120 ms: 60 + 60
        ];
        if cfg!(feature = "g729") {
            cases.push((CodecKind::G729, 240, 240));
        }
        for (kind, units, samples) in cases {
            let mut decoder = StreamDecoder::new(kind, 8000).unwrap();
            decoder.conceal(units, None);
            assert_eq!(decoder.queued(), samples, "{kind:?} {units}");
        }
    }

    /// The header of packet `i` of a `kind` stream at RTP time `timestamp` (the first marked).
    fn header(kind: CodecKind, i: u32, timestamp: u32) -> RtpHeader {
        RtpHeader {
            marker: i == 0,
            pt: Pt(match kind {
                CodecKind::Opus => 111,
                CodecKind::G729 => 18,
                _ => 0,
            }),
            seq: i as u16,
            timestamp,
            ssrc: Ssrc(1),
        }
    }

    /// A jitter buffer and a decoder for a `kind` stream at 8 kHz, as a leg makes them.
    fn receiver(kind: CodecKind) -> (JitterBuffer, StreamDecoder) {
        let config = JitterConfig {
            clock_rate: kind.rtp_clock_rate(),
            ..JitterConfig::default()
        };
        (
            JitterBuffer::new(&config),
            StreamDecoder::new(kind, 8000).unwrap(),
        )
    }

    #[test]
    fn a_packet_longer_than_its_place_on_the_timeline_adds_no_delay() {
        // Every 25th packet's payload says 60 ms where its timestamp step says 20 (a foreign
        // or corrupt payload does as much): played whole, each would add 40 ms to the queue,
        // and so to the delay, for the rest of the call.
        for kind in [CodecKind::Pcmu, CodecKind::Opus] {
            let (rate, clock) = (8000, kind.rtp_clock_rate());
            let mut encoder = new_encoder(kind, rate, &EncoderOptions::default()).unwrap();
            let mut tone = Sine::new(440.0, rate, 8000.0);
            let (mut jitter, mut decoder) = receiver(kind);
            let mut frame = vec![0i16; 160];
            let t0 = Instant::now();
            let mut max_queued = 0;
            for k in 0..500u32 {
                let now = t0 + Duration::from_millis(u64::from(k) * 20);
                let long = k % 25 == 12;
                let pcm = tone.take(if long { 480 } else { 160 });
                let mut payload = vec![0u8; 1500];
                let n = encoder.encode(&pcm, &mut payload).unwrap();
                let header = header(kind, k, k * clock / 50);
                jitter.push(now, &header, &payload[..n]);
                decoder.play(jitter.tick(now));
                decoder.pop_into(&mut frame);
                if k >= 50 {
                    max_queued = max_queued.max(decoder.queued());
                }
            }
            assert!(max_queued <= 160, "{kind:?}: {} ms queued", max_queued / 8);
        }
    }

    #[test]
    fn packets_that_change_length_play_whole() {
        // 20 ms then 60 ms packets by turns, each sent once its last sample is captured: a
        // 60 ms packet handed out before the next one shows its length plays its whole
        // 60 ms, at any phase of the ticks (it used to be cut to the 20 ms the last pair of
        // packets showed, and 40 ms of silence followed).
        for kind in [CodecKind::Pcmu, CodecKind::Opus] {
            for phase_ms in [0u64, 3, 7, 11, 15, 19] {
                let (rate, clock) = (8000, kind.rtp_clock_rate());
                let mut encoder = new_encoder(kind, rate, &EncoderOptions::default()).unwrap();
                let mut tone = Sine::new(440.0, rate, 8000.0);
                let t0 = Instant::now();
                let (mut arrivals, mut ms, mut i) = (Vec::new(), 0u32, 0u32);
                while ms < 6000 {
                    let len = if i % 2 == 0 { 20 } else { 60 };
                    let pcm = tone.take((rate * len / 1000) as usize);
                    let mut payload = vec![0u8; 1500];
                    let n = encoder.encode(&pcm, &mut payload).unwrap();
                    payload.truncate(n);
                    let header = header(kind, i, ms * clock / 1000);
                    let at = t0 + Duration::from_millis(u64::from(ms + len + 30));
                    arrivals.push((at, header, payload));
                    ms += len;
                    i += 1;
                }
                let (mut jitter, mut decoder) = receiver(kind);
                let mut frame = vec![0i16; 160];
                let mut next = arrivals.iter().peekable();
                let mut starved = 0;
                for k in 0..300u64 {
                    let now = t0 + Duration::from_millis(k * 20 + phase_ms);
                    while let Some((at, header, payload)) = next.next_if(|a| a.0 <= now) {
                        jitter.push(*at, header, payload);
                    }
                    decoder.play(jitter.tick(now));
                    let real = decoder.pop_into(&mut frame);
                    if (50..250).contains(&k) {
                        starved += frame.len() - real;
                    }
                }
                assert_eq!(starved, 0, "{kind:?} at {phase_ms} ms");
            }
        }
    }

    fn every_ptime(kind: CodecKind) -> &'static [u32] {
        match kind {
            // Opus frames are 10, 20, 40 or 60 ms (no 30).
            CodecKind::Opus => &[10, 20, 40, 60],
            _ => &[10, 20, 30, 40, 60],
        }
    }

    /// `steady`: the network's delay does not change, so neither may the playout's (no packet
    /// that came dropped, no frame concealed to wait longer).
    fn check(name: &str, net: Net, lost: bool, steady: bool) {
        let kinds = [
            CodecKind::Pcmu,
            CodecKind::Opus,
            #[cfg(feature = "g729")]
            CodecKind::G729,
        ];
        for kind in kinds {
            for &ptime_ms in every_ptime(kind) {
                let net = Net { ptime_ms, ..net };
                let out = run(kind, &net);
                let case = format!("{name}, {kind:?} {ptime_ms} ms");
                assert_eq!(out.starved, 0, "{case}: samples missing");
                // What one packet leaves after the frame taken from it, and a frame of slack
                // for a stretch; a concealment longer than the gap it covers stays as delay.
                let bound = f64::from(ptime_ms.max(20)) + 20.0;
                assert!(
                    out.max_queued_ms <= bound,
                    "{case}: {} ms queued",
                    out.max_queued_ms
                );
                assert_eq!(out.lost > 0, lost, "{case}: {} lost", out.lost);
                if steady {
                    assert_eq!(out.delay_moves, 0, "{case}: the delay moved");
                }
            }
        }
    }

    const CLEAN: Net = Net {
        ptime_ms: 20,
        drop: |_| false,
        drift: 0.0,
        jitter_ms: 0.0,
        base_ms: 30.0,
    };

    #[test]
    fn single_losses_are_concealed_for_as_long_as_they_last() {
        // Packets lost one at a time, at every place in the 20 ms frame pattern, behind
        // networks of several delays (where the playout point falls in a packet differs).
        for base_ms in [5.0, 30.0, 50.0, 68.0, 88.0, 110.0] {
            let net = Net {
                drop: |i| i % 37 == 11,
                base_ms,
                ..CLEAN
            };
            check(&format!("single losses {base_ms} ms away"), net, true, true);
        }
    }

    #[test]
    fn a_drifting_sender_neither_starves_nor_builds_a_backlog() {
        let slow = Net {
            drift: -0.005,
            ..CLEAN
        };
        check("slow sender", slow, false, false);
        let fast = Net {
            drift: 0.005,
            ..CLEAN
        };
        check("fast sender", fast, false, false);
    }

    #[test]
    fn loss_with_jitter_keeps_the_queue_short() {
        check(
            "3 % loss, 20 ms jitter",
            Net {
                drop: |i| i % 33 == 5,
                jitter_ms: 20.0,
                ..CLEAN
            },
            true,
            false,
        );
    }
}
