//! G.711 against the standard: known values, code round trips, and every 16-bit input against
//! a reference built differently, by searching the decision intervals of G.711's tables.

use super::*;

/// Decision intervals `[lower, upper)` of one sign's magnitudes, from the standard's tables:
/// each segment has 16 equal intervals; `first_width` is the first interval of segment 0.
fn decision_intervals(steps: &[i32], first_width: i32) -> Vec<(i32, i32)> {
    let mut intervals = Vec::new();
    let mut lower = 0;
    for (segment, &step) in steps.iter().enumerate() {
        for interval in 0..16 {
            let width = if segment == 0 && interval == 0 {
                first_width
            } else {
                step
            };
            intervals.push((lower, lower + width));
            lower += width;
        }
    }
    intervals
}

/// Reference encoder: find the interval holding the magnitude (the top one also takes
/// everything above it), then code = sign, segment, interval within segment.
fn reference_encode(law: Law, sample: i16) -> u8 {
    let (value, intervals, invert) = match law {
        // μ-law in 14-bit units: segment 0 steps by 2 after a first interval of 1, each further
        // segment doubles the step (Table 2a of G.711).
        Law::Mu => (
            i32::from(sample) >> 2,
            decision_intervals(&[2, 4, 8, 16, 32, 64, 128, 256], 1),
            0x7F,
        ),
        // A-law in 13-bit units: segments 0 and 1 step by 2, then doubling (Table 1a).
        Law::A => (
            i32::from(sample) >> 3,
            decision_intervals(&[2, 2, 4, 8, 16, 32, 64, 128], 2),
            0x55,
        ),
    };
    let magnitude = if value < 0 { -value - 1 } else { value };
    let index = intervals
        .iter()
        .position(|&(lower, upper)| lower <= magnitude && magnitude < upper)
        .unwrap_or(intervals.len() - 1);
    let sign = if value < 0 { 0 } else { 0x80 };
    (sign | index as u8) ^ invert
}

#[test]
fn every_16_bit_sample_encodes_like_the_reference() {
    for law in [Law::Mu, Law::A] {
        for sample in i16::MIN..=i16::MAX {
            assert_eq!(
                law.encode(sample),
                reference_encode(law, sample),
                "{law:?} {sample}"
            );
        }
    }
}

#[test]
fn known_values() {
    let cases: [(Law, i16, u8, i16); 10] = [
        // (law, input, code, decoded value of that code)
        (Law::Mu, 0, 0xFF, 0),
        (Law::Mu, -1, 0x7F, 0),
        (Law::Mu, i16::MAX, 0x80, 32124),
        (Law::Mu, i16::MIN, 0x00, -32124),
        (Law::Mu, 1000, 0xCE, 988),
        (Law::A, 0, 0xD5, 8),
        (Law::A, -1, 0x55, -8),
        (Law::A, i16::MAX, 0xAA, 32256),
        (Law::A, i16::MIN, 0x2A, -32256),
        (Law::A, 1000, 0xFA, 1008),
    ];
    for (law, input, code, decoded) in cases {
        assert_eq!(law.encode(input), code, "{law:?} encode {input}");
        assert_eq!(law.decode(code), decoded, "{law:?} decode {code:#04x}");
    }
}

#[test]
fn every_code_decodes_and_reencodes_to_itself() {
    for code in 0..=255u8 {
        assert_eq!(
            Law::A.encode(Law::A.decode(code)),
            code,
            "A-law {code:#04x}"
        );
        // μ-law's negative zero decodes to 0, which the standard encodes as positive zero.
        let expected = if code == 0x7F { 0xFF } else { code };
        assert_eq!(
            Law::Mu.encode(Law::Mu.decode(code)),
            expected,
            "μ-law {code:#04x}"
        );
    }
}

#[test]
fn decoded_values_are_monotonic_in_the_code_order() {
    for law in [Law::Mu, Law::A] {
        let mut values: Vec<i16> = (0..=255).map(|c| law.decode(c)).collect();
        values.sort_unstable();
        values.dedup();
        // μ-law has two zeros; A-law has none.
        assert_eq!(
            values.len(),
            if law == Law::Mu { 255 } else { 256 },
            "{law:?}"
        );
    }
}

#[test]
fn frame_round_trip_through_encoder_and_decoder() {
    let pcm: Vec<i16> = (0..160)
        .map(|i| ((i * 409) % 65536 - 32768) as i16)
        .collect();
    for law in [Law::Mu, Law::A] {
        let mut payload = [0u8; 160];
        assert_eq!(G711Encoder::new(law).encode(&pcm, &mut payload), Ok(160));
        let mut decoded = [0i16; 160];
        assert_eq!(
            G711Decoder::new(law).decode(&payload, &mut decoded),
            Ok(160)
        );
        for (&original, &back) in pcm.iter().zip(&decoded) {
            // Half the largest step (1024 at 16 bits) inside the range; at the very top the
            // clipping to the largest code (±32124 or ±32256) dominates.
            assert!(
                (i32::from(original) - i32::from(back)).abs() <= 644,
                "{law:?} {original} {back}"
            );
        }
    }
}

#[test]
fn short_buffers_are_errors() {
    let mut small = [0u8; 10];
    assert_eq!(
        G711Encoder::new(Law::Mu).encode(&[0; 20], &mut small),
        Err(CodecError::BufferTooSmall {
            needed: 20,
            available: 10
        })
    );
    let mut small = [0i16; 10];
    assert_eq!(
        G711Decoder::new(Law::A).decode(&[0; 20], &mut small),
        Err(CodecError::BufferTooSmall {
            needed: 20,
            available: 10
        })
    );
}
