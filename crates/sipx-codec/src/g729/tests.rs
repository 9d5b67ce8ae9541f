//! G.729 through bcg729: tone round trip, Annex B silence, bad payloads.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::tone::{Sine, mean_power, tone_snr_db};

fn round_trip(pcm: &[i16], dtx: bool) -> (Vec<usize>, Vec<i16>) {
    let mut encoder = G729Encoder::new(dtx).unwrap();
    let mut decoder = G729Decoder::new().unwrap();
    let mut sizes = Vec::new();
    let mut decoded = Vec::new();
    let mut payload = [0u8; 20];
    let mut frame = [0i16; 160];
    for chunk in pcm.chunks(160) {
        let n = encoder.encode(chunk, &mut payload).unwrap();
        sizes.push(n);
        if n == 0 {
            decoder.conceal(&mut frame).unwrap();
        } else {
            assert_eq!(
                decoder.decode(&payload[..n], &mut frame),
                Ok(n.div_ceil(10) * 80)
            );
        }
        decoded.extend_from_slice(&frame[..n.div_ceil(10).max(2) * 80]);
    }
    (sizes, decoded)
}

#[test]
fn a_tone_survives_the_round_trip() {
    let tone = Sine::new(500.0, 8000, 8000.0).take(8000);
    let (sizes, decoded) = round_trip(&tone, false);
    assert!(sizes.iter().all(|&n| n == 20), "two voice frames per 20 ms");
    let settled = &decoded[800..];
    let snr = tone_snr_db(settled, 500.0, 8000);
    let level = 10.0 * (mean_power(settled) / mean_power(&tone)).log10();
    assert!(snr > 10.0, "tone SNR {snr:.1} dB");
    assert!(level.abs() < 3.0, "level {level:.1} dB");
}

#[test]
fn annex_b_sends_little_or_nothing_in_silence() {
    let mut signal = Sine::new(500.0, 8000, 8000.0).take(4000);
    signal.extend(vec![0i16; 16000]);
    let (sizes, decoded) = round_trip(&signal, true);
    let silent = &sizes[50..];
    assert!(
        silent
            .iter()
            .all(|&n| n == 0 || n == 2 || n == 12 || n == 10 || n == 20)
    );
    let voice_bytes: usize = silent.iter().sum();
    assert!(
        voice_bytes < silent.len() * 20 / 4,
        "{voice_bytes} bytes for 1.6 s of silence"
    );
    assert!(mean_power(&decoded[8000..]) < 1000.0);
}

#[test]
fn bad_payloads_and_frames_are_errors() {
    let mut decoder = G729Decoder::new().unwrap();
    let mut out = [0i16; 320];
    for length in [0, 1, 3, 9, 11, 13] {
        assert!(
            matches!(
                decoder.decode(&vec![0x5A; length], &mut out),
                Err(CodecError::Malformed { .. })
            ),
            "{length}"
        );
    }
    assert!(matches!(
        decoder.decode(&[0; 30], &mut out[..160]),
        Err(CodecError::BufferTooSmall { .. })
    ));
    assert_eq!(decoder.decode(&[0xA5; 12], &mut out), Ok(160));
    assert!(decoder.conceal(&mut out[..100]).is_err());
    let mut encoder = G729Encoder::new(false).unwrap();
    assert!(encoder.encode(&[0; 100], &mut [0; 20]).is_err());
    assert!(encoder.encode(&[0; 160], &mut [0; 10]).is_err());
}
