//! In-band DTMF sending, for peers that did not negotiate `telephone-event`: a key press
//! becomes its two tones in the audio (ITU-T Q.23), the way an analogue phone sends it, so a
//! gateway or IVR that only listens for tones still gets the digit.
//!
//! Levels follow Q.23/Q.24 practice: the low (row) tone at -9 dBm0 and the high (column) tone
//! 2 dB above it (the usual positive twist), well inside what detectors take (ours accepts 8 dB
//! of twist). Each press is followed by a pause, so the same digit twice is heard twice.

use std::collections::VecDeque;
use std::time::Duration;

use sipx_codec::tone::Sine;

use super::DtmfDigit;

/// Peak amplitudes (16-bit scale) of the row and column tones: a full-scale sine is +3.17 dBm0
/// (G.711), so -9 dBm0 is 10^(-12.17/20) of full scale and -7 dBm0 2 dB more.
const ROW_AMPLITUDE: f64 = 8_070.0;
const COLUMN_AMPLITUDE: f64 = 10_160.0;
/// Shortest and longest tone sent: detectors need 40 ms (Q.24); a stuck key is cut short.
const MIN_TONE: Duration = Duration::from_millis(40);
const MAX_TONE: Duration = Duration::from_secs(5);
/// Silence after each tone (Q.24 asks for at least 40 ms between digits).
const PAUSE: Duration = Duration::from_millis(60);

/// Queued key presses played as tones, in place of the audio while they play.
#[derive(Debug)]
pub struct DtmfTones {
    rate: u32,
    capacity: usize,
    queue: VecDeque<(DtmfDigit, Duration)>,
    playing: Option<Playing>,
}

#[derive(Debug)]
struct Playing {
    /// The key's two tones.
    row: Sine,
    column: Sine,
    /// Samples of tone, then of pause, still to play.
    tone_left: usize,
    pause_left: usize,
}

impl DtmfTones {
    /// Tones at `rate` samples per second, at most `capacity` presses waiting.
    pub fn new(rate: u32, capacity: usize) -> Self {
        DtmfTones {
            rate,
            capacity,
            queue: VecDeque::with_capacity(capacity),
            playing: None,
        }
    }

    /// Queues a press; `false` when it cannot be played (a flash has no tones, or the queue is
    /// full).
    pub fn push(&mut self, digit: DtmfDigit, duration: Duration) -> bool {
        if digit.frequencies().is_none() || self.queue.len() == self.capacity {
            return false;
        }
        self.queue
            .push_back((digit, duration.clamp(MIN_TONE, MAX_TONE)));
        true
    }

    /// Whether a press is playing or waiting: the next frame is tones or pause, not audio.
    pub fn is_active(&self) -> bool {
        self.playing.is_some() || !self.queue.is_empty()
    }

    /// Fills `out` with the next samples of tone or pause (silence once nothing is left).
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out {
            *sample = self.next_sample();
        }
    }

    fn next_sample(&mut self) -> i16 {
        if self.playing.is_none() {
            self.start_next();
        }
        let Some(p) = self.playing.as_mut() else {
            return 0;
        };
        let sample = if p.tone_left > 0 {
            p.tone_left -= 1;
            (p.row.next_value() + p.column.next_value()).round() as i16
        } else {
            p.pause_left = p.pause_left.saturating_sub(1);
            0
        };
        if p.tone_left == 0 && p.pause_left == 0 {
            self.playing = None;
        }
        sample
    }

    fn start_next(&mut self) {
        let Some((digit, duration)) = self.queue.pop_front() else {
            return;
        };
        let Some((row, column)) = digit.frequencies() else {
            return;
        };
        let samples = |d: Duration| (d.as_secs_f64() * f64::from(self.rate)).round() as usize;
        self.playing = Some(Playing {
            row: Sine::new(f64::from(row), self.rate, ROW_AMPLITUDE),
            column: Sine::new(f64::from(column), self.rate, COLUMN_AMPLITUDE),
            tone_left: samples(duration),
            pause_left: samples(PAUSE),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtmf::DtmfDetector;

    /// What the detector hears in `ms` milliseconds of the tones at 8 kHz.
    fn detected(tones: &mut DtmfTones, ms: usize) -> Vec<(DtmfDigit, u32)> {
        let mut detector = DtmfDetector::new();
        let mut frame = [0i16; 160];
        for _ in 0..ms / 20 {
            tones.fill(&mut frame);
            detector.process(&frame);
        }
        std::iter::from_fn(|| detector.poll_event())
            .map(|e| (e.digit, e.duration_ms))
            .collect()
    }

    #[test]
    fn every_key_is_heard_by_a_tone_detector_with_its_length() {
        let mut tones = DtmfTones::new(8000, 32);
        for digit in DtmfDigit::ALL
            .into_iter()
            .filter(|d| *d != DtmfDigit::Flash)
        {
            assert!(tones.push(digit, Duration::from_millis(100)));
        }
        let heard = detected(&mut tones, 16 * 160 + 200);
        let digits: Vec<_> = heard.iter().map(|h| h.0).collect();
        assert_eq!(digits, DtmfDigit::ALL[..16]);
        assert!(heard.iter().all(|h| (80..=130).contains(&h.1)), "{heard:?}");
        assert!(!tones.is_active(), "all played");
    }

    #[test]
    fn the_same_key_twice_is_two_presses_and_short_ones_are_lengthened() {
        let mut tones = DtmfTones::new(8000, 4);
        tones.push(DtmfDigit::D5, Duration::from_millis(10));
        tones.push(DtmfDigit::D5, Duration::from_millis(10));
        let heard = detected(&mut tones, 400);
        assert_eq!(heard.len(), 2, "{heard:?}");
    }

    #[test]
    fn a_flash_or_a_full_queue_is_refused_and_the_level_does_not_clip() {
        let mut tones = DtmfTones::new(48_000, 1);
        assert!(!tones.push(DtmfDigit::Flash, Duration::from_millis(100)));
        assert!(tones.push(DtmfDigit::D1, Duration::from_millis(100)));
        assert!(!tones.push(DtmfDigit::D2, Duration::from_millis(100)));
        let mut frame = vec![0i16; 960 * 5];
        tones.fill(&mut frame);
        let peak = frame.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((15_000..=18_300).contains(&peak), "{peak}");
    }
}
