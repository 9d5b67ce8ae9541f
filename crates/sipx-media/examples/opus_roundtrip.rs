//! A phone's voice through the room's Opus and back, as files: raw μ-law in, the 8 kHz 16-bit
//! PCM a phone would hear out (μ-law decode, Opus encode fed 8 kHz, Opus decode to 8 kHz,
//! μ-law encode and decode), with the room path's encoder settings unless flags change them.
//! `bench/opus_voice.py` scores it with PESQ per complexity.
//!
//! ```sh
//! cargo run --release -p sipx-media --example opus_roundtrip -- --input IN.ulaw \
//!     --output OUT.s16 [--complexity N] [--bitrate BPS] [--loss PERCENT]
//! ```

use sipx_codec::{AudioDecoder, AudioEncoder, CodecKind, new_decoder, new_encoder};
use sipx_media::bridge::room_voice_options;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut input, mut output) = (None, None);
    let mut options = room_voice_options(8000);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or("missing value")?;
        match arg.as_str() {
            "--input" => input = Some(value),
            "--output" => output = Some(value),
            "--complexity" => options = options.complexity(value.parse()?),
            "--bitrate" => options = options.bitrate(value.parse()?),
            "--loss" => options = options.expected_loss_percent(value.parse()?),
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }
    let ulaw = std::fs::read(input.ok_or("--input is required")?)?;
    let output = output.ok_or("--output is required")?;
    let mut pcmu_in = new_decoder(CodecKind::Pcmu, 8000)?;
    let mut opus_enc = new_encoder(CodecKind::Opus, 8000, &options)?;
    let mut opus_dec = new_decoder(CodecKind::Opus, 8000)?;
    let mut pcmu_out = new_encoder(CodecKind::Pcmu, 8000, &options)?;
    let mut pcmu_back = new_decoder(CodecKind::Pcmu, 8000)?;
    let (mut pcm, mut heard) = ([0i16; 160], [0i16; 160]);
    let (mut opus, mut law) = ([0u8; 1500], [0u8; 160]);
    let mut out = Vec::with_capacity(ulaw.len() * 2);
    for frame in ulaw.chunks_exact(160) {
        pcmu_in.decode(frame, &mut pcm)?;
        let n = opus_enc.encode(&pcm, &mut opus)?;
        opus_dec.decode(&opus[..n], &mut heard)?;
        let n = pcmu_out.encode(&heard, &mut law)?;
        pcmu_back.decode(&law[..n], &mut heard)?;
        out.extend(heard.iter().flat_map(|s| s.to_le_bytes()));
    }
    std::fs::write(output, out)?;
    Ok(())
}
