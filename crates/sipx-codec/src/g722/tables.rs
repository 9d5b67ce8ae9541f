//! The constants of ITU-T G.722 (SB-ADPCM at 64 kbit/s), as fixed-point integers.

/// Transmit and receive QMF coefficients h0..h11, scaled by 2^13. The 24-tap filter is
/// symmetric: h(23 - i) = h(i).
pub(super) const QMF_HALF: [i32; 12] = [3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876];

/// The full 24 taps, unfolded from [`QMF_HALF`] at compile time.
pub(super) const QMF: [i32; 24] = {
    let mut taps = [0; 24];
    let mut i = 0;
    while i < 12 {
        taps[i] = QMF_HALF[i];
        taps[23 - i] = QMF_HALF[i];
        i += 1;
    }
    taps
};

/// Lower sub-band quantizer decision levels (6 bits), normalised; index 1..=29 are used.
pub(super) const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// 6-bit lower sub-band code for a negative difference, by quantizer interval (1..=30).
pub(super) const ILN: [u8; 31] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
    10, 9, 8, 7, 6, 5, 4,
];

/// 6-bit lower sub-band code for a positive difference, by quantizer interval (1..=30).
pub(super) const ILP: [u8; 31] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39,
    38, 37, 36, 35, 34, 33, 32,
];

/// Lower sub-band inverse quantizer output for the full 6-bit code (used for the output signal).
pub(super) const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232,
    -9360, -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776,
    -2400, -2032, -1688, -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280,
    11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776,
    2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
];

/// Lower sub-band inverse quantizer output for the code truncated to 4 bits (used for the
/// predictor, which is why the lower band survives the 56 and 48 kbit/s modes).
pub(super) const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// Maps the 4-bit lower code to its magnitude class for the scale factor adaptation.
pub(super) const RIL_TO_CLASS: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Lower sub-band log scale factor multipliers, by magnitude class.
pub(super) const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];

/// Antilog table for the scale factors: 2^(i/32) scaled by 2^11.
pub(super) const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

/// Higher sub-band quantizer decision level, normalised.
pub(super) const Q2: i32 = 564;

/// 2-bit higher sub-band code for a negative difference, by interval (1 = inner, 2 = outer).
pub(super) const IHN: [u8; 3] = [0, 1, 0];

/// 2-bit higher sub-band code for a positive difference, by interval.
pub(super) const IHP: [u8; 3] = [0, 3, 2];

/// Higher sub-band inverse quantizer output, by 2-bit code.
pub(super) const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];

/// Maps the 2-bit higher code to its magnitude class.
pub(super) const IH_TO_CLASS: [usize; 4] = [2, 1, 2, 1];

/// Higher sub-band log scale factor multipliers, by magnitude class.
pub(super) const WH: [i32; 3] = [0, -214, 798];
