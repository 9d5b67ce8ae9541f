//! ITU-T G.711 μ-law (PCMU) and A-law (PCMA), table-driven and bit-exact with the standard.
//!
//! The tables are built at compile time from the segment rules: encoding is one lookup indexed
//! by the sample's top 14 (μ-law) or 13 (A-law) bits, decoding one lookup by code. Negative
//! samples are quantized by their one's complement magnitude, as in the standard, so the
//! quantizer is symmetric about −½ and a 16-bit −1 encodes as "negative zero".

use crate::buffer::room;
use crate::plc::Concealer;
use crate::{AudioDecoder, AudioEncoder, CodecError, CodecKind};

/// The two companding laws of G.711.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law, North America and Japan (PCMU, RTP payload type 0).
    Mu,
    /// A-law, elsewhere (PCMA, RTP payload type 8).
    A,
}

impl Law {
    /// The codec carrying this law.
    pub const fn kind(self) -> CodecKind {
        match self {
            Law::Mu => CodecKind::Pcmu,
            Law::A => CodecKind::Pcma,
        }
    }

    /// Compresses one 16-bit linear sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            // The shifts leave 14 and 13 bits; the offsets make the index non-negative.
            Law::Mu => MU_ENCODE[((sample >> 2) + 8192) as usize],
            Law::A => A_ENCODE[((sample >> 3) + 4096) as usize],
        }
    }

    /// Expands one code to a 16-bit linear sample.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Mu => MU_DECODE[usize::from(code)],
            Law::A => A_DECODE[usize::from(code)],
        }
    }
}

/// Splits a sample into the sign bit of the code (set for non-negative) and the one's
/// complement magnitude.
const fn sign_and_magnitude(value: i32) -> (i32, i32) {
    if value < 0 {
        (0x00, -value - 1)
    } else {
        (0x80, value)
    }
}

/// μ-law from a 14-bit sample: bias by 33, the segment is the position of the top bit, the
/// mantissa the next four bits; all bits but the sign are inverted on the line.
const fn mu_compress(value: i32) -> u8 {
    let (sign, magnitude) = sign_and_magnitude(value);
    let mut biased = magnitude + 33;
    if biased > 0x1FFF {
        biased = 0x1FFF;
    }
    let segment = 31 - biased.leading_zeros() as i32 - 5;
    let mantissa = (biased >> (segment + 1)) & 0xF;
    ((sign | (segment << 4) | mantissa) as u8) ^ 0x7F
}

/// A-law from a 13-bit sample: segments 0 and 1 both step by 2, each further segment doubles
/// the step; the even bits are inverted on the line.
const fn a_compress(value: i32) -> u8 {
    let (sign, magnitude) = sign_and_magnitude(value);
    let (segment, mantissa) = if magnitude < 32 {
        (0, magnitude >> 1)
    } else {
        let segment = 31 - magnitude.leading_zeros() as i32 - 4;
        (segment, (magnitude >> segment) & 0xF)
    };
    ((sign | (segment << 4) | mantissa) as u8) ^ 0x55
}

/// The decoder value of a μ-law code: the middle of its interval, scaled to 16 bits.
const fn mu_expand(code: u8) -> i16 {
    let bits = code ^ 0x7F;
    let segment = ((bits >> 4) & 7) as i32;
    let mantissa = (bits & 0xF) as i32;
    let magnitude = (((2 * mantissa + 33) << segment) - 33) << 2;
    (if bits & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }) as i16
}

/// The decoder value of an A-law code: the middle of its interval, scaled to 16 bits.
const fn a_expand(code: u8) -> i16 {
    let bits = code ^ 0x55;
    let segment = ((bits >> 4) & 7) as i32;
    let mantissa = (bits & 0xF) as i32;
    let magnitude = if segment == 0 {
        2 * mantissa + 1
    } else {
        (2 * mantissa + 33) << (segment - 1)
    } << 3;
    (if bits & 0x80 != 0 {
        magnitude
    } else {
        -magnitude
    }) as i16
}

static MU_ENCODE: [u8; 1 << 14] = {
    let mut table = [0; 1 << 14];
    let mut i = 0;
    while i < table.len() {
        table[i] = mu_compress(i as i32 - 8192);
        i += 1;
    }
    table
};

static A_ENCODE: [u8; 1 << 13] = {
    let mut table = [0; 1 << 13];
    let mut i = 0;
    while i < table.len() {
        table[i] = a_compress(i as i32 - 4096);
        i += 1;
    }
    table
};

static MU_DECODE: [i16; 256] = expand_table(Law::Mu);
static A_DECODE: [i16; 256] = expand_table(Law::A);

const fn expand_table(law: Law) -> [i16; 256] {
    let mut table = [0; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = match law {
            Law::Mu => mu_expand(code as u8),
            Law::A => a_expand(code as u8),
        };
        code += 1;
    }
    table
}

/// A G.711 encoder: one byte per 8 kHz sample, any frame length.
#[derive(Clone, Debug)]
pub struct G711Encoder {
    law: Law,
}

impl G711Encoder {
    /// An encoder for `law`.
    pub fn new(law: Law) -> Self {
        Self { law }
    }
}

impl AudioEncoder for G711Encoder {
    fn kind(&self) -> CodecKind {
        self.law.kind()
    }

    fn sample_rate(&self) -> u32 {
        8000
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        let out = room(out, pcm.len())?;
        for (code, &sample) in out.iter_mut().zip(pcm) {
            *code = self.law.encode(sample);
        }
        Ok(pcm.len())
    }
}

/// A G.711 decoder with packet-loss concealment. Every byte sequence is a valid payload.
#[derive(Clone, Debug)]
pub struct G711Decoder {
    law: Law,
    concealer: Concealer,
}

impl G711Decoder {
    /// A decoder for `law`.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            concealer: Concealer::new(8000),
        }
    }
}

impl AudioDecoder for G711Decoder {
    fn kind(&self) -> CodecKind {
        self.law.kind()
    }

    fn sample_rate(&self) -> u32 {
        8000
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let out = room(out, payload.len())?;
        for (sample, &code) in out.iter_mut().zip(payload) {
            *sample = self.law.decode(code);
        }
        self.concealer.receive(out);
        Ok(payload.len())
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        self.concealer.conceal(out);
        Ok(out.len())
    }
}

#[cfg(test)]
mod tests;
