//! A phone's voice through the room's Opus and back, as files: raw 16-bit PCM in (at the
//! phone's rate), and out the PCM a phone receives from its caller (the phone codec's encode
//! and decode: the reference) and the PCM another phone of the room hears (that, then Opus
//! encode and decode at the same rate, then the phone codec again). The phone codec is μ-law at
//! 8 kHz or G.722 at 16 kHz; the Opus encoder has the room path's settings unless flags change
//! them. `bench/opus_voice.py` scores the pair with PESQ per complexity.
//!
//! ```sh
//! cargo run --release -p sipx-media --example opus_roundtrip -- --input IN.s16 \
//!     --reference REF.s16 --output OUT.s16 [--rate 8000|16000] [--complexity N] \
//!     [--bitrate BPS] [--loss PERCENT]
//! ```

use sipx_codec::{AudioDecoder, AudioEncoder, CodecKind, new_decoder, new_encoder};

#[path = "shared/voice_setup.rs"]
mod voice_setup;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut input, mut reference, mut output) = (None, None, None);
    let mut rate = 8000;
    let mut flags = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or("missing value")?;
        match arg.as_str() {
            "--input" => input = Some(value),
            "--reference" => reference = Some(value),
            "--output" => output = Some(value),
            "--rate" => rate = value.parse()?,
            flag if voice_setup::is_opus_flag(flag) => flags.push((arg, value)),
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let (phone, _) = voice_setup::phone_codec(rate)?;
    let options = voice_setup::voice_options(rate, &flags)?;
    let bytes = std::fs::read(input.ok_or("--input is required")?)?;
    let samples: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let frame = rate as usize / 50;
    let mut caller_enc = new_encoder(phone, rate, &options)?;
    let mut caller_dec = new_decoder(phone, rate)?;
    let mut opus_enc = new_encoder(CodecKind::Opus, rate, &options)?;
    let mut opus_dec = new_decoder(CodecKind::Opus, rate)?;
    let mut other_enc = new_encoder(phone, rate, &options)?;
    let mut other_dec = new_decoder(phone, rate)?;
    let (mut received, mut heard) = (vec![0i16; frame], vec![0i16; frame]);
    let mut payload = vec![0u8; 1500];
    let (mut reference_out, mut heard_out) = (Vec::new(), Vec::new());
    for pcm in samples.chunks_exact(frame) {
        let n = caller_enc.encode(pcm, &mut payload)?;
        caller_dec.decode(&payload[..n], &mut received)?;
        let n = opus_enc.encode(&received, &mut payload)?;
        opus_dec.decode(&payload[..n], &mut heard)?;
        let n = other_enc.encode(&heard, &mut payload)?;
        other_dec.decode(&payload[..n], &mut heard)?;
        reference_out.extend(received.iter().flat_map(|s| s.to_le_bytes()));
        heard_out.extend(heard.iter().flat_map(|s| s.to_le_bytes()));
    }
    std::fs::write(reference.ok_or("--reference is required")?, reference_out)?;
    std::fs::write(output.ok_or("--output is required")?, heard_out)?;
    Ok(())
}
