//! Construction and dispatch through the enums, and the codec facts in `CodecKind`.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::tone::{Sine, mean_power, tone_snr_db};

/// Whether this build has `kind` (G.729 needs the feature).
fn built(kind: CodecKind) -> bool {
    kind != CodecKind::G729 || cfg!(feature = "g729")
}

#[test]
fn every_codec_and_rate_round_trips_a_tone_through_the_enums() {
    for kind in CodecKind::ALL.into_iter().filter(|&k| built(k)) {
        for &rate in kind.audio_rates() {
            let options = EncoderOptions::default().bitrate(32000);
            let mut encoder = new_encoder(kind, rate, &options).unwrap();
            let mut decoder = new_decoder(kind, rate).unwrap();
            assert_eq!((encoder.kind(), encoder.sample_rate()), (kind, rate));
            assert_eq!((decoder.kind(), decoder.sample_rate()), (kind, rate));

            let frame = rate as usize / 50;
            let tone = Sine::new(600.0, rate, 8000.0).take(rate as usize / 2);
            let mut payload = vec![0u8; kind.max_payload_len(frame, rate)];
            let mut out = vec![0i16; frame];
            let mut decoded = Vec::new();
            for chunk in tone.chunks(frame) {
                assert!(encoder.accepts_frame(chunk.len()), "{kind:?} at {rate}");
                let n = encoder.encode(chunk, &mut payload).unwrap();
                assert_eq!(
                    decoder.decode(&payload[..n], &mut out),
                    Ok(frame),
                    "{kind:?}"
                );
                decoded.extend_from_slice(&out);
            }
            let settled = &decoded[rate as usize / 10..];
            let snr = tone_snr_db(settled, 600.0, rate);
            assert!(snr > 10.0, "{kind:?} at {rate}: tone SNR {snr:.1} dB");

            // A lost frame after the tone is covered by something tone-like, not silence.
            assert_eq!(decoder.conceal(&mut out), Ok(frame), "{kind:?}");
            assert!(
                mean_power(&out) > mean_power(&tone) / 10.0,
                "{kind:?} at {rate}: concealment"
            );
        }
    }
}

#[test]
fn rates_a_codec_cannot_run_at_are_refused() {
    let options = EncoderOptions::default();
    let cases = [
        (CodecKind::Pcmu, 16000),
        (CodecKind::Pcma, 48000),
        (CodecKind::G722, 48000),
        (CodecKind::Opus, 44100),
        (CodecKind::G729, 16000),
    ];
    for (kind, rate) in cases {
        let refused = Err(CodecError::UnsupportedRate { kind, rate });
        assert_eq!(new_encoder(kind, rate, &options).map(|_| ()), refused);
        assert_eq!(new_decoder(kind, rate).map(|_| ()), refused);
    }
}

#[cfg(not(feature = "g729"))]
#[test]
fn g729_without_the_feature_says_so() {
    let not_built = Err(CodecError::NotBuilt {
        kind: CodecKind::G729,
    });
    let options = EncoderOptions::default();
    assert_eq!(
        new_encoder(CodecKind::G729, 8000, &options).map(|_| ()),
        not_built
    );
    assert_eq!(new_decoder(CodecKind::G729, 8000).map(|_| ()), not_built);
}

#[test]
fn codec_facts_for_rtp_and_sdp() {
    // (kind, encoding name, static payload type, RTP clock, native audio rate)
    let cases = [
        (CodecKind::Pcmu, "PCMU", Some(0), 8000, 8000),
        (CodecKind::Pcma, "PCMA", Some(8), 8000, 8000),
        (CodecKind::G722, "G722", Some(9), 8000, 16000),
        (CodecKind::Opus, "opus", None, 48000, 48000),
        (CodecKind::G729, "G729", Some(18), 8000, 8000),
    ];
    for (kind, name, payload_type, clock, native) in cases {
        assert_eq!(kind.encoding_name(), name);
        assert_eq!(kind.static_payload_type(), payload_type);
        assert_eq!(kind.rtp_clock_rate(), clock);
        assert_eq!(kind.native_audio_rate(), native);
        assert!(kind.supports_audio_rate(native));
    }
    assert_eq!(CodecKind::Opus.rtpmap_channels(), Some(2));
}

