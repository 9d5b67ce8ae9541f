//! RFC 6464 audio levels: how loud a frame is, in -dBov, for the SFU's active-speaker choice.

/// The level of `pcm` in -dBov, 0 (loudest) to 127 (silence), as RFC 6464 §3 defines it: the
/// frame's RMS relative to the overload point, a full-scale square wave (as WebRTC measures
/// it: a full-scale sine is 3).
pub fn audio_level(pcm: &[i16]) -> u8 {
    // i64 holds the sum of squares of 2^33 full-scale samples.
    let energy: i64 = pcm.iter().map(|&s| i64::from(s) * i64::from(s)).sum();
    if energy == 0 {
        return 127;
    }
    let mean = energy as f64 / pcm.len() as f64;
    let dbov = 10.0 * (mean / (32768.0 * 32768.0)).log10();
    // The clamp bounds the value to 0..=127, so the cast keeps it.
    (-dbov).round().clamp(0.0, 127.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipx_codec::tone::Sine;

    #[test]
    fn silence_is_127_and_loud_tones_are_near_0() {
        assert_eq!(audio_level(&[0; 160]), 127);
        assert_eq!(audio_level(&[]), 127);
        assert_eq!(audio_level(&[i16::MIN; 160]), 0);
        // A sine peaking at full scale: RMS 3 dB under the overload point.
        let loud = Sine::new(1000.0, 8000, 32767.0).take(160);
        assert_eq!(audio_level(&loud), 3);
        // RMS of 3277 is -20 dBov: peak 3277·√2.
        let quiet = Sine::new(1000.0, 8000, 3276.8 * 2f64.sqrt()).take(160);
        assert_eq!(audio_level(&quiet), 20);
        // A single ±1 sample per frame is far under the scale's end.
        let mut faint = [0i16; 160];
        faint[0] = 1;
        assert_eq!(audio_level(&faint), 112);
    }
}
