//! The codec interface: two traits, an enum of every encoder and decoder (so calls are plain
//! matches, no vtables), and the constructors that pick one by [`CodecKind`].

use crate::g711::{G711Decoder, G711Encoder, Law};
use crate::g722::{G722Decoder, G722Encoder};
use crate::opus::{OpusDecoder, OpusEncoder};
use crate::{CodecError, CodecKind};

/// Turns PCM into payloads. Frames are whatever [`CodecKind::is_valid_frame`] allows.
pub trait AudioEncoder {
    /// The codec.
    fn kind(&self) -> CodecKind;

    /// The rate of the PCM this encoder takes.
    fn sample_rate(&self) -> u32;

    /// Encodes one frame of `pcm` into `out`, returning the payload length. A length of 0
    /// means nothing needs sending (discontinuous transmission during silence).
    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError>;

    /// Whether `samples` is a frame length [`AudioEncoder::encode`] accepts.
    fn accepts_frame(&self, samples: usize) -> bool {
        self.kind().is_valid_frame(samples, self.sample_rate())
    }
}

/// Turns payloads into PCM, and covers for lost ones.
pub trait AudioDecoder {
    /// The codec.
    fn kind(&self) -> CodecKind;

    /// The rate of the PCM this decoder produces.
    fn sample_rate(&self) -> u32;

    /// Decodes one payload into `out`, returning the number of samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError>;

    /// Fills all of `out` with audio standing in for a lost stretch (packet-loss concealment),
    /// returning `out.len()`. Its length must be a valid frame for the codec.
    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError>;

    /// Reconstructs a lost frame from the redundancy carried in the *next* packet, where the
    /// codec has any (Opus in-band FEC), filling all of `out`; conceals otherwise. Call it
    /// before decoding `next_payload` itself.
    fn recover(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        let _ = next_payload;
        self.conceal(out)
    }
}

/// Encoder settings. Most apply to one codec and are ignored by the others.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncoderOptions {
    /// Opus target bitrate in bit/s; `None` lets libopus pick one for the rate.
    pub bitrate: Option<u32>,
    /// Opus complexity, 0 to 10. The default of 5 costs about half of 10 for little audible
    /// difference on narrowband speech.
    pub complexity: u8,
    /// Opus in-band forward error correction (on by default).
    pub fec: bool,
    /// The packet loss, in percent, that Opus sizes its FEC for; libopus sends no FEC at 0.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission: Opus DTX, G.729 Annex B voice activity detection.
    pub dtx: bool,
    /// Opus at a constant bitrate (a peer's `cbr=1`, RFC 7587 §6.1).
    pub cbr: bool,
    /// The highest rate the peer's Opus decoder plays back (`maxplaybackrate`): Opus codes no
    /// wider a band than it renders. `None`: as wide as the encoder's input.
    pub max_playback_rate: Option<u32>,
}

impl Default for EncoderOptions {
    fn default() -> Self {
        Self {
            bitrate: None,
            complexity: 5,
            fec: true,
            expected_loss_percent: 10,
            dtx: false,
            cbr: false,
            max_playback_rate: None,
        }
    }
}

impl EncoderOptions {
    /// With an Opus target bitrate.
    pub fn bitrate(mut self, bits_per_second: u32) -> Self {
        self.bitrate = Some(bits_per_second);
        self
    }

    /// With an Opus complexity.
    pub fn complexity(mut self, complexity: u8) -> Self {
        self.complexity = complexity;
        self
    }

    /// With Opus in-band FEC on or off.
    pub fn fec(mut self, on: bool) -> Self {
        self.fec = on;
        self
    }

    /// With the loss rate Opus should expect.
    pub fn expected_loss_percent(mut self, percent: u8) -> Self {
        self.expected_loss_percent = percent;
        self
    }

    /// With discontinuous transmission on or off.
    pub fn dtx(mut self, on: bool) -> Self {
        self.dtx = on;
        self
    }
}

/// Any encoder of this crate.
// The G.722 state lives inline (a few hundred bytes): a codec is built once per leg and stays
// put, and boxing it would add a pointer chase to every frame for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Encoder {
    /// PCMU or PCMA.
    G711(G711Encoder),
    /// G.722.
    G722(G722Encoder),
    /// Opus.
    Opus(OpusEncoder),
    /// G.729 Annex A/B.
    #[cfg(feature = "g729")]
    G729(crate::g729::G729Encoder),
}

