//! Voice prompts played to a caller (the PIN flow's "please enter your PIN"), from WAV files
//! compiled into the binary.
//!
//! [`PromptAudio::decode`] reads a WAV (RIFF, PCM, 16-bit, mono only: anything else is an
//! error, never a panic) and resamples it to a leg's frame rate; decode each prompt once per
//! rate and share it. [`PromptPlayer`] then yields it as 20 ms frames for
//! `MediaLeg::push_frame`, and silence once it is done. Decoding allocates; playing does not.
//!
//! The files are made by `scripts/make-prompts` (espeak-ng, 16 kHz) and committed under
//! `assets/prompts/`, so builds need no speech synthesiser.

use std::sync::Arc;
use std::time::Duration;

use crate::resample::Resampler;

/// The committed prompts, as WAV bytes (16 kHz mono 16-bit PCM).
pub mod prompts {
    /// "Please enter your PIN, followed by the hash key."
    pub static ENTER_PIN: &[u8] = include_bytes!("../../../assets/prompts/enter_pin.wav");
    /// "That PIN is not correct. Please try again."
    pub static WRONG_PIN: &[u8] = include_bytes!("../../../assets/prompts/wrong_pin.wav");
    /// "That PIN is not correct. Goodbye."
    pub static GOODBYE: &[u8] = include_bytes!("../../../assets/prompts/goodbye.wav");
}

/// Why a WAV file cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// Not a RIFF/WAVE file, or a chunk runs past the end.
    #[error("malformed WAV file: {0}")]
    Malformed(&'static str),
    /// A WAV file, but not what prompts must be.
    #[error(
        "prompts must be PCM, 16-bit, mono (found format {format}, {bits} bits, {channels} channels)"
    )]
    NotPcm16Mono {
        format: u16,
        bits: u16,
        channels: u16,
    },
    /// The file's rate cannot be resampled to the leg's (8, 16 and 48 kHz work).
    #[error("cannot resample {from} Hz to {to} Hz")]
    Rate { from: u32, to: u32 },
}

