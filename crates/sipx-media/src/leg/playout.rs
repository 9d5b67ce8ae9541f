//! The playout path, once per 20 ms: ask the jitter buffer what to play and have the stream
//! decoder decode it (or conceal, or recover from Opus FEC) into its PCM queue at the
//! decoder's rate (see `crate::decoding`), take 20 ms from the queue, resample to the frame
//! rate if the codec could not produce it, and run the in-band DTMF detector over the result.

use std::time::Instant;

use super::{FrameKind, MediaLeg};
use crate::decoding::Played;
use crate::jitter::Playout;

/// Ticks after our last key tone during which what comes back is taken as its echo.
const TONE_ECHO_TICKS: u8 = 5;

impl MediaLeg {
    /// The next 20 ms of received audio at the frame rate: decoded, concealed (PLC or Opus
    /// FEC), comfort noise or silence. Call once per 20 ms tick.
    pub fn pull_frame(&mut self, now: Instant) -> (FrameKind, &[i16]) {
        let kind = self.fill_queue(now);
        let need = self.playing.rate as usize / 50;
        let real = self.playing.stream.pop_into(&mut self.decoded[..need]);
        let kind = match kind {
            // Audio left over from a longer packet plays as what it was.
            None if real > 0 => self.last_kind,
            None => FrameKind::Silence,
            Some(kind) => kind,
        };
        self.last_kind = kind;
        match self.playing.upsampler.as_mut() {
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
        let playout = self.jitter.tick(now);
        // Audio in another codec the answer listed comes to play: its decoder takes over
        // (`other_codecs.rs`). Decided by the tick's first packet: a tick that holds both
        // codecs (10 ms packets, at the change) plays the rest in the same one.
        if !self.spare_paths.is_empty()
            && let Playout::Frame(frame) = &playout
            && let Some(first) = frame.packets().next()
        {
            let codec = self.cfg.codec_of(first.pt.0);
            if codec != self.playing.codec
                && let Some(spare) = self.spare_paths.iter_mut().find(|p| p.codec == codec)
            {
                std::mem::swap(spare, &mut self.playing);
            }
        }
        match self.playing.stream.play(playout) {
            Played::Frame { errors } => {
                self.cn_level = None;
                self.counters.decode_errors += u64::from(errors);
                Some(if errors > 0 {
                    FrameKind::Concealed
                } else {
                    FrameKind::Audio
                })
            }
            Played::Lost => Some(FrameKind::Concealed),
            Played::ComfortNoise { level } => {
                if level.is_some() {
                    self.cn_level = level;
                }
                Some(FrameKind::Silence)
            }
            Played::Nothing => None,
        }
    }

    fn detect_inband(&mut self) {
        let Some((detector, down)) = self.inband.as_mut() else {
            return;
        };
        // While we send keys as tones, and a little after, what comes back may be their echo
        // (an analogue line's hybrid): the detector hears silence instead.
        if self.tones.is_active() {
            self.tones_echo_ticks = TONE_ECHO_TICKS;
        }
        if self.tones_echo_ticks > 0 {
            self.tones_echo_ticks -= 1;
            self.narrow.fill(0);
            detector.process(&self.narrow);
            return self.drain_dtmf_events();
        }
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
        self.playing.stream.reset();
        self.cn_level = None;
        if let Some(up) = self.playing.upsampler.as_mut() {
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
