//! The parts of one SB-ADPCM sub-band that encoder and decoder share: the scale factor
//! adaptation and the pole-zero adaptive predictor (block 4 of G.722). Both sides must run these
//! identically, sample for sample, or they drift apart; so there is exactly one copy.
//!
//! All arithmetic follows the standard's 16-bit fixed point: additions saturate, products are
//! taken in 32 bits and shifted right (flooring).

use super::tables::{IH_TO_CLASS, ILB, QM2, QM4, RIL_TO_CLASS, WH, WL};

/// Saturates to the signed 16-bit range of the standard's arithmetic.
pub(super) fn sat16(x: i32) -> i32 {
    x.clamp(i16::MIN.into(), i16::MAX.into())
}

/// Limits a reconstructed sub-band sample to the range the receive QMF expects.
pub(super) fn limit_reconstructed(x: i32) -> i32 {
    x.clamp(-16384, 16383)
}

/// Fixed-point product of two 16-bit values, in the standard's Q15.
fn mul_q15(a: i32, b: i32) -> i32 {
    (a * b) >> 15
}

/// The constants that differ between the lower and higher sub-band's scale factor adaptation.
struct ScaleLaw {
    /// Log multipliers by magnitude class.
    weights: &'static [i32],
    /// Upper bound of the log scale factor.
    max_log: i32,
    /// Exponent bias of the antilog.
    shift_bias: i32,
}

const LOWER_LAW: ScaleLaw = ScaleLaw {
    weights: &WL,
    max_log: 18432,
    shift_bias: 8,
};
const HIGHER_LAW: ScaleLaw = ScaleLaw {
    weights: &WH,
    max_log: 22528,
    shift_bias: 10,
};

/// One sub-band's ADPCM state: the quantizer scale factor and the adaptive predictor.
#[derive(Clone, Debug)]
pub(super) struct SubBand {
    /// Log-domain scale factor (NBL / NBH).
    log_scale: i32,
    /// Linear quantizer scale factor (DETL / DETH).
    pub(super) scale: i32,
    predictor: Predictor,
}

impl SubBand {
    /// The lower sub-band in its reset state.
    pub(super) fn lower() -> Self {
        Self {
            log_scale: 0,
            scale: 32,
            predictor: Predictor::default(),
        }
    }

    /// The higher sub-band in its reset state.
    pub(super) fn higher() -> Self {
        Self {
            log_scale: 0,
            scale: 8,
            predictor: Predictor::default(),
        }
    }

    /// The predicted value of the current sample.
    pub(super) fn prediction(&self) -> i32 {
        self.predictor.signal
    }

    /// Advances the lower sub-band by one 6-bit code (the predictor sees only its top 4 bits).
    pub(super) fn advance_lower(&mut self, code: u8) {
        let ril = usize::from(code >> 2);
        let difference = mul_q15(self.scale, QM4[ril]);
        self.adapt_scale(&LOWER_LAW, RIL_TO_CLASS[ril]);
        self.predictor.update(difference);
    }

    /// Advances the higher sub-band by one 2-bit code.
    pub(super) fn advance_higher(&mut self, code: u8) {
        let ih = usize::from(code & 3);
        let difference = mul_q15(self.scale, QM2[ih]);
        self.adapt_scale(&HIGHER_LAW, IH_TO_CLASS[ih]);
        self.predictor.update(difference);
    }

    /// LOGSCL/LOGSCH then SCALEL/SCALEH: leak the log scale factor, add the class multiplier,
    /// and convert back to linear with the antilog table.
    fn adapt_scale(&mut self, law: &ScaleLaw, class: usize) {
        let leaked = mul_q15(self.log_scale, 32512);
        self.log_scale = (leaked + law.weights[class]).clamp(0, law.max_log);
        let mantissa = ILB[((self.log_scale >> 6) & 31) as usize];
        let shift = law.shift_bias - (self.log_scale >> 11);
        let linear = if shift < 0 {
            mantissa << -shift
        } else {
            mantissa >> shift
        };
        self.scale = linear << 2;
    }
}

/// Sign of a 16-bit value as the standard takes it (bit 15): zero counts as positive.
fn negative(x: i32) -> bool {
    x < 0
}

/// The adaptive predictor: a second-order pole section over the reconstructed signal plus a
/// sixth-order zero section over the quantized difference signal.
#[derive(Clone, Debug, Default)]
struct Predictor {
    /// Pole coefficients a1, a2.
    poles: [i32; 2],
    /// Zero coefficients b1..b6.
    zeros: [i32; 6],
    /// Quantized difference signal, d(n-1)..d(n-6).
    differences: [i32; 6],
    /// Partially reconstructed signal, p(n-1) and p(n-2).
    partials: [i32; 2],
    /// Reconstructed signal, r(n-1) and r(n-2).
    reconstructed: [i32; 2],
    /// Zero-section output for the current sample (SZ).
    zero_part: i32,
    /// Prediction for the current sample (S).
    signal: i32,
}

impl Predictor {
    /// Takes the quantized difference of the current sample, adapts the coefficients and
    /// predicts the next sample.
    fn update(&mut self, difference: i32) {
        let reconstructed = sat16(self.signal + difference);
        let partial = sat16(difference + self.zero_part);

        let poles = self.adapted_poles(partial);
        self.adapt_zeros(difference);

        self.differences.copy_within(0..5, 1);
        self.differences[0] = difference;
        self.partials = [partial, self.partials[0]];
        self.reconstructed = [reconstructed, self.reconstructed[0]];
        self.poles = poles;

        let pole_part = sat16(
            mul_q15(self.poles[0], sat16(2 * self.reconstructed[0]))
                + mul_q15(self.poles[1], sat16(2 * self.reconstructed[1])),
        );
        self.zero_part = self
            .zeros
            .iter()
            .zip(&self.differences)
            .fold(0, |sum, (&b, &d)| sat16(sum + mul_q15(b, sat16(2 * d))));
        self.signal = sat16(pole_part + self.zero_part);
    }

    /// UPPOL2 then UPPOL1: sign-sign adaptation of a2 and a1, with the stability limits.
    fn adapted_poles(&self, partial: i32) -> [i32; 2] {
        let [a1, a2] = self.poles;
        let same_as_last = negative(partial) == negative(self.partials[0]);
        let same_as_second = negative(partial) == negative(self.partials[1]);

        let a1_term = sat16(4 * a1);
        let a1_term = if same_as_last {
            sat16(-a1_term)
        } else {
            a1_term
        } >> 7;
        let step = if same_as_second { 128 } else { -128 };
        let new_a2 = sat16(sat16(a1_term + step) + mul_q15(a2, 32512)).clamp(-12288, 12288);

        let step = if same_as_last { 192 } else { -192 };
        let bound = sat16(15360 - new_a2);
        let new_a1 = sat16(step + mul_q15(a1, 32640)).clamp(-bound, bound);
        [new_a1, new_a2]
    }

    /// UPZERO: sign-sign adaptation of b1..b6 with leakage; no step when the difference is 0.
    fn adapt_zeros(&mut self, difference: i32) {
        let step = if difference == 0 { 0 } else { 128 };
        for (b, &past) in self.zeros.iter_mut().zip(&self.differences) {
            let signed = if negative(past) == negative(difference) {
                step
            } else {
                -step
            };
            *b = sat16(signed + mul_q15(*b, 32640));
        }
    }
}