/// The parts of a WAV file a prompt needs.
struct Wav<'a> {
    rate: u32,
    /// Little-endian 16-bit samples.
    data: &'a [u8],
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the RIFF chunks for `fmt ` and `data`, checking every length against the buffer.
fn parse(wav: &[u8]) -> Result<Wav<'_>, PromptError> {
    if wav.get(0..4) != Some(b"RIFF") || wav.get(8..12) != Some(b"WAVE") {
        return Err(PromptError::Malformed("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut format = None;
    let mut data = None;
    while at + 8 <= wav.len() && (format.is_none() || data.is_none()) {
        let id = &wav[at..at + 4];
        let len = le32(wav, at + 4).ok_or(PromptError::Malformed("chunk header"))? as usize;
        let body =
            wav.get(at + 8..)
                .and_then(|rest| rest.get(..len))
                .ok_or(PromptError::Malformed(
                    "a chunk runs past the end of the file",
                ))?;
        match id {
            b"fmt " => format = Some(body),
            b"data" => data = Some(body),
            _ => {}
        }
        // Chunks are padded to an even length.
        at = at + 8 + len + (len & 1);
    }
    let fmt = format.ok_or(PromptError::Malformed("no fmt chunk"))?;
    let data = data.ok_or(PromptError::Malformed("no data chunk"))?;
    let field = |at| le16(fmt, at).ok_or(PromptError::Malformed("fmt chunk too short"));
    let (tag, channels, bits) = (field(0)?, field(2)?, field(14)?);
    let rate = le32(fmt, 4).ok_or(PromptError::Malformed("fmt chunk too short"))?;
    // 1: WAVE_FORMAT_PCM. Extensible and compressed formats are refused, not guessed at.
    if tag != 1 || bits != 16 || channels != 1 {
        return Err(PromptError::NotPcm16Mono {
            format: tag,
            bits,
            channels,
        });
    }
    if data.len() % 2 != 0 {
        return Err(PromptError::Malformed("odd number of data bytes"));
    }
    if rate == 0 {
        return Err(PromptError::Malformed("sample rate 0"));
    }
    Ok(Wav { rate, data })
}

/// A prompt decoded at one frame rate, cheap to clone (the samples are shared).
#[derive(Debug, Clone)]
pub struct PromptAudio {
    rate: u32,
    samples: Arc<[i16]>,
}

impl PromptAudio {
    /// Decodes `wav` and resamples it to `rate` (the leg's frame rate).
    pub fn decode(wav: &[u8], rate: u32) -> Result<PromptAudio, PromptError> {
        let wav = parse(wav)?;
        let input: Vec<i16> = wav
            .data
            .chunks_exact(2)
            .map(|s| i16::from_le_bytes([s[0], s[1]]))
            .collect();
        if wav.rate == rate {
            return Ok(PromptAudio {
                rate,
                samples: input.into(),
            });
        }
        let mut resampler = Resampler::new(wav.rate, rate).ok_or(PromptError::Rate {
            from: wav.rate,
            to: rate,
        })?;
        // Run zeros after the end to flush the filter, then drop its delay at the start: the
        // prompt keeps its length and its timing.
        let delay = resampler.delay();
        let len = resampler.output_len(input.len());
        let flush = vec![0; (delay + 1) * (wav.rate as usize).div_ceil(rate as usize) + 1];
        let mut out = vec![0; resampler.output_len(input.len() + flush.len())];
        let n = resampler.process(&input, &mut out);
        let m = resampler.process(&flush, &mut out[n..]);
        let end = (delay + len).min(n + m);
        Ok(PromptAudio {
            rate,
            samples: out[delay.min(end)..end].into(),
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.rate))
    }
}

/// Plays one prompt as 20 ms frames.
#[derive(Debug, Clone)]
pub struct PromptPlayer {
    audio: PromptAudio,
    at: usize,
    frame: Box<[i16]>,
}

impl PromptPlayer {
    pub fn new(audio: PromptAudio) -> PromptPlayer {
        let frame = vec![0; audio.rate as usize / 50].into();
        PromptPlayer {
            audio,
            at: 0,
            frame,
        }
    }

    /// The next 20 ms at the prompt's rate: the prompt, its last frame padded with silence,
    /// then silence for as long as it is asked.
    pub fn next_frame(&mut self) -> &[i16] {
        let samples = self.audio.samples();
        let take = (samples.len() - self.at).min(self.frame.len());
        self.frame[..take].copy_from_slice(&samples[self.at..self.at + take]);
        self.frame[take..].fill(0);
        self.at += take;
        &self.frame
    }

    /// Whether the whole prompt has been played (what follows is silence).
    pub fn is_done(&self) -> bool {
        self.at >= self.audio.samples().len()
    }

    /// Frames the prompt takes, the last one padded.
    pub fn frames(&self) -> usize {
        self.audio.samples().len().div_ceil(self.frame.len())
    }

    /// Back to the start.
    pub fn restart(&mut self) {
        self.at = 0;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sipx_codec::tone::{Sine, goertzel_power, mean_power, tone_snr_db};

    const ALL: [(&str, &[u8]); 3] = [
        ("enter_pin", prompts::ENTER_PIN),
        ("wrong_pin", prompts::WRONG_PIN),
        ("goodbye", prompts::GOODBYE),
    ];

    /// A WAV file around `samples`, with the format fields given.
    fn wav(rate: u32, format: u16, channels: u16, bits: u16, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&format.to_le_bytes());
        w.extend_from_slice(&channels.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
        w.extend_from_slice(&(bits / 8).to_le_bytes());
        w.extend_from_slice(&bits.to_le_bytes());
        w.extend_from_slice(b"data");
        w.extend_from_slice(&(data.len() as u32).to_le_bytes());
        w.extend_from_slice(&data);
        w
    }

    #[test]
    fn the_shipped_prompts_decode_at_every_leg_rate() {
        for (name, bytes) in ALL {
            let native = PromptAudio::decode(bytes, 16_000).unwrap();
            let secs = native.duration().as_secs_f64();
            assert!((1.0..6.0).contains(&secs), "{name}: {secs} s");
            for rate in [8_000, 16_000, 48_000] {
                let audio = PromptAudio::decode(bytes, rate).unwrap();
                let diff = (audio.duration().as_secs_f64() - secs).abs();
                assert!(diff < 0.001, "{name} at {rate}: length changed by {diff} s");
            }
        }
    }

    #[test]
    fn frame_count_matches_the_duration_then_silence() {
        for rate in [8_000u32, 16_000, 48_000] {
            let audio = PromptAudio::decode(prompts::ENTER_PIN, rate).unwrap();
            let expected = audio.samples().len().div_ceil(rate as usize / 50);
            let mut player = PromptPlayer::new(audio.clone());
            assert_eq!(player.frames(), expected);
            let mut played = Vec::new();
            let mut frames = 0;
            // Bounded: well past the prompt's end.
            for _ in 0..expected + 10 {
                if player.is_done() {
                    break;
                }
                let frame = player.next_frame();
                assert_eq!(frame.len(), rate as usize / 50);
                played.extend_from_slice(frame);
                frames += 1;
            }
            assert_eq!(frames, expected, "at {rate} Hz");
            assert_eq!(&played[..audio.samples().len()], audio.samples());
            assert!(player.next_frame().iter().all(|&s| s == 0), "then silence");
            player.restart();
            assert!(!player.is_done());
        }
    }

    #[test]
    fn a_partial_last_frame_is_padded() {
        let samples: Vec<i16> = (1..=250).collect();
        let mut p =
            PromptPlayer::new(PromptAudio::decode(&wav(8_000, 1, 1, 16, &samples), 8_000).unwrap());
        assert_eq!(p.frames(), 2);
        assert_eq!(p.next_frame()[159], 160);
        let last = p.next_frame();
        assert_eq!((last[89], last[90]), (250, 0));
        assert!(p.is_done());
    }

    #[test]
    fn resampling_keeps_a_tone_in_place() {
        let tone = Sine::new(1_000.0, 16_000, 8_000.0).take(16_000);
        for rate in [8_000, 48_000] {
            let audio = PromptAudio::decode(&wav(16_000, 1, 1, 16, &tone), rate).unwrap();
            let middle = &audio.samples()[rate as usize / 4..rate as usize * 3 / 4];
            assert!(tone_snr_db(middle, 1_000.0, rate) > 30.0, "at {rate}");
        }
    }

    #[test]
    fn resampling_keeps_the_timing() {
        // A click 100 ms in stays 100 ms in: the filter's delay is taken out.
        let mut click = vec![0i16; 3_200];
        click[1_600] = 20_000;
        for rate in [8_000u32, 48_000] {
            let audio = PromptAudio::decode(&wav(16_000, 1, 1, 16, &click), rate).unwrap();
            let peak = (0..audio.samples().len())
                .max_by_key(|&i| audio.samples()[i].unsigned_abs())
                .unwrap();
            let expected = rate as usize / 10;
            assert!(peak.abs_diff(expected) <= 1, "at {rate}: peak at {peak}");
        }
    }

    #[test]
    fn corrupt_or_foreign_files_are_errors() {
        let good = wav(8_000, 1, 1, 16, &[1, 2, 3, 4]);
        assert!(PromptAudio::decode(&good, 8_000).is_ok());
        let malformed = |e| matches!(e, Err(PromptError::Malformed(_)));
        assert!(malformed(PromptAudio::decode(b"", 8_000)));
        assert!(malformed(PromptAudio::decode(b"RIFF\0\0\0\0WAVX", 8_000)));
        assert!(
            malformed(PromptAudio::decode(&good[..12], 8_000)),
            "no chunks"
        );
        // Every truncation is an error or a shorter prompt, never a panic.
        for cut in 0..good.len() {
            let _ = PromptAudio::decode(&good[..cut], 8_000);
        }
        // A data chunk longer than the file.
        let mut long = good.clone();
        let n = long.len();
        long[40..44].copy_from_slice(&1_000_000u32.to_le_bytes());
        assert!(malformed(PromptAudio::decode(&long, 8_000)));
        long[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(malformed(PromptAudio::decode(&long, 8_000)));
        assert_eq!(long.len(), n);
        // A fmt chunk too short to hold its fields.
        let mut short_fmt = good.clone();
        short_fmt[16..20].copy_from_slice(&4u32.to_le_bytes());
        assert!(PromptAudio::decode(&short_fmt, 8_000).is_err());
        for (format, channels, bits) in [(3, 1, 16), (1, 2, 16), (1, 1, 8), (0xfffe, 1, 16)] {
            assert_eq!(
                PromptAudio::decode(&wav(8_000, format, channels, bits, &[0; 4]), 8_000)
                    .unwrap_err(),
                PromptError::NotPcm16Mono {
                    format,
                    bits,
                    channels
                }
            );
        }
        assert_eq!(
            PromptAudio::decode(&wav(11_025, 1, 1, 16, &[0; 4]), 8_000).unwrap_err(),
            PromptError::Rate {
                from: 11_025,
                to: 8_000
            }
        );
        assert!(malformed(PromptAudio::decode(
            &wav(0, 1, 1, 16, &[0; 4]),
            8_000
        )));
    }

    /// The prompts are speech: mostly non-silent, loud enough, and with their energy where a
    /// telephone carries voice (300–3400 Hz), also after resampling to 8 kHz.
    #[test]
    fn the_prompts_are_audible_speech() {
        for (name, bytes) in ALL {
            for rate in [8_000u32, 16_000] {
                let audio = PromptAudio::decode(bytes, rate).unwrap();
                let frame = rate as usize / 50;
                let (mut band, mut total, mut active, mut frames) = (0.0, 0.0, 0, 0);
                for f in audio.samples().chunks_exact(frame) {
                    frames += 1;
                    // -40 dBFS: well above the dither in the pauses.
                    if mean_power(f) < (32_768.0f64 * 0.01).powi(2) {
                        continue;
                    }
                    active += 1;
                    // 50 Hz bins, the resolution of a 20 ms frame.
                    for bin in 1..(rate / 100) {
                        let hz = f64::from(bin * 50);
                        let p = goertzel_power(f, hz, rate);
                        total += p;
                        if (300.0..=3_400.0).contains(&hz) {
                            band += p;
                        }
                    }
                }
                let active_share = f64::from(active) / f64::from(frames);
                let band_share = band / total;
                // Words with pauses between them: a steady tone or noise would be all active.
                assert!(
                    (0.5..0.95).contains(&active_share),
                    "{name} at {rate}: {active_share:.2} active"
                );
                // White noise would put 78% (8 kHz) or 39% (16 kHz) in the band.
                assert!(
                    band_share > 0.82,
                    "{name} at {rate}: {band_share:.2} in band"
                );
                let peak = audio
                    .samples()
                    .iter()
                    .map(|s| s.unsigned_abs())
                    .max()
                    .unwrap();
                assert!(peak > 16_000, "{name} at {rate}: peak {peak}");
            }
        }
    }
}
