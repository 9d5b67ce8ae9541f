//! The floor under a transcoded call: microseconds per 20 ms frame of the bare codec work,
//! measured on this machine. One PCMU ↔ Opus call does, per 20 ms, a PCMU decode + Opus encode
//! (phone to room) and an Opus decode + PCMU encode (room to phone); the media benchmark
//! compares whole-call costs against the sum printed here. `--rate 16000` prices a G.722 phone's
//! call instead (Opus at 16 kHz). The Opus encoder has the room path's
//! settings (`room_voice_options`: bitrate, complexity, FEC sized for no loss) unless flags
//! change them.
//!
//! ```sh
//! cargo run --release -p sipx-media --example codec_floor -- [--complexity N] [--frames N] \
//!     [--input FILE.ulaw] [--bitrate BPS] [--loss PERCENT] [--calls N] [--rate 8000|16000] \
//!     [--paced N [--threads T] [--seconds S]]
//! ```
//!
//! `--input` takes the 8 kHz audio from raw μ-law (what a load generator sends) instead of the
//! built-in speech-like signal, so a benchmark's floor is measured on the audio of its calls.
//! `--calls N` also measures N calls' codecs side by side, each frame going round all of them as
//! a media thread does: their states no longer fit the CPU caches, which one call's do.
//! `--paced N` measures N calls' codec work at the calls' own pace instead of back to back:
//! each 20 ms round in 20 steps 1 ms apart, each step taking its share of the calls and the
//! thread asleep in between, as a media thread runs it, the calls shared by `--threads T`
//! threads (default 1); the threads' CPU time, for `--seconds S` (default 5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use sipx_codec::tone::Sine;
use sipx_codec::{
    AudioDecoder, AudioEncoder, CodecError, CodecKind, EncoderOptions, new_decoder, new_encoder,
};
use sipx_media::bridge::room_voice_options;

#[path = "shared/voice_setup.rs"]
mod voice_setup;

/// The audio a measurement runs on: built in, or μ-law samples for 8 kHz runs.
type Input = Option<Vec<i16>>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rate = 8000;
    let mut frames = 5000;
    let mut calls = 1;
    let mut paced_calls = 0;
    let mut seconds = 5.0;
    let mut threads = 1;
    let mut input: Input = None;
    let mut flags = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or("missing value")?;
        match arg.as_str() {
            "--rate" => rate = value.parse()?,
            "--frames" => frames = value.parse()?,
            "--calls" => calls = value.parse()?,
            "--paced" => paced_calls = value.parse()?,
            "--seconds" => seconds = value.parse()?,
            "--threads" => threads = value.parse()?,
            flag if voice_setup::is_opus_flag(flag) => flags.push((arg, value)),
            "--input" => input = Some(read_ulaw(&value)?),
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let (phone, phone_name) = voice_setup::phone_codec(rate)?;
    let options = voice_setup::voice_options(rate, &flags)?;
    println!(
        "µs per 20 ms frame, {frames} frames, Opus at {} bit/s, complexity {}, FEC for {} % loss",
        options.bitrate.unwrap_or(0),
        options.complexity,
        options.expected_loss_percent
    );

    let khz = rate / 1000;
    let phone_us = encode_and_decode(phone, rate, &options, frames, &input, 1)?;
    let opus = encode_and_decode(CodecKind::Opus, rate, &options, frames, &input, 1)?;
    println!(
        "{:<46}{phone_us:>8.2}",
        format!("{phone_name} encode + decode")
    );
    println!(
        "{:<46}{opus:>8.2}",
        format!("Opus encode fed {khz} kHz + decode to {khz} kHz")
    );
    println!(
        "{:<46}{:>8.2}",
        format!("one {phone_name} <-> Opus call, both directions"),
        phone_us + opus
    );
    if calls > 1 {
        let rounds = (frames / calls).max(10);
        let phone_us = encode_and_decode(phone, rate, &options, rounds, &input, calls)?;
        let opus = encode_and_decode(CodecKind::Opus, rate, &options, rounds, &input, calls)?;
        println!(
            "{:<46}{:>8.2}",
            format!("per call, {calls} calls side by side"),
            phone_us + opus
        );
    }

    if paced_calls > 0 {
        let us = paced(
            phone,
            rate,
            &options,
            (paced_calls, threads),
            seconds,
            &input,
        )?;
        println!(
            "{:<46}{us:>8.2}",
            format!("per call, {paced_calls} calls at their pace, {threads} threads")
        );
    }

    // The other codecs are context, not the floor: a short run is enough (a floor run made as
    // long as a benchmark's window would spend most of its time here).
    let frames = frames.min(5000);
    println!("for comparison:");
    let g722 = encode_and_decode(
        CodecKind::G722,
        16000,
        &room_voice_options(16000),
        frames,
        &None,
        1,
    )?;
    let opus_48k = encode_and_decode(
        CodecKind::Opus,
        48000,
        &room_voice_options(48000),
        frames,
        &None,
        1,
    )?;
    println!("{:<46}{g722:>8.2}", "G.722 encode + decode at 16 kHz");
    println!("{:<46}{opus_48k:>8.2}", "Opus encode + decode at 48 kHz");
    Ok(())
}

