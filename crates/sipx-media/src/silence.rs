//! Digital silence: a frame that carries nothing at all (the codecs' zero codes), as phones
//! send while muted or silent and as a mix of nobody is. It is not worth encoding toward a room
//! (its listeners hear silence either way), nor toward a peer that accepts discontinuous
//! transmission (Opus with `usedtx=1`: its decoder fills the gap with the same silence).
//!
//! Toward every other peer silence is still encoded and sent: G.711 without comfort noise is a
//! continuous stream (see ARCHITECTURE.md), and a stateful encoder cannot skip frames without
//! the receiver noticing. Caching the encoder's output for silence instead was measured and
//! ruled out: G.711 costs nothing to encode, and Opus without DTX never settles into a repeating
//! output exactly (its CELT layer drifts; at 48 kHz the cycle breaks after about 90 packets).

/// The largest magnitude a sample of digital silence has: A-law has no zero code, and its two
/// closest (0xD5 and 0x55) decode to ±8, -72 dBov.
const SILENT_MAGNITUDE: u16 = 8;

/// True when every sample of `pcm` is within the codecs' zero codes (±8).
pub fn is_digital_silence(pcm: &[i16]) -> bool {
    pcm.iter().all(|s| s.unsigned_abs() <= SILENT_MAGNITUDE)
}

#[cfg(test)]
mod tests {
    use sipx_codec::tone::Sine;

    use super::*;

    #[test]
    fn the_codecs_zero_codes_are_digital_silence_and_a_faint_tone_is_not() {
        assert!(is_digital_silence(&[0; 160]));
        assert!(is_digital_silence(&[8, -8, 0, 8]));
        assert!(is_digital_silence(&[]));
        assert!(!is_digital_silence(&[0, 0, 9, 0]));
        assert!(!is_digital_silence(&[0, i16::MIN, 0]));
        let faint = Sine::new(1000.0, 8000, 40.0).take(160);
        assert!(!is_digital_silence(&faint));
    }
}
