//! The limiter of a sum of voices: turns loud mixes down smoothly instead of clipping them.
//! Used by the room [`Mixer`](crate::mixer::Mixer) and the phone bridge's
//! [`RoomListener`](crate::bridge::RoomListener).

/// Output ceiling: a little under full scale, so rounding never reaches it.
const CEILING: f32 = 32_000.0;

/// Gain smoothing without look-ahead beyond the frame: the gain never lets a sample exceed
/// the ceiling, falls by about 2 ms per e-fold before a peak inside the frame, and recovers by
/// about 300 ms per e-fold, so loud mixes are turned down rather than clipped. Steps are
/// multiplicative so a low gain recovers as smoothly as a high one (an additive step would
/// modulate a heavily limited signal within each period and add harmonics).
#[derive(Debug, Clone)]
pub(crate) struct Limiter {
    gain: f32,
}

impl Limiter {
    pub(crate) fn new() -> Self {
        Limiter { gain: 1.0 }
    }

    pub(crate) fn apply(
        &mut self,
        input: &[i32],
        out: &mut [i16],
        gains: &mut [f32],
        steps: (f32, f32),
    ) {
        let (attack, release) = steps;
        let peak = input.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
        if self.gain >= 1.0 && peak as f32 <= CEILING {
            for (o, &x) in out.iter_mut().zip(input) {
                // |x| <= CEILING < i16::MAX, so this keeps the value.
                *o = x as i16;
            }
            return;
        }
        // Forward: at most what each sample allows, rising slowly after a peak.
        let mut g = self.gain;
        for (slot, &x) in gains.iter_mut().zip(input) {
            let allowed = if x == 0 {
                1.0
            } else {
                (CEILING / x.unsigned_abs() as f32).min(1.0)
            };
            g = (g * release).min(1.0).min(allowed);
            *slot = g;
        }
        // Backward: fall gradually into a peak instead of stepping down at it.
        let mut next = 1.0f32;
        for slot in gains.iter_mut().rev() {
            next = slot.min(next * attack);
            *slot = next;
        }
        for ((o, &x), &g) in out.iter_mut().zip(input).zip(gains.iter()) {
            // g <= CEILING/|x| for every sample, so the product fits; the clamp only
            // documents the range.
            *o = (x as f32 * g).round().clamp(-32768.0, 32767.0) as i16;
        }
        self.gain = gains.last().copied().unwrap_or(self.gain);
    }
}

/// Per-sample gain factors (attack, release) at `sample_rate`, for [`Limiter::apply`].
pub(crate) fn steps(sample_rate: u32) -> (f32, f32) {
    let rate = sample_rate.max(1) as f32;
    (1.0 + 1.0 / (0.002 * rate), 1.0 + 1.0 / (0.3 * rate))
}

/// Adds a frame to a running sum. i32 cannot overflow: 2^16 full-scale frames would be needed.
pub(crate) fn accumulate(total: &mut [i32], frame: &[i16]) {
    for (t, &x) in total.iter_mut().zip(frame) {
        *t += i32::from(x);
    }
}
