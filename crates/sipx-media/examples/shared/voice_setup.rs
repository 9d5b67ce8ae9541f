//! What `codec_floor` and `opus_roundtrip` share: the phone's codec at a rate, and the room's
//! Opus settings at that rate with the `--complexity`, `--bitrate` and `--loss` flags applied.

use std::error::Error;

use sipx_codec::{CodecKind, EncoderOptions};
use sipx_media::bridge::room_voice_options;

/// Whether `flag` is one [`voice_options`] takes.
pub fn is_opus_flag(flag: &str) -> bool {
    matches!(flag, "--complexity" | "--bitrate" | "--loss")
}

/// The phone's codec and its name: μ-law at 8 kHz, G.722 at 16 kHz.
pub fn phone_codec(rate: u32) -> Result<(CodecKind, &'static str), Box<dyn Error>> {
    match rate {
        8000 => Ok((CodecKind::Pcmu, "PCMU")),
        16000 => Ok((CodecKind::G722, "G.722")),
        _ => Err("--rate is 8000 (PCMU) or 16000 (G.722)".into()),
    }
}

/// The room's Opus settings at `rate`, changed by `flags` (flag, value).
pub fn voice_options(
    rate: u32,
    flags: &[(String, String)],
) -> Result<EncoderOptions, Box<dyn Error>> {
    let mut options = room_voice_options(rate);
    for (flag, value) in flags {
        options = match flag.as_str() {
            "--complexity" => options.complexity(value.parse()?),
            "--bitrate" => options.bitrate(value.parse()?),
            "--loss" => options.expected_loss_percent(value.parse()?),
            _ => return Err(format!("unknown Opus flag {flag}").into()),
        };
    }
    Ok(options)
}
