//! The quadrature mirror filters that split 16 kHz audio into two 8 kHz sub-bands and join them
//! again: one symmetric 24-tap low-pass, used in polyphase form.

use super::adpcm::sat16;
use super::tables::QMF;

/// Scaling of the split: the taps carry 2^13 and the sub-bands run at half the 16-bit PCM
/// scale (the standard's codec works on 14-bit input with headroom; the lowest input bit is
/// below its resolution).
const SPLIT_SHIFT: u32 = 14;

/// Scaling of the join: undoes [`SPLIT_SHIFT`], with the factor 2 of the interpolation.
const JOIN_SHIFT: u32 = 11;

/// Splits pairs of 16 kHz samples into one lower and one higher sub-band sample.
#[derive(Clone, Debug, Default)]
pub(super) struct TransmitQmf {
    /// The last 24 input samples, oldest first.
    history: [i32; 24],
}

impl TransmitQmf {
    /// Takes the next two input samples (in time order) and returns `(lower, higher)`.
    pub(super) fn split(&mut self, first: i16, second: i16) -> (i32, i32) {
        self.history.copy_within(2.., 0);
        self.history[22] = i32::from(first);
        self.history[23] = i32::from(second);
        // Odd taps see the newer sample of each pair, even taps the older one; the sum is the
        // plain low-pass, the difference its mirror image about 4 kHz.
        let (mut odd, mut even) = (0, 0);
        for pair in 0..12 {
            even += QMF[2 * pair] * self.history[2 * pair];
            odd += QMF[2 * pair + 1] * self.history[2 * pair + 1];
        }
        (
            sat16((odd + even) >> SPLIT_SHIFT),
            sat16((odd - even) >> SPLIT_SHIFT),
        )
    }
}

/// Joins one lower and one higher sub-band sample into two 16 kHz samples.
#[derive(Clone, Debug, Default)]
pub(super) struct ReceiveQmf {
    /// Past lower − higher values, newest first.
    difference: [i32; 12],
    /// Past lower + higher values, newest first.
    sum: [i32; 12],
}

impl ReceiveQmf {
    /// Takes reconstructed `(lower, higher)` samples and returns two output samples in time
    /// order, not yet saturated to 16 bits.
    pub(super) fn join(&mut self, lower: i32, higher: i32) -> [i32; 2] {
        self.difference.copy_within(0..11, 1);
        self.sum.copy_within(0..11, 1);
        self.difference[0] = lower - higher;
        self.sum[0] = lower + higher;
        let (mut first, mut second) = (0, 0);
        for i in 0..12 {
            first += QMF[2 * i] * self.difference[i];
            second += QMF[2 * i + 1] * self.sum[i];
        }
        [first >> JOIN_SHIFT, second >> JOIN_SHIFT]
    }
}
