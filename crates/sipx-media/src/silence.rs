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

/// Skips a DTX encoder's work on digital silence, but only once the encoder has itself gone
/// quiet: the frames into a pause still go through it, so that it codes the fade and hangover
/// the peer's decoder conceals the pause from. Skipped at once, the peer conceals the last
/// speech frame over the whole pause, and hears it as noise.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DtxSkip {
    /// The encoder's last frame was one not to send.
    resting: bool,
}

impl DtxSkip {
    /// `encode`'s length for `pcm`, or 0 (send nothing) without calling it: with `dtx`, on
    /// digital silence after the encoder itself sent nothing.
    pub(crate) fn encode<E>(
        &mut self,
        dtx: bool,
        pcm: &[i16],
        encode: impl FnOnce(&[i16]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        if dtx && self.resting && is_digital_silence(pcm) {
            return Ok(0);
        }
        let encoded = encode(pcm);
        self.resting = matches!(encoded, Ok(0));
        encoded
    }
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
