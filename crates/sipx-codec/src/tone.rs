//! Test-signal helpers for tests and benchmarks: a sine generator (also the oscillator of the
//! media crate's in-band key tones), the Goertzel power at one frequency, and signal-to-noise
//! ratios. (DTMF detection lives in the media crate.)

use std::f64::consts::TAU;

/// A sine generator that continues its phase across frames.
#[derive(Clone, Debug)]
pub struct Sine {
    phase: f64,
    step: f64,
    amplitude: f64,
}

impl Sine {
    /// A sine of `frequency` Hz at `sample_rate`, peaking at `amplitude` (16-bit scale).
    pub fn new(frequency: f64, sample_rate: u32, amplitude: f64) -> Self {
        Self {
            phase: 0.0,
            step: TAU * frequency / f64::from(sample_rate),
            amplitude,
        }
    }

    /// The next sample, unrounded (to add several tones before rounding once).
    pub fn next_value(&mut self) -> f64 {
        let value = self.amplitude * self.phase.sin();
        self.phase = (self.phase + self.step) % TAU;
        value
    }

    /// Fills `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        for sample in out {
            // `as` saturates, so amplitudes above full scale clip rather than wrap.
            *sample = self.next_value().round() as i16;
        }
    }

    /// The next `samples` samples as a new vector (for tests).
    pub fn take(&mut self, samples: usize) -> Vec<i16> {
        let mut out = vec![0; samples];
        self.fill(&mut out);
        out
    }
}

/// Mean power per sample (16-bit scale squared).
pub fn mean_power(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
}

/// The mean power of the component at `frequency` by the Goertzel recurrence: a sine of
/// amplitude A gives about A²/2, the same scale as [`mean_power`]. Most exact when `samples`
/// holds a whole number of cycles.
pub fn goertzel_power(samples: &[i16], frequency: f64, sample_rate: u32) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let coefficient = 2.0 * (TAU * frequency / f64::from(sample_rate)).cos();
    let (mut previous, mut before) = (0.0, 0.0);
    for &sample in samples {
        let current = f64::from(sample) + coefficient * previous - before;
        before = previous;
        previous = current;
    }
    let magnitude_squared = previous * previous + before * before - coefficient * previous * before;
    2.0 * magnitude_squared / (samples.len() as f64).powi(2)
}

/// How much the tone at `frequency` stands above everything else in `samples`, in dB: its
/// Goertzel power over the rest of the mean power. Independent of codec delay.
pub fn tone_snr_db(samples: &[i16], frequency: f64, sample_rate: u32) -> f64 {
    let tone = goertzel_power(samples, frequency, sample_rate);
    let rest = (mean_power(samples) - tone).max(f64::MIN_POSITIVE);
    10.0 * (tone / rest).log10()
}

/// Signal-to-noise ratio of `signal` against `reference`, sample by sample, in dB.
pub fn snr_db(reference: &[i16], signal: &[i16]) -> f64 {
    let (mut power, mut noise) = (0.0, 0.0);
    for (&r, &s) in reference.iter().zip(signal) {
        power += f64::from(r).powi(2);
        noise += (f64::from(r) - f64::from(s)).powi(2);
    }
    10.0 * (power / noise.max(f64::MIN_POSITIVE)).log10()
}

/// The delay (in samples, up to `max_delay`) at which `signal` best matches `reference`, and
/// the SNR there: for codecs with look-ahead.
pub fn aligned_snr_db(reference: &[i16], signal: &[i16], max_delay: usize) -> (usize, f64) {
    (0..=max_delay.min(signal.len()))
        .map(|delay| {
            let n = reference.len().min(signal.len() - delay);
            (delay, snr_db(&reference[..n], &signal[delay..delay + n]))
        })
        .fold((0, f64::NEG_INFINITY), |best, candidate| {
            if candidate.1 > best.1 {
                candidate
            } else {
                best
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_finds_the_tone_and_not_its_neighbours() {
        let tone = Sine::new(1000.0, 8000, 10000.0).take(800);
        let power = goertzel_power(&tone, 1000.0, 8000);
        assert!((power / 50_000_000.0 - 1.0).abs() < 0.01, "{power}");
        assert!(goertzel_power(&tone, 1250.0, 8000) < power * 1e-4);
        assert!((mean_power(&tone) / 50_000_000.0 - 1.0).abs() < 0.01);
        assert!(tone_snr_db(&tone, 1000.0, 8000) > 60.0);
    }

    #[test]
    fn snr_of_a_known_error() {
        let tone = Sine::new(440.0, 8000, 10000.0).take(8000);
        let tenth: Vec<i16> = tone.iter().map(|&s| s - s / 10).collect();
        assert!((snr_db(&tone, &tenth) - 20.0).abs() < 0.2);
        let mut delayed = vec![0; 7];
        delayed.extend(&tone);
        assert_eq!(aligned_snr_db(&tone, &delayed, 20).0, 7);
    }
}