#[test]
fn rtp_ticks_follow_the_clock_not_the_audio() {
    // (kind, samples, audio rate, ticks): 20 ms each.
    let cases = [
        (CodecKind::Pcmu, 160, 8000, 160),
        (CodecKind::G722, 320, 16000, 160),
        (CodecKind::G722, 160, 8000, 160),
        (CodecKind::Opus, 160, 8000, 960),
        (CodecKind::Opus, 960, 48000, 960),
        (CodecKind::G729, 160, 8000, 160),
    ];
    for (kind, samples, rate, ticks) in cases {
        assert_eq!(
            kind.rtp_ticks(samples, rate),
            ticks,
            "{kind:?} {samples} at {rate}"
        );
    }
}

#[test]
fn valid_frame_lengths() {
    // (kind, samples, audio rate, valid)
    let cases = [
        (CodecKind::Pcmu, 1, 8000, true),
        (CodecKind::Pcmu, 160, 16000, false),
        (CodecKind::G722, 321, 16000, false),
        (CodecKind::G722, 161, 8000, true),
        (CodecKind::Opus, 20, 8000, true),
        (CodecKind::Opus, 480, 8000, true),
        (CodecKind::Opus, 240, 8000, false),
        (CodecKind::Opus, 100, 8000, false),
        (CodecKind::Opus, 2880, 48000, true),
        (CodecKind::G729, 240, 8000, true),
        (CodecKind::G729, 0, 8000, false),
        (CodecKind::G729, 100, 8000, false),
    ];
    for (kind, samples, rate, valid) in cases {
        assert_eq!(
            kind.is_valid_frame(samples, rate),
            valid,
            "{kind:?} {samples} at {rate}"
        );
    }
}

#[test]
fn short_output_buffers_are_errors_for_every_codec() {
    for kind in CodecKind::ALL.into_iter().filter(|&k| built(k)) {
        let rate = kind.audio_rates()[0];
        let frame = rate as usize / 50;
        let mut encoder = new_encoder(kind, rate, &EncoderOptions::default()).unwrap();
        let mut payload = vec![0u8; kind.max_payload_len(frame, rate)];
        let n = encoder.encode(&vec![1000; frame], &mut payload).unwrap();
        assert!(
            encoder.encode(&vec![1000; frame], &mut []).is_err(),
            "{kind:?}"
        );
        let mut decoder = new_decoder(kind, rate).unwrap();
        assert!(
            decoder
                .decode(&payload[..n], &mut vec![0; frame / 2])
                .is_err(),
            "{kind:?}"
        );
    }
}

#[test]
fn arbitrary_payloads_decode_or_fail_but_never_panic() {
    let mut state: u32 = 0x9E37_79B9;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    for kind in CodecKind::ALL.into_iter().filter(|&k| built(k)) {
        for &rate in kind.audio_rates() {
            let mut decoder = new_decoder(kind, rate).unwrap();
            // Room for the longest payload below at the widest expansion (Opus: 120 ms).
            let mut out = vec![0i16; rate as usize * 3];
            for _ in 0..500 {
                let length = (next() % 400) as usize;
                let payload: Vec<u8> = (0..length).map(|_| next() as u8).collect();
                if let Ok(samples) = decoder.decode(&payload, &mut out) {
                    assert!(samples <= out.len());
                }
            }
            // And the decoder still works afterwards.
            let frame = rate as usize / 50;
            assert_eq!(decoder.conceal(&mut out[..frame]), Ok(frame), "{kind:?}");
        }
    }
}