/// Mean µs for encoding and decoding one 20 ms frame of speech-like audio, after a warm-up,
/// per call when `calls` encoder/decoder pairs take turns (each at its own place in the audio).
fn encode_and_decode(
    kind: CodecKind,
    rate: u32,
    options: &EncoderOptions,
    frames: usize,
    input: &Input,
    calls: usize,
) -> Result<f64, CodecError> {
    let mut pairs = (0..calls)
        .map(|_| Ok((new_encoder(kind, rate, options)?, new_decoder(kind, rate)?)))
        .collect::<Result<Vec<_>, CodecError>>()?;
    let frame = rate as usize / 50;
    let audio = audio_at(rate, input);
    let chunks: Vec<&[i16]> = audio.chunks_exact(frame).collect();
    let mut payload = vec![0u8; kind.max_payload_len(frame, rate)];
    let mut out = vec![0i16; frame];
    let mut round = |k: usize| -> Result<(), CodecError> {
        for (call, (encoder, decoder)) in pairs.iter_mut().enumerate() {
            let pcm = chunks[(k + call * 37) % chunks.len()];
            let n = encoder.encode(black_box(pcm), &mut payload)?;
            black_box(decoder.decode(&payload[..n], &mut out)?);
        }
        Ok(())
    };
    for k in 0..100 {
        round(k)?;
    }
    let start = Instant::now();
    for k in 100..100 + frames {
        round(k)?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / (frames * calls) as f64)
}

/// CPU µs per call per 20 ms of `calls` calls' codec work (phone codec and Opus, both ways)
/// done at the calls' pace by `threads` threads, each taking its share of the calls as a media
/// thread does: in batches of at most 12 spread evenly over the 20 ms (never fewer than 4
/// batches: a media thread wakes at least every 5 ms), asleep in between. The threads' own CPU
/// clocks, so time asleep or preempted does not count.
fn paced(
    phone: CodecKind,
    rate: u32,
    options: &EncoderOptions,
    (calls, threads): (usize, usize),
    seconds: f64,
    input: &Input,
) -> Result<f64, Box<dyn std::error::Error>> {
    let frame = rate as usize / 50;
    let audio = audio_at(rate, input);
    // What the phones send: the audio encoded once, in order, before anything is timed.
    let mut encoder = new_encoder(phone, rate, options)?;
    let mut payload = vec![0u8; frame];
    let payloads = audio
        .chunks_exact(frame)
        .map(|chunk| {
            let n = encoder.encode(chunk, &mut payload)?;
            Ok(payload[..n].to_vec())
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    let threads = threads.clamp(1, calls.max(1));
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = calls / threads + usize::from(t < calls % threads);
                let payloads = &payloads;
                scope.spawn(move || paced_thread(phone, rate, options, share, seconds, payloads))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or(Err(CodecError::Library {
                    kind: CodecKind::Opus,
                    message: "thread panicked",
                }))
            })
            .collect::<Result<Vec<(f64, usize)>, CodecError>>()
    })?;
    let cpu: f64 = results.iter().map(|r| r.0).sum();
    let done: usize = results.iter().map(|r| r.1).sum();
    Ok(cpu * 1e6 / done.max(1) as f64)
}

