//! A small polyphase resampler for the integer ratios between SIPx's PCM rates (8, 16 and
//! 48 kHz: factors 2, 3 and 6 either way). Used only where a codec cannot run at the leg's
//! frame rate itself (G.711 on a 16 or 48 kHz leg, G.722 on a 48 kHz one).
//!
//! One Kaiser-windowed sinc low-pass (β = 8, about 80 dB stop band) at 45% of the lower rate
//! serves both directions: before decimation it removes what would alias, after zero-stuffing
//! interpolation it removes the images. Polyphase: interpolation runs one short filter per
//! output phase and decimation computes only the kept outputs. State lives in a fixed delay
//! line, so [`Resampler::process`] never allocates and streams across calls.

use std::f64::consts::PI;

/// Filter taps per polyphase branch: the transition band is about 1.6 kHz wide at 48 kHz.
const TAPS_PER_PHASE: usize = 32;
/// Cut-off as a fraction of the lower rate (its Nyquist frequency is 0.5).
const CUTOFF: f64 = 0.45;
const KAISER_BETA: f64 = 8.0;

/// Converts a stream of mono `i16` samples between two rates whose ratio is an integer.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    /// Interpolation factor (1 when decimating).
    up: usize,
    /// Decimation factor (1 when interpolating).
    down: usize,
    /// Interpolation: `up` branches of `TAPS_PER_PHASE` each, branch-major. Decimation: the
    /// whole filter, newest-sample first.
    coeffs: Box<[f32]>,
    /// Input history, stored twice so the newest `taps` samples are always one slice.
    line: Box<[f32]>,
    taps: usize,
    at: usize,
    /// Decimation: inputs since the last output.
    phase: usize,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz, or `None` unless one rate is 2 to 6 times the
    /// other (equal rates need none).
    pub fn new(from: u32, to: u32) -> Option<Self> {
        let (hi, lo) = (from.max(to), from.min(to));
        if lo == 0 || hi == lo || !hi.is_multiple_of(lo) || hi / lo > 6 {
            return None;
        }
        let factor = (hi / lo) as usize;
        let (up, down) = if to >= from { (factor, 1) } else { (1, factor) };
        let len = TAPS_PER_PHASE * factor;
        let prototype = low_pass(len, CUTOFF / factor as f64);
        let (coeffs, taps): (Box<[f32]>, usize) = if up > 1 {
            // Branch p, tap k is prototype[k * up + p], scaled by `up` for the stuffed zeros.
            let mut c = vec![0.0; len];
            for p in 0..up {
                for k in 0..TAPS_PER_PHASE {
                    c[p * TAPS_PER_PHASE + k] = (prototype[k * up + p] * up as f64) as f32;
                }
            }
            (c.into(), TAPS_PER_PHASE)
        } else {
            (prototype.iter().map(|&h| h as f32).collect(), len)
        };
        Some(Resampler {
            from,
            to,
            up,
            down,
            coeffs,
            line: vec![0.0; 2 * taps].into(),
            taps,
            at: 0,
            phase: 0,
        })
    }

    pub fn from_rate(&self) -> u32 {
        self.from
    }

    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// How many outputs `inputs` samples make (exact for whole 20 ms frames).
    pub fn output_len(&self, inputs: usize) -> usize {
        inputs * self.up / self.down
    }

    /// The filter's group delay in output samples: what goes in comes out this much later.
    pub fn delay(&self) -> usize {
        (TAPS_PER_PHASE * self.up.max(self.down) - 1) / 2 / self.down
    }

    /// Resamples `input` into the start of `output`, returning the samples written. Stops early
    /// if `output` is full (the caller sizes it with [`Resampler::output_len`]).
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> usize {
        let mut written = 0;
        for &x in input {
            self.push(f32::from(x));
            if self.up > 1 {
                for p in 0..self.up {
                    let Some(out) = output.get_mut(written) else {
                        return written;
                    };
                    let branch = &self.coeffs[p * self.taps..(p + 1) * self.taps];
                    *out = to_i16(dot(branch, self.history()));
                    written += 1;
                }
            } else {
                self.phase += 1;
                if self.phase == self.down {
                    self.phase = 0;
                    let Some(out) = output.get_mut(written) else {
                        return written;
                    };
                    *out = to_i16(dot(&self.coeffs, self.history()));
                    written += 1;
                }
            }
        }
        written
    }

    /// Forgets the history (a new stream starts).
    pub fn reset(&mut self) {
        self.line.fill(0.0);
        self.at = 0;
        self.phase = 0;
    }

    fn push(&mut self, x: f32) {
        self.at = (self.at + self.taps - 1) % self.taps;
        self.line[self.at] = x;
        self.line[self.at + self.taps] = x;
    }

    /// The newest `taps` inputs, newest first.
    fn history(&self) -> &[f32] {
        &self.line[self.at..self.at + self.taps]
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn to_i16(v: f32) -> i16 {
    // `as` saturates: overshoot near full scale clips instead of wrapping.
    v.round() as i16
}

/// A linear-phase low-pass of `len` taps with cut-off `fc` (cycles per sample), Kaiser
/// windowed, normalised to unity gain at DC.
fn low_pass(len: usize, fc: f64) -> Vec<f64> {
    let centre = (len - 1) as f64 / 2.0;
    let i0_beta = bessel_i0(KAISER_BETA);
    let mut h: Vec<f64> = (0..len)
        .map(|i| {
            let t = i as f64 - centre;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * PI * fc * t).sin() / (PI * t)
            };
            let r = t / (centre + 1.0);
            let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / i0_beta;
            sinc * window
        })
        .collect();
    let sum: f64 = h.iter().sum();
    for v in &mut h {
        *v /= sum;
    }
    h
}

