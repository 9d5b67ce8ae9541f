//! The floor under a transcoded call: microseconds per 20 ms frame of the bare codec work,
//! measured on this machine. One PCMU ↔ Opus call does, per 20 ms, a PCMU decode + Opus encode
//! (phone to room) and an Opus decode + PCMU encode (room to phone); the media benchmark
//! compares whole-call costs against the sum printed here.
//!
//! ```sh
//! cargo run --release -p sipx-codec --example codec_floor -- [--complexity N] [--frames N]
//! ```

use std::hint::black_box;
use std::time::Instant;

use sipx_codec::tone::Sine;
use sipx_codec::{
    AudioDecoder, AudioEncoder, CodecError, CodecKind, EncoderOptions, new_decoder, new_encoder,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut complexity = 5;
    let mut frames = 5000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or("missing value")?;
        match arg.as_str() {
            "--complexity" => complexity = value.parse()?,
            "--frames" => frames = value.parse()?,
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let options = EncoderOptions::default().complexity(complexity);
    println!("µs per 20 ms frame, {frames} frames, Opus complexity {complexity}, FEC on");

    let pcmu = encode_and_decode(CodecKind::Pcmu, 8000, &options, frames)?;
    let opus = encode_and_decode(CodecKind::Opus, 8000, &options, frames)?;
    println!("{:<46}{pcmu:>8.2}", "PCMU encode + decode");
    println!(
        "{:<46}{opus:>8.2}",
        "Opus encode fed 8 kHz + decode to 8 kHz"
    );
    println!(
        "{:<46}{:>8.2}",
        "one PCMU <-> Opus call, both directions",
        pcmu + opus
    );

    println!("for comparison:");
    let g722 = encode_and_decode(CodecKind::G722, 16000, &options, frames)?;
    let opus_48k = encode_and_decode(CodecKind::Opus, 48000, &options, frames)?;
    println!("{:<46}{g722:>8.2}", "G.722 encode + decode at 16 kHz");
    println!("{:<46}{opus_48k:>8.2}", "Opus encode + decode at 48 kHz");
    Ok(())
}

/// Mean µs for encoding and decoding one 20 ms frame of speech-like audio, after a warm-up.
fn encode_and_decode(
    kind: CodecKind,
    rate: u32,
    options: &EncoderOptions,
    frames: usize,
) -> Result<f64, CodecError> {
    let mut encoder = new_encoder(kind, rate, options)?;
    let mut decoder = new_decoder(kind, rate)?;
    let frame = rate as usize / 50;
    let audio = speech_like(rate, 2 * rate as usize);
    let mut payload = vec![0u8; kind.max_payload_len(frame, rate)];
    let mut out = vec![0i16; frame];
    let mut step = |pcm: &[i16]| -> Result<usize, CodecError> {
        let n = encoder.encode(pcm, &mut payload)?;
        decoder.decode(&payload[..n], &mut out)
    };
    let mut input = audio.chunks_exact(frame).cycle();
    for pcm in input.by_ref().take(100) {
        black_box(step(pcm)?);
    }
    let start = Instant::now();
    for pcm in input.take(frames) {
        black_box(step(black_box(pcm))?);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / frames as f64)
}

/// Voiced-sounding audio: harmonics of a 140 Hz voice plus noise, in syllables (4 per second,
/// with short pauses), so the encoders work as hard as on speech.
fn speech_like(rate: u32, samples: usize) -> Vec<i16> {
    let mut audio = vec![0i16; samples];
    let mut part = vec![0i16; samples];
    for (frequency, amplitude) in [
        (140.0, 6000.0),
        (280.0, 3000.0),
        (420.0, 2000.0),
        (1100.0, 1500.0),
    ] {
        Sine::new(frequency, rate, amplitude).fill(&mut part);
        for (sample, &add) in audio.iter_mut().zip(&part) {
            *sample = sample.saturating_add(add);
        }
    }
    let mut noise: u32 = 0x1234_5678;
    let syllable = rate as usize / 4;
    for (i, sample) in audio.iter_mut().enumerate() {
        noise ^= noise << 13;
        noise ^= noise >> 17;
        noise ^= noise << 5;
        let voiced = i % syllable < syllable * 4 / 5;
        let level = if voiced { 1.0 } else { 0.05 };
        let noisy = f32::from(*sample) + ((noise >> 20) as f32 - 2048.0);
        *sample = (level * noisy) as i16;
    }
    audio
}
