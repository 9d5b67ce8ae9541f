//! ITU-T G.722: 7 kHz wideband audio in 64 kbit/s by sub-band ADPCM (mode 1).
//!
//! Written from the algorithm description of the standard and checked bit-exact against
//! spandsp's implementation with the vectors in `testdata/g722` (see `tools/README.md`).
//!
//! Besides the standard 16 kHz interface, both directions offer an 8 kHz one for narrowband
//! legs: the encoder feeds the lower sub-band directly and sends a silent higher band, and the
//! decoder outputs the lower sub-band only, skipping both QMFs. It interworks with wideband
//! terminals (the same choice as spandsp's 8 kHz option).

mod adpcm;
mod qmf;
mod tables;

use adpcm::{SubBand, limit_reconstructed, sat16};
use qmf::{ReceiveQmf, TransmitQmf};
use tables::{IHN, IHP, ILN, ILP, Q2, Q6, QM2, QM6};

use crate::buffer::room;
use crate::plc::Concealer;
use crate::{AudioDecoder, AudioEncoder, CodecError, CodecKind};

/// A G.722 encoder at 64 kbit/s: one byte per pair of 16 kHz samples (or per 8 kHz sample).
#[derive(Clone, Debug)]
pub struct G722Encoder {
    lower: SubBand,
    higher: SubBand,
    qmf: TransmitQmf,
    narrowband: bool,
}

impl G722Encoder {
    /// An encoder fed at `audio_rate`: 16000 (wideband) or 8000 (lower sub-band only).
    pub fn new(audio_rate: u32) -> Result<Self, CodecError> {
        Ok(Self {
            lower: SubBand::lower(),
            higher: SubBand::higher(),
            qmf: TransmitQmf::default(),
            narrowband: narrowband(audio_rate)?,
        })
    }

    fn encode_bands(&mut self, lower: i32, higher: i32) -> u8 {
        let low = quantize_lower(sat16(lower - self.lower.prediction()), self.lower.scale);
        self.lower.advance_lower(low);
        let high = quantize_higher(sat16(higher - self.higher.prediction()), self.higher.scale);
        self.higher.advance_higher(high);
        (high << 6) | low
    }
}

impl AudioEncoder for G722Encoder {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn sample_rate(&self) -> u32 {
        rate(self.narrowband)
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        if self.narrowband {
            // The lower sub-band runs at half the PCM scale (see the QMF).
            let out = room(out, pcm.len())?;
            for (byte, &sample) in out.iter_mut().zip(pcm) {
                *byte = self.encode_bands(i32::from(sample) >> 1, 0);
            }
            return Ok(pcm.len());
        }
        if !pcm.len().is_multiple_of(2) {
            return Err(CodecError::FrameSize {
                kind: CodecKind::G722,
                samples: pcm.len(),
            });
        }
        let out = room(out, pcm.len() / 2)?;
        for (byte, pair) in out.iter_mut().zip(pcm.chunks_exact(2)) {
            let (lower, higher) = self.qmf.split(pair[0], pair[1]);
            *byte = self.encode_bands(lower, higher);
        }
        Ok(out.len())
    }
}

/// A G.722 decoder at 64 kbit/s, with packet-loss concealment. Every byte sequence is a valid
/// payload.
#[derive(Clone, Debug)]
pub struct G722Decoder {
    lower: SubBand,
    higher: SubBand,
    qmf: ReceiveQmf,
    narrowband: bool,
    concealer: Concealer,
}

impl G722Decoder {
    /// A decoder producing `audio_rate`: 16000 (wideband) or 8000 (lower sub-band only).
    pub fn new(audio_rate: u32) -> Result<Self, CodecError> {
        Ok(Self {
            lower: SubBand::lower(),
            higher: SubBand::higher(),
            qmf: ReceiveQmf::default(),
            narrowband: narrowband(audio_rate)?,
            concealer: Concealer::new(audio_rate),
        })
    }