/// One thread of [`paced`]: (CPU seconds, frames done).
fn paced_thread(
    phone: CodecKind,
    rate: u32,
    options: &EncoderOptions,
    calls: usize,
    seconds: f64,
    payloads: &[Vec<u8>],
) -> Result<(f64, usize), CodecError> {
    // SIPx's media threads (sipx-server media/phases.rs): 12 legs a phase, 4 to 20 phases.
    let steps = calls.div_ceil(12).clamp(4, 20);
    let step_length = Duration::from_micros(20_000 / steps as u64);
    let mut codecs = (0..calls)
        .map(|_| {
            Ok((
                new_encoder(phone, rate, options)?,
                new_decoder(phone, rate)?,
                new_encoder(CodecKind::Opus, rate, options)?,
                new_decoder(CodecKind::Opus, rate)?,
            ))
        })
        .collect::<Result<Vec<_>, CodecError>>()?;
    let frame = rate as usize / 50;
    let mut payload = vec![0u8; CodecKind::Opus.max_payload_len(frame, rate).max(frame)];
    let (mut pcm, mut out) = (vec![0i16; frame], vec![0i16; frame]);
    let mut call_frame = |call: usize, k: usize| -> Result<(), CodecError> {
        let (phone_enc, phone_dec, opus_enc, opus_dec) = &mut codecs[call];
        // Phone to room: the phone's payload (encoded before, as the phone did) decoded,
        // encoded to Opus.
        phone_dec.decode(&payloads[(k + call * 37) % payloads.len()], &mut pcm)?;
        let n = opus_enc.encode(black_box(&pcm), &mut payload)?;
        // Room to phone: Opus decoded, encoded for the phone.
        opus_dec.decode(&payload[..n], &mut out)?;
        black_box(phone_enc.encode(&out, &mut payload)?);
        Ok(())
    };
    for k in 0..100 {
        for call in 0..calls {
            call_frame(call, k)?;
        }
    }
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    };
    let (start, cpu_start) = (Instant::now(), cpu());
    let end = start + Duration::from_secs_f64(seconds);
    let (mut due, mut step, mut done) = (start, 0, 0usize);
    while due < end {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let k = 100 + done / calls.max(1);
        for call in (step..calls).step_by(steps) {
            call_frame(call, k)?;
            done += 1;
        }
        step = (step + 1) % steps;
        due += step_length;
    }
    Ok((cpu() - cpu_start, done))
}

/// The audio to encode at `rate`: the input at 8 kHz, else the built-in speech-like signal.
fn audio_at(rate: u32, input: &Input) -> Vec<i16> {
    match input {
        Some(samples) if rate == 8000 => samples.clone(),
        _ => speech_like(rate, 2 * rate as usize),
    }
}

/// Raw μ-law bytes as linear samples (at least one 20 ms frame).
fn read_ulaw(path: &str) -> Result<Vec<i16>, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path)?;
    if bytes.len() < 160 {
        return Err(format!("{path}: less than 20 ms of audio").into());
    }
    let mut decoder = new_decoder(CodecKind::Pcmu, 8000)?;
    let mut samples = vec![0i16; bytes.len()];
    let n = decoder.decode(&bytes, &mut samples)?;
    samples.truncate(n);
    Ok(samples)
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
