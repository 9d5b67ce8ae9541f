//! In-band DTMF detection on 8 kHz PCM with the Goertzel algorithm, for peers that send tones
//! in the audio instead of RFC 4733 events.
//!
//! The signal is cut into blocks of 102 samples (12.75 ms; bins ~78 Hz wide, narrow enough to
//! keep neighbouring DTMF rows apart). A block *hits* a key when all of these hold:
//! - the strongest row and column tones are both above a floor (about -40 dBFS each);
//! - twist: the row tone is at most 8 dB above the column tone, and at most 4 dB below it;
//! - each is at least 8 dB above every other tone of its group (relative peak);
//! - the two tones carry at least 80% of the block's energy. Speech, music and noise spread
//!   their energy over many frequencies, so this is the main talk-off guard (a voiced sound
//!   whose formants sit on a row and a column still keeps a quarter of its energy in other
//!   harmonics). It also means a block only hits when the tone fills 80% of it.
//!
//! A key is recognised after two hits in a row: a tone of 20 ms can never give two (it cannot
//! fill 80% of two blocks), one of 33 ms or more always does. It ends after two blocks without
//! it (a gap of 25 ms or more), and is reported then, with its duration.

use std::collections::VecDeque;

use super::{COLUMNS as COLS, DtmfDigit, DtmfEvent, KEYPAD as KEYS, ROWS};

const RATE: f32 = 8000.0;
const BLOCK: usize = 102;
/// A full-scale-relative amplitude of 0.01 (-40 dBFS) gives this Goertzel power.
const MIN_POWER: f32 = (0.01 * BLOCK as f32 / 2.0) * (0.01 * BLOCK as f32 / 2.0);
/// 8 dB and 4 dB as power ratios.
const NORMAL_TWIST: f32 = 6.31;
const REVERSE_TWIST: f32 = 2.51;
const RELATIVE_PEAK: f32 = 6.31;
/// Share of the block energy the two tones must hold.
const MIN_TONE_SHARE: f32 = 0.8;
const HITS_TO_START: u32 = 2;
const MISSES_TO_END: u32 = 2;

/// Detects DTMF keys in a stream of 8 kHz samples fed in any frame size.
#[derive(Debug, Clone)]
pub struct DtmfDetector {
    coeffs: [f32; 8],
    block: [f32; BLOCK],
    filled: usize,
    /// The key hit by the last blocks, and how many in a row.
    candidate: Option<(DtmfDigit, u32)>,
    /// A recognised key, and blocks without it since.
    active: Option<(DtmfDigit, u32)>,
    misses: u32,
    events: VecDeque<DtmfEvent>,
}

impl Default for DtmfDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl DtmfDetector {
    pub fn new() -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(&COLS)) {
            *c = goertzel_coeff(*f, RATE);
        }
        DtmfDetector {
            coeffs,
            block: [0.0; BLOCK],
            filled: 0,
            candidate: None,
            active: None,
            misses: 0,
            events: VecDeque::with_capacity(4),
        }
    }

    /// Feeds 8 kHz samples.
    pub fn process(&mut self, pcm: &[i16]) {
        for &s in pcm {
            self.block[self.filled] = f32::from(s) / 32768.0;
            self.filled += 1;
            if self.filled == BLOCK {
                self.filled = 0;
                let hit = self.analyse();
                self.on_block(hit);
            }
        }
    }

    /// The next key that ended.
    pub fn poll_event(&mut self) -> Option<DtmfEvent> {
        self.events.pop_front()
    }

    /// The key sounding now, if one has been recognised.
    pub fn current(&self) -> Option<DtmfDigit> {
        self.active.map(|(d, _)| d)
    }

    fn analyse(&self) -> Option<DtmfDigit> {
        let mut power = [0.0f32; 8];
        for (p, &coeff) in power.iter_mut().zip(&self.coeffs) {
            *p = goertzel_power(&self.block, coeff);
        }
        let energy: f32 = self.block.iter().map(|x| x * x).sum();
        let (rows, cols) = power.split_at(4);
        let (r, row) = strongest(rows);
        let (c, col) = strongest(cols);
        let accepted = row >= MIN_POWER
            && col >= MIN_POWER
            && row <= col * NORMAL_TWIST
            && col <= row * REVERSE_TWIST
            && stands_out(rows, r)
            && stands_out(cols, c)
            // A pure tone of amplitude A gives power (A·N/2)² and energy N·A²/2.
            && row + col >= MIN_TONE_SHARE * energy * BLOCK as f32 / 2.0;
        accepted.then_some(KEYS[r][c])
    }

    fn on_block(&mut self, hit: Option<DtmfDigit>) {
        self.candidate = match (hit, self.candidate) {
            (Some(d), Some((c, n))) if c == d => Some((d, n + 1)),
            (Some(d), _) => Some((d, 1)),
            (None, _) => None,
        };
        match self.active {
            Some((digit, blocks)) if hit == Some(digit) => {
                self.active = Some((digit, blocks + 1 + self.misses));
                self.misses = 0;
            }
            Some((digit, blocks)) => {
                self.misses += 1;
                if self.misses >= MISSES_TO_END || hit.is_some() {
                    self.events.push_back(DtmfEvent {
                        digit,
                        duration_ms: blocks * BLOCK as u32 * 1000 / RATE as u32,
                    });
                    self.active = None;
                    self.misses = 0;
                }
            }
            None => {}
        }
        if self.active.is_none()
            && let Some((digit, n)) = self.candidate
            && n >= HITS_TO_START
        {
            self.active = Some((digit, n));
        }
    }
}

