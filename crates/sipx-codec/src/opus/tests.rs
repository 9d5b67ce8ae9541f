//! Opus round trips at each rate, concealment, FEC recovery, and bad input.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::tone::{Sine, goertzel_power, mean_power, tone_snr_db};

/// Encodes `pcm` at `encode_rate` in 20 ms frames and returns the packets.
fn encode_all(pcm: &[i16], encode_rate: u32, options: &EncoderOptions) -> Vec<Vec<u8>> {
    let mut encoder = OpusEncoder::new(encode_rate, options).unwrap();
    let mut buffer = [0u8; 1500];
    pcm.chunks(encode_rate as usize / 50)
        .map(|frame| {
            let n = encoder.encode(frame, &mut buffer).unwrap();
            buffer[..n].to_vec()
        })
        .collect()
}

/// Decodes every packet into one stream at `rate`.
fn decode_all(packets: &[Vec<u8>], rate: u32) -> Vec<i16> {
    let mut decoder = OpusDecoder::new(rate).unwrap();
    let mut out = vec![0i16; packets.len() * rate as usize / 50];
    let mut written = 0;
    for packet in packets {
        written += decoder.decode(packet, &mut out[written..]).unwrap();
    }
    assert_eq!(written, out.len());
    out
}

#[test]
fn a_1khz_tone_survives_at_every_rate_pair() {
    for (encode_rate, decode_rate) in [
        (8000, 8000),
        (16000, 16000),
        (48000, 48000),
        (8000, 48000),
        (48000, 8000),
    ] {
        let tone = Sine::new(1000.0, encode_rate, 10000.0).take(encode_rate as usize);
        // 32 kbit/s: at libopus' automatic narrowband rates SILK's noise shaping leaves a pure
        // tone only 12-18 dB above the rest, which is fine for speech but a weak test.
        let options = EncoderOptions::default().bitrate(32000);
        let packets = encode_all(&tone, encode_rate, &options);
        let decoded = decode_all(&packets, decode_rate);
        // Skip the first 100 ms: the encoder's start-up and look-ahead.
        let settled = &decoded[decode_rate as usize / 10..];
        let snr = tone_snr_db(settled, 1000.0, decode_rate);
        let level = 10.0 * (mean_power(settled) / mean_power(&tone)).log10();
        assert!(
            snr > 25.0,
            "{encode_rate}->{decode_rate}: tone SNR {snr:.1} dB"
        );
        assert!(
            level.abs() < 2.0,
            "{encode_rate}->{decode_rate}: level {level:.1} dB"
        );
        let at_tone = goertzel_power(settled, 1000.0, decode_rate);
        for other in [500.0, 1500.0, 2000.0] {
            assert!(
                goertzel_power(settled, other, decode_rate) < at_tone / 100.0,
                "{other} Hz"
            );
        }
    }
}

#[test]
fn concealment_continues_the_tone() {
    let tone = Sine::new(1000.0, 8000, 10000.0).take(8000);
    let packets = encode_all(&tone, 8000, &EncoderOptions::default());
    let mut decoder = OpusDecoder::new(8000).unwrap();
    let mut frame = [0i16; 160];
    for packet in &packets[..20] {
        decoder.decode(packet, &mut frame).unwrap();
    }
    assert_eq!(decoder.conceal(&mut frame), Ok(160));
    assert!(tone_snr_db(&frame, 1000.0, 8000) > 10.0);
    assert!(mean_power(&frame) > mean_power(&tone) / 10.0);
    // A concealed stretch must be a valid Opus duration.
    assert_eq!(
        decoder.conceal(&mut [0; 100]),
        Err(CodecError::FrameSize {
            kind: KIND,
            samples: 100
        })
    );
}