/// The modified Bessel function of the first kind, order 0, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, half) = (1.0, 1.0, x / 2.0);
    for k in 1..50 {
        term *= (half / k as f64).powi(2);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sipx_codec::tone::{Sine, goertzel_power, mean_power};

    /// Runs a tone of `freq` through `from` → `to` for 400 ms; returns (gain in dB at `freq`,
    /// power of everything else relative to the input, in dB), skipping the filter's warm-up.
    fn response(from: u32, to: u32, freq: f64, probe: f64) -> (f64, f64) {
        let mut r = Resampler::new(from, to).unwrap();
        let frame_in = from as usize / 50;
        let mut sine = Sine::new(freq, from, 10_000.0);
        let mut out = Vec::new();
        let mut buf = vec![0i16; r.output_len(frame_in)];
        for _ in 0..20 {
            let input = sine.take(frame_in);
            let n = r.process(&input, &mut buf);
            assert_eq!(n, buf.len());
            out.extend_from_slice(&buf);
        }
        let tail = &out[out.len() / 2..];
        let input_power = 10_000.0f64.powi(2) / 2.0;
        let gain = 10.0 * (goertzel_power(tail, probe, to) / input_power).log10();
        let rest = 10.0 * (mean_power(tail) / input_power).log10();
        (gain, rest)
    }

    #[test]
    fn passes_speech_band_tones_at_unity_gain() {
        for (from, to) in [
            (8000, 16000),
            (16000, 8000),
            (8000, 48000),
            (48000, 8000),
            (16000, 48000),
            (48000, 16000),
        ] {
            for freq in [300.0, 1000.0, 2500.0] {
                let (gain, _) = response(from, to, freq, freq);
                assert!(gain.abs() < 0.2, "{from}->{to} {freq} Hz: {gain:.2} dB");
            }
        }
    }

    #[test]
    fn decimation_removes_what_would_alias() {
        // Each tone would fold into the band below the new Nyquist frequency: 6 kHz at 16 kHz
        // to 2 kHz at 8 kHz, 5 kHz at 48 kHz to 3 kHz at 8 kHz, 12 kHz to 4 kHz at 16 kHz.
        for (from, to, freq) in [
            (16000, 8000, 6000.0),
            (48000, 8000, 5000.0),
            (48000, 16000, 12000.0),
        ] {
            let (_, total) = response(from, to, freq, 1000.0);
            assert!(total < -60.0, "{from}->{to} {freq} Hz leaks {total:.1} dB");
        }
    }

    #[test]
    fn interpolation_suppresses_images() {
        // 1 kHz at 8 kHz, stuffed to 48 kHz, has images at 7, 9, 15, 17... kHz.
        for (from, to) in [(8000, 16000), (8000, 48000), (16000, 48000)] {
            for image in [from as f64 - 1000.0, from as f64 + 1000.0] {
                if image >= to as f64 / 2.0 {
                    continue;
                }
                let (gain, _) = response(from, to, 1000.0, image);
                assert!(gain < -60.0, "{from}->{to} image at {image}: {gain:.1} dB");
            }
        }
    }

    #[test]
    fn refuses_ratios_it_cannot_do() {
        assert!(Resampler::new(8000, 12000).is_none());
        assert!(Resampler::new(8000, 96000).is_none());
        assert!(Resampler::new(0, 8000).is_none());
        assert!(Resampler::new(8000, 8000).is_none());
        let mut r = Resampler::new(8000, 48000).unwrap();
        assert_eq!(r.output_len(160), 960);
        // A short output buffer stops the run, no panic.
        let mut out = [0i16; 4];
        assert_eq!(r.process(&[1000; 10], &mut out), 4);
    }
}