    /// Decodes without concealment bookkeeping: the codec alone.
    fn decode_frame(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        if self.narrowband {
            let out = room(out, payload.len())?;
            for (sample, &byte) in out.iter_mut().zip(payload) {
                let (lower, _) = self.decode_bands(byte);
                *sample = to_pcm(lower << 1);
            }
            return Ok(payload.len());
        }
        let out = room(out, payload.len() * 2)?;
        for (pair, &byte) in out.chunks_exact_mut(2).zip(payload) {
            let (lower, higher) = self.decode_bands(byte);
            let joined = self.qmf.join(lower, higher);
            pair[0] = to_pcm(joined[0]);
            pair[1] = to_pcm(joined[1]);
        }
        Ok(out.len())
    }

    /// Wideband decoding without the final saturation, to compare with implementations that
    /// wrap around on overload instead.
    #[cfg(test)]
    fn decode_unsaturated(&mut self, payload: &[u8]) -> Vec<i32> {
        let mut out = Vec::with_capacity(payload.len() * 2);
        for &byte in payload {
            let (lower, higher) = self.decode_bands(byte);
            out.extend(self.qmf.join(lower, higher));
        }
        out
    }

    /// Reconstructs one `(lower, higher)` sub-band sample pair and advances both bands.
    fn decode_bands(&mut self, byte: u8) -> (i32, i32) {
        let low = byte & 63;
        let high = byte >> 6;
        let lower = limit_reconstructed(
            self.lower.prediction() + ((self.lower.scale * QM6[usize::from(low)]) >> 15),
        );
        let higher = limit_reconstructed(
            self.higher.prediction() + ((self.higher.scale * QM2[usize::from(high)]) >> 15),
        );
        self.lower.advance_lower(low);
        self.higher.advance_higher(high);
        (lower, higher)
    }
}

impl AudioDecoder for G722Decoder {
    fn kind(&self) -> CodecKind {
        CodecKind::G722
    }

    fn sample_rate(&self) -> u32 {
        rate(self.narrowband)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let samples = self.decode_frame(payload, out)?;
        self.concealer.receive(&mut out[..samples]);
        Ok(samples)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.concealer.conceal(out);
        Ok(out.len())
    }
}

/// Saturates a 16-bit output sample; the saturation makes the conversion lossless.
fn to_pcm(x: i32) -> i16 {
    sat16(x) as i16
}

fn narrowband(audio_rate: u32) -> Result<bool, CodecError> {
    match audio_rate {
        16000 => Ok(false),
        8000 => Ok(true),
        rate => Err(CodecError::UnsupportedRate {
            kind: CodecKind::G722,
            rate,
        }),
    }
}

fn rate(narrowband: bool) -> u32 {
    if narrowband { 8000 } else { 16000 }
}

/// QUANTL: the 6-bit lower sub-band code for difference `e` at scale `scale`.
fn quantize_lower(e: i32, scale: i32) -> u8 {
    // One's complement magnitude, as the standard forms it from the sign bit.
    let magnitude = if e < 0 { -(e + 1) } else { e };
    // The scaled levels only grow, so the first level above the magnitude is found by
    // bisection; intervals run from 1 to 30, 30 being everything above the top level.
    let interval = 1 + Q6[1..].partition_point(|&level| magnitude >= (level * scale) >> 12);
    if e < 0 { ILN[interval] } else { ILP[interval] }
}

/// QUANTH: the 2-bit higher sub-band code for difference `e` at scale `scale`.
fn quantize_higher(e: i32, scale: i32) -> u8 {
    let magnitude = if e < 0 { -(e + 1) } else { e };
    let interval = if magnitude >= (Q2 * scale) >> 12 {
        2
    } else {
        1
    };
    if e < 0 { IHN[interval] } else { IHP[interval] }
}

#[cfg(test)]
mod tests;
