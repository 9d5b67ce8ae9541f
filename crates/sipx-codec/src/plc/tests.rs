//! Concealment quality on periodic signals, the fade on long loss, and the return.

use super::*;
use crate::tone::{Sine, mean_power};

/// Plays `signal` in 20 ms frames through a concealer, losing the frames in `lost`; returns
/// what would be heard.
fn play(signal: &[i16], rate: u32, lost: &[usize]) -> Vec<i16> {
    let frame = rate as usize / 50;
    let mut concealer = Concealer::new(rate);
    let mut heard = Vec::with_capacity(signal.len());
    for (index, chunk) in signal.chunks(frame).enumerate() {
        let mut buffer = chunk.to_vec();
        if lost.contains(&index) {
            concealer.conceal(&mut buffer);
        } else {
            concealer.receive(&mut buffer);
        }
        heard.extend(buffer);
    }
    heard
}

/// Error energy of `heard` against `signal` over a range.
fn error_energy(signal: &[i16], heard: &[i16], range: std::ops::Range<usize>) -> f64 {
    signal[range.clone()]
        .iter()
        .zip(&heard[range])
        .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
        .sum()
}

#[test]
fn one_lost_frame_of_a_periodic_signal_is_concealed_far_better_than_silence() {
    // (frequency, rate, largest error relative to zero-fill)
    let cases = [
        (250.0, 8000, 0.05),
        (200.0, 8000, 0.05),
        (440.0, 8000, 0.25),
        (300.0, 16000, 0.1),
    ];
    for (frequency, rate, limit) in cases {
        let signal = Sine::new(frequency, rate, 8000.0).take(rate as usize / 2);
        let frame = rate as usize / 50;
        let heard = play(&signal, rate, &[10]);
        let concealed = error_energy(&signal, &heard, 10 * frame..11 * frame);
        let zero_fill = error_energy(&signal, &vec![0; signal.len()], 10 * frame..11 * frame);
        let ratio = concealed / zero_fill;
        assert!(
            ratio < limit,
            "{frequency} Hz at {rate}: error {ratio:.3} of zero-fill"
        );
        // The frames before the loss are untouched.
        assert_eq!(heard[..10 * frame], signal[..10 * frame]);
    }
}

#[test]
fn a_long_loss_fades_to_silence_after_60_ms() {
    let signal = Sine::new(250.0, 8000, 8000.0).take(8000);
    let heard = play(&signal, 8000, &[10, 11, 12, 13, 14]);
    let at = |ms: usize| 10 * 160 + ms * 8;
    let first = mean_power(&heard[at(0)..at(10)]);
    let fourth = mean_power(&heard[at(30)..at(40)]);
    let sixth = mean_power(&heard[at(50)..at(60)]);
    assert!(
        first > 0.4 * mean_power(&signal),
        "first 10 ms at full level"
    );
    assert!(
        fourth < 0.5 * first && sixth < 0.1 * first,
        "{first} {fourth} {sixth}"
    );
    assert!(
        heard[at(60)..at(100)].iter().all(|&s| s == 0),
        "silence after 60 ms"
    );
}

#[test]
fn the_return_to_good_frames_is_smooth() {
    let signal = Sine::new(250.0, 8000, 8000.0).take(8000);
    let heard = play(&signal, 8000, &[10, 11]);
    // A 250 Hz sine at 8000 changes by at most 2π·250/8000·8000 ≈ 1571 per sample; the blend
    // keeps the junction and the following samples within a small multiple of that.
    let boundary = 12 * 160;
    let largest_step = heard[boundary - 5..boundary + 80]
        .windows(2)
        .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
        .max()
        .unwrap_or(0);
    assert!(largest_step < 2500, "step {largest_step}");
    // After the blend (10 ms after 40 ms of loss), the good frame plays unchanged.
    assert_ne!(
        heard[boundary..boundary + 80],
        signal[boundary..boundary + 80]
    );
    assert_eq!(
        heard[boundary + 80..13 * 160],
        signal[boundary + 80..13 * 160]
    );
}

#[test]
fn concealment_before_any_audio_is_silence() {
    let mut concealer = Concealer::new(8000);
    let mut out = [7i16; 160];
    concealer.conceal(&mut out);
    assert!(out.iter().all(|&s| s == 0));
}

#[test]
fn pitch_estimate_finds_the_period_of_a_voiced_like_signal() {
    for (period, scale) in [(50, 1), (97, 1), (119, 1), (100, 2), (201, 2)] {
        // Five harmonics with falling amplitude: band-limited like voiced speech.
        let history: Vec<f32> = (0..HISTORY_LEN * scale)
            .map(|i| {
                (1..=5)
                    .map(|k| {
                        let phase = std::f32::consts::TAU * (k * i) as f32 / period as f32;
                        1000.0 / k as f32 * (phase + k as f32).cos()
                    })
                    .sum()
            })
            .collect();
        let found = estimate_pitch(&history, scale);
        assert_eq!(found, period, "period {period} scale {scale}");
    }
}