/// Any decoder of this crate.
// The G.722 state lives inline (a few hundred bytes): a codec is built once per leg and stays
// put, and boxing it would add a pointer chase to every frame for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
#[non_exhaustive]
pub enum Decoder {
    /// PCMU or PCMA.
    G711(G711Decoder),
    /// G.722.
    G722(G722Decoder),
    /// Opus.
    Opus(OpusDecoder),
    /// G.729 Annex A/B.
    #[cfg(feature = "g729")]
    G729(crate::g729::G729Decoder),
}

/// An encoder for `kind` taking PCM at `audio_rate` (see [`CodecKind::audio_rates`]).
pub fn new_encoder(
    kind: CodecKind,
    audio_rate: u32,
    options: &EncoderOptions,
) -> Result<Encoder, CodecError> {
    check_rate(kind, audio_rate)?;
    Ok(match kind {
        CodecKind::Pcmu => Encoder::G711(G711Encoder::new(Law::Mu)),
        CodecKind::Pcma => Encoder::G711(G711Encoder::new(Law::A)),
        CodecKind::G722 => Encoder::G722(G722Encoder::new(audio_rate)?),
        CodecKind::Opus => Encoder::Opus(OpusEncoder::new(audio_rate, options)?),
        #[cfg(feature = "g729")]
        CodecKind::G729 => Encoder::G729(crate::g729::G729Encoder::new(options.dtx)?),
        #[cfg(not(feature = "g729"))]
        CodecKind::G729 => return Err(CodecError::NotBuilt { kind }),
    })
}

/// A decoder for `kind` producing PCM at `audio_rate` (see [`CodecKind::audio_rates`]).
pub fn new_decoder(kind: CodecKind, audio_rate: u32) -> Result<Decoder, CodecError> {
    check_rate(kind, audio_rate)?;
    Ok(match kind {
        CodecKind::Pcmu => Decoder::G711(G711Decoder::new(Law::Mu)),
        CodecKind::Pcma => Decoder::G711(G711Decoder::new(Law::A)),
        CodecKind::G722 => Decoder::G722(G722Decoder::new(audio_rate)?),
        CodecKind::Opus => Decoder::Opus(OpusDecoder::new(audio_rate)?),
        #[cfg(feature = "g729")]
        CodecKind::G729 => Decoder::G729(crate::g729::G729Decoder::new()?),
        #[cfg(not(feature = "g729"))]
        CodecKind::G729 => return Err(CodecError::NotBuilt { kind }),
    })
}

fn check_rate(kind: CodecKind, audio_rate: u32) -> Result<(), CodecError> {
    if kind.supports_audio_rate(audio_rate) {
        Ok(())
    } else {
        Err(CodecError::UnsupportedRate {
            kind,
            rate: audio_rate,
        })
    }
}

/// Runs `$body` with `$codec` bound to whichever codec the enum holds.
macro_rules! dispatch {
    ($value:expr, $codec:ident => $body:expr) => {
        match $value {
            Self::G711($codec) => $body,
            Self::G722($codec) => $body,
            Self::Opus($codec) => $body,
            #[cfg(feature = "g729")]
            Self::G729($codec) => $body,
        }
    };
}

impl AudioEncoder for Encoder {
    fn kind(&self) -> CodecKind {
        dispatch!(self, codec => codec.kind())
    }

    fn sample_rate(&self) -> u32 {
        dispatch!(self, codec => codec.sample_rate())
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        dispatch!(self, codec => codec.encode(pcm, out))
    }
}

impl AudioDecoder for Decoder {
    fn kind(&self) -> CodecKind {
        dispatch!(self, codec => codec.kind())
    }

    fn sample_rate(&self) -> u32 {
        dispatch!(self, codec => codec.sample_rate())
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        dispatch!(self, codec => codec.decode(payload, out))
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        dispatch!(self, codec => codec.conceal(out))
    }

    fn recover(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        dispatch!(self, codec => codec.recover(next_payload, out))
    }
}

#[cfg(test)]
mod tests;