/// Goertzel coefficient for frequency `f` at sample rate `rate`.
pub(crate) fn goertzel_coeff(f: f32, rate: f32) -> f32 {
    2.0 * (2.0 * std::f32::consts::PI * f / rate).cos()
}

/// Power of one frequency over a block: for a sinusoid of amplitude A at that frequency
/// filling the block, about (A·N/2)².
pub(crate) fn goertzel_power(block: &[f32], coeff: f32) -> f32 {
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in block {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

fn strongest(group: &[f32]) -> (usize, f32) {
    group.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

fn stands_out(group: &[f32], peak: usize) -> bool {
    group
        .iter()
        .enumerate()
        .all(|(i, &p)| i == peak || p * RELATIVE_PEAK < group[peak])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::Rng;

    fn digit_freqs(digit: DtmfDigit) -> (f32, f32) {
        digit.frequencies().expect("a key with tones")
    }

    /// Appends `ms` of the sum of `tones` (frequency, amplitude as a share of full scale).
    pub(crate) fn tone(out: &mut Vec<i16>, tones: &[(f32, f32)], ms: usize) {
        let start = out.len();
        for n in 0..ms * 8 {
            let t = (start + n) as f32 / RATE;
            let v: f32 = tones
                .iter()
                .map(|(f, a)| a * (2.0 * std::f32::consts::PI * f * t).sin())
                .sum();
            out.push((v * 32767.0).clamp(-32768.0, 32767.0) as i16);
        }
    }

    fn silence(out: &mut Vec<i16>, ms: usize) {
        out.extend(std::iter::repeat_n(0, ms * 8));
    }

    fn detect(pcm: &[i16]) -> Vec<DtmfEvent> {
        let mut det = DtmfDetector::new();
        // Feed in 20 ms frames, then flush with silence so the last key ends.
        for frame in pcm.chunks(160) {
            det.process(frame);
        }
        det.process(&[0; 800]);
        std::iter::from_fn(|| det.poll_event()).collect()
    }

    #[test]
    fn detects_all_sixteen_keys_in_sequence() {
        let keys = "123A456B789C*0#D";
        let mut pcm = Vec::new();
        for c in keys.chars() {
            let (row, col) = digit_freqs(DtmfDigit::from_char(c).unwrap());
            tone(&mut pcm, &[(row, 0.3), (col, 0.3)], 80);
            silence(&mut pcm, 60);
        }
        let events = detect(&pcm);
        let got: String = events.iter().map(|e| e.digit.as_char()).collect();
        assert_eq!(got, keys);
        for e in events {
            assert!((60..=100).contains(&e.duration_ms), "{e:?}");
        }
    }

    #[test]
    fn tolerates_noise_twist_and_frequency_error() {
        let mut rng = Rng::new(7);
        let mut pcm = Vec::new();
        // '5' with the column 3 dB weaker and both tones 1.5% high, then '9' with the row
        // 3 dB weaker, then 'D' (the highest column) 1.5% low; all in white noise about 20 dB
        // below the tones.
        tone(
            &mut pcm,
            &[(770.0 * 1.015, 0.2), (1336.0 * 1.015, 0.14)],
            100,
        );
        silence(&mut pcm, 60);
        tone(&mut pcm, &[(852.0, 0.14), (1477.0, 0.2)], 100);
        silence(&mut pcm, 60);
        tone(
            &mut pcm,
            &[(941.0 * 0.985, 0.2), (1633.0 * 0.985, 0.2)],
            100,
        );
        for s in &mut pcm {
            let noise = (rng.unit() as f32 - 0.5) * 0.06 * 32767.0;
            *s = (f32::from(*s) + noise) as i16;
        }
        let got: String = detect(&pcm).iter().map(|e| e.digit.as_char()).collect();
        assert_eq!(got, "59D");
    }

    #[test]
    fn short_tones_excessive_twist_and_single_tones_are_not_keys() {
        let cases: Vec<(&str, Vec<i16>)> = vec![
            ("20 ms tone", {
                let mut p = Vec::new();
                tone(&mut p, &[(697.0, 0.3), (1209.0, 0.3)], 20);
                p
            }),
            ("single 697 Hz", {
                let mut p = Vec::new();
                tone(&mut p, &[(697.0, 0.5)], 500);
                p
            }),
            ("single 1336 Hz", {
                let mut p = Vec::new();
                tone(&mut p, &[(1336.0, 0.5)], 500);
                p
            }),
            ("12 dB twist", {
                let mut p = Vec::new();
                tone(&mut p, &[(697.0, 0.4), (1209.0, 0.1)], 200);
                p
            }),
            ("two rows", {
                let mut p = Vec::new();
                tone(&mut p, &[(697.0, 0.3), (852.0, 0.3)], 200);
                p
            }),
            ("3.5% off", {
                let mut p = Vec::new();
                tone(&mut p, &[(697.0 * 1.035, 0.3), (1209.0 * 1.035, 0.3)], 200);
                p
            }),
        ];
        for (name, pcm) in cases {
            assert_eq!(detect(&pcm), [], "{name}");
        }
    }

    #[test]
    fn a_dropout_inside_a_key_does_not_make_two() {
        let mut pcm = Vec::new();
        tone(&mut pcm, &[(941.0, 0.3), (1336.0, 0.3)], 100);
        silence(&mut pcm, 10);
        tone(&mut pcm, &[(941.0, 0.3), (1336.0, 0.3)], 100);
        let events = detect(&pcm);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].digit, DtmfDigit::D0);
    }

    /// Voiced speech stand-in: a gliding fundamental with 30 harmonics shaped by two formants,
    /// plus syllable-rate amplitude changes; and white noise.
    #[test]
    fn speech_like_signals_and_noise_do_not_talk_off() {
        let mut rng = Rng::new(3);
        for f0 in [95.0f32, 100.0, 117.0, 140.0, 175.0, 210.0, 240.0] {
            let mut pcm = Vec::with_capacity(8000 * 3);
            let mut phase = 0.0f32;
            for n in 0..8000 * 3 {
                let t = n as f32 / RATE;
                let f = f0 * (1.0 + 0.08 * (2.0 * std::f32::consts::PI * 0.7 * t).sin());
                phase += 2.0 * std::f32::consts::PI * f / RATE;
                let envelope = 0.5 + 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).sin().abs();
                let mut v = 0.0;
                for h in 1..=30 {
                    let hf = f * h as f32;
                    let formant = 1.0 / (1.0 + ((hf - 700.0) / 150.0).powi(2))
                        + 0.6 / (1.0 + ((hf - 1250.0) / 200.0).powi(2));
                    v += formant * (phase * h as f32).sin();
                }
                pcm.push((v * envelope * 6000.0).clamp(-32768.0, 32767.0) as i16);
            }
            assert_eq!(detect(&pcm), [], "f0 {f0}");
        }
        let noise: Vec<i16> = (0..8000 * 3)
            .map(|_| ((rng.unit() - 0.5) * 20000.0) as i16)
            .collect();
        assert_eq!(detect(&noise), []);
    }
}