#[test]
fn fec_recovers_a_lost_onset_that_concealment_cannot() {
    // Silence, then a tone that starts exactly in the frame that gets lost: concealment can
    // only extrapolate the silence, the FEC in the next packet carries the onset.
    let mut signal = vec![0i16; 8000];
    Sine::new(700.0, 8000, 12000.0).fill(&mut signal[20 * 160..]);
    let options = EncoderOptions::default()
        .expected_loss_percent(20)
        .bitrate(24000);
    let packets = encode_all(&signal, 8000, &options);

    let run = |use_fec: bool| {
        let mut decoder = OpusDecoder::new(8000).unwrap();
        let mut frame = [0i16; 160];
        for packet in &packets[..20] {
            decoder.decode(packet, &mut frame).unwrap();
        }
        let mut lost = [0i16; 160];
        if use_fec {
            assert_eq!(decoder.recover(&packets[21], &mut lost), Ok(160));
        } else {
            assert_eq!(decoder.conceal(&mut lost), Ok(160));
        }
        mean_power(&lost)
    };
    let recovered = run(true);
    let concealed = run(false);
    let original = mean_power(&signal[20 * 160..21 * 160]);
    assert!(
        recovered > original / 8.0,
        "recovered {recovered:.0} of {original:.0}"
    );
    assert!(concealed < original / 100.0, "concealed {concealed:.0}");
}

#[test]
fn dtx_sends_nothing_during_silence() {
    let silence = vec![0i16; 16000];
    let packets = encode_all(&silence, 16000, &EncoderOptions::default().dtx(true));
    let empty = packets.iter().filter(|p| p.is_empty()).count();
    assert!(
        empty > packets.len() / 2,
        "{empty} of {} frames not sent",
        packets.len()
    );
    let speech = encode_all(
        &Sine::new(300.0, 16000, 8000.0).take(16000),
        16000,
        &EncoderOptions::default().dtx(true),
    );
    assert!(speech.iter().skip(5).all(|p| p.len() > 2));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut decoder = OpusDecoder::new(8000).unwrap();
    let mut out = [0i16; 960];
    assert!(matches!(
        decoder.decode(&[], &mut out),
        Err(CodecError::Malformed { .. })
    ));
    // TOC code 3 (several frames) without its frame-count byte.
    assert!(matches!(
        decoder.decode(&[0x03], &mut out),
        Err(CodecError::Malformed { .. })
    ));
    for length in 1..64 {
        let garbage: Vec<u8> = (0..length).map(|i| (i * 37 + length) as u8).collect();
        let _ = decoder.decode(&garbage, &mut out);
    }
    let mut encoder = OpusEncoder::new(8000, &EncoderOptions::default()).unwrap();
    assert_eq!(
        encoder.encode(&[0; 100], &mut [0; 100]),
        Err(CodecError::FrameSize {
            kind: KIND,
            samples: 100
        })
    );
    assert!(OpusEncoder::new(44100, &EncoderOptions::default()).is_err());
    assert!(OpusEncoder::new(8000, &EncoderOptions::default().complexity(11)).is_err());
}

#[test]
fn a_peers_cbr_and_playback_rate_shape_the_packets() {
    // Speech-like input whose loudness varies: VBR sizes follow it, CBR (`cbr=1`) does not.
    let mut pcm = Sine::new(300.0, 16000, 9000.0).take(16000);
    for (i, s) in pcm.iter_mut().enumerate() {
        if (i / 1600) % 2 == 1 {
            *s /= 40;
        }
    }
    let sizes = |options: &EncoderOptions| -> Vec<usize> {
        encode_all(&pcm, 16000, options)
            .iter()
            .map(Vec::len)
            .collect()
    };
    let options = EncoderOptions::default().bitrate(20_000);
    let vbr = sizes(&options);
    let cbr = sizes(&EncoderOptions {
        cbr: true,
        ..options.clone()
    });
    assert!(vbr.iter().min() != vbr.iter().max(), "{vbr:?}");
    assert!(cbr.iter().all(|&n| n == cbr[0]), "{cbr:?}");
    // A decoder that plays back at 12 kHz is sent at most mediumband (TOC configurations
    // 0-7: SILK narrow- and mediumband), not the wideband 16 kHz input allows.
    let toc_config = |pcm: &[i16], options: &EncoderOptions| -> Vec<u8> {
        encode_all(pcm, 16000, options)
            .iter()
            .map(|p| p[0] >> 3)
            .collect()
    };
    let wide = Sine::new(6000.0, 16000, 6000.0).take(16000);
    for (s, w) in pcm.iter_mut().zip(wide) {
        *s = s.saturating_add(w);
    }
    let options = EncoderOptions::default().bitrate(32_000);
    assert!(toc_config(&pcm, &options).iter().any(|&c| c >= 8));
    let medium = toc_config(
        &pcm,
        &EncoderOptions {
            max_playback_rate: Some(12_000),
            ..options
        },
    );
    assert!(medium.iter().all(|&c| c < 8), "{medium:?}");
}
