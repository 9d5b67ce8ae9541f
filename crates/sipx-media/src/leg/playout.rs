//! The playout path, once per 20 ms: ask the jitter buffer what to play, decode it (or
//! conceal, or recover from Opus FEC) into a small PCM queue at the decoder's rate, take 20 ms
//! from the queue, resample to the frame rate if the codec could not produce it, and run the
//! in-band DTMF detector over the result.
//!
//! The queue absorbs packet sizes other than 20 ms: a 30 ms packet leaves 10 ms for the next
//! tick, on which the jitter buffer says `Continue`.

use std::time::Instant;

use sipx_codec::{AudioDecoder, new_decoder};

use super::{FrameKind, MediaLeg};
use crate::jitter::Playout;

/// A FIFO of PCM samples with a fixed capacity. When full, the oldest samples go (a stream
/// that delivers more than it should loses its backlog, not its newest audio).
#[derive(Debug)]
pub(super) struct PcmQueue {
    buf: Box<[i16]>,
    len: usize,
}

impl PcmQueue {
    pub(super) fn new(capacity: usize) -> Self {
        PcmQueue {
            buf: vec![0; capacity].into(),
            len: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn clear(&mut self) {
        self.len = 0;
    }

    pub(super) fn push(&mut self, samples: &[i16]) {
        let samples = &samples[samples.len().saturating_sub(self.buf.len())..];
        let overflow = (self.len + samples.len()).saturating_sub(self.buf.len());
        if overflow > 0 {
            self.buf.copy_within(overflow..self.len, 0);
            self.len -= overflow;
        }
        self.buf[self.len..self.len + samples.len()].copy_from_slice(samples);
        self.len += samples.len();
    }

    /// Moves the oldest `out.len()` samples into `out` (fewer if fewer are queued; the rest
    /// of `out` is zeroed). Returns how many were real.
    pub(super) fn pop_into(&mut self, out: &mut [i16]) -> usize {
        let n = out.len().min(self.len);
        out[..n].copy_from_slice(&self.buf[..n]);
        out[n..].fill(0);
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
        n
    }
}

impl MediaLeg {
    /// The next 20 ms of received audio at the frame rate: decoded, concealed (PLC or Opus
    /// FEC), comfort noise or silence. Call once per 20 ms tick.
    pub fn pull_frame(&mut self, now: Instant) -> (FrameKind, &[i16]) {
        let kind = self.fill_queue(now);
        let need = self.decode_rate as usize / 50;
        let real = {
            let (decoded, queue) = (&mut self.decoded[..need], &mut self.queue);
            queue.pop_into(decoded)
        };
        let kind = match kind {
            // Audio left over from a longer packet plays as what it was.
            None if real > 0 => self.last_kind,
            None => FrameKind::Silence,
            Some(kind) => kind,
        };
        self.last_kind = kind;
        match self.upsampler.as_mut() {
            Some(up) => {
                up.process(&self.decoded[..need], &mut self.frame);
            }
            None => self.frame.copy_from_slice(&self.decoded[..need]),
        }
        if kind == FrameKind::Silence
            && let Some(level) = self.cn_level
        {
            comfort_noise(&mut self.rng, level, &mut self.frame);
        }
        self.detect_inband();
        (kind, &self.frame)
    }

    /// Runs one jitter buffer tick into the queue. `None`: nothing new for this tick.
    fn fill_queue(&mut self, now: Instant) -> Option<FrameKind> {
        let out = &mut self.decoded;
        match self.jitter.tick(now) {
            Playout::Frame(frame) => {
                self.cn_level = None;
                let mut kind = FrameKind::Audio;
                for packet in frame.packets() {
                    match self.decoder.decode(packet.payload, out) {
                        Ok(n) => {
                            self.queue.push(&out[..n]);
                            self.last_packet_samples = n;
                        }
                        Err(_) => {
                            self.counters.decode_errors += 1;
                            let n = self.last_packet_samples.min(out.len());
                            if self.decoder.conceal(&mut out[..n]).is_ok() {
                                self.queue.push(&out[..n]);
                            }
                            kind = FrameKind::Concealed;
                        }
                    }
                }
                Some(kind)
            }
            Playout::Continue => None,
            Playout::Lost { fec } => {
                let n = self.last_packet_samples.min(out.len());
                let filled = match fec {
                    Some(next) => self.decoder.recover(next.payload, &mut out[..n]),
                    None => self.decoder.conceal(&mut out[..n]),
                };
                if filled.is_ok() {
                    self.queue.push(&out[..n]);
                }
                Some(FrameKind::Concealed)
            }
            Playout::ComfortNoise { update } => {
                if let Some(p) = update {
                    // RFC 3389 §3: the first byte is the noise level in -dBov.
                    self.cn_level = Some(p.payload.first().map_or(127, |l| l & 0x7f));
                }
                self.queue.clear();
                Some(FrameKind::Silence)
            }
            Playout::Empty => None,
        }
    }

    fn detect_inband(&mut self) {
        let Some((detector, down)) = self.inband.as_mut() else {
            return;
        };
        match down {
            Some(down) => {
                let n = down.process(&self.frame, &mut self.narrow);
                detector.process(&self.narrow[..n]);
            }
            None => detector.process(&self.frame),
        }
        self.drain_dtmf_events();
    }

    /// Forgets the old stream's decoder state, queued audio and resampler history.
    pub(super) fn reset_decoding(&mut self) {
        if let Ok(decoder) = new_decoder(self.cfg.codec, self.decode_rate) {
            self.decoder = decoder;
        }
        self.queue.clear();
        self.cn_level = None;
        self.last_packet_samples = self.decode_rate as usize / 50;
        if let Some(up) = self.upsampler.as_mut() {
            up.reset();
        }
    }
}

/// White noise at `level` -dBov (RFC 3389), uniform so its RMS is the peak over √3.
fn comfort_noise(rng: &mut crate::rng::Rng, level: u8, out: &mut [i16]) {
    let rms = 32768.0 * 10f64.powf(-f64::from(level) / 20.0);
    let peak = rms * 3f64.sqrt();
    for s in out {
        *s = ((rng.unit() * 2.0 - 1.0) * peak) as i16;
    }
}
