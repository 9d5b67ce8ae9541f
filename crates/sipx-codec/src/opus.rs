//! Opus through libopus (Debian's `libopus-dev`, via the safe `opusic-c` wrapper), mono, VoIP
//! application. Encoder and decoder run at the leg's own rate (8, 12, 16, 24 or 48 kHz):
//! libopus takes and gives those rates natively, so a narrowband leg never resamples, which is
//! most of the cost of a PCMU ↔ Opus call.

use opusic_c::{
    Application, Bandwidth, Bitrate, Channels, ErrorCode, InbandFec, SampleRate, Signal,
};

use crate::{AudioDecoder, AudioEncoder, CodecError, CodecKind, EncoderOptions};

const KIND: CodecKind = CodecKind::Opus;

/// libopus' name for a sample rate.
fn sample_rate(rate: u32) -> Result<SampleRate, CodecError> {
    Ok(match rate {
        8000 => SampleRate::Hz8000,
        12000 => SampleRate::Hz12000,
        16000 => SampleRate::Hz16000,
        24000 => SampleRate::Hz24000,
        48000 => SampleRate::Hz48000,
        rate => return Err(CodecError::UnsupportedRate { kind: KIND, rate }),
    })
}

/// Maps libopus' error codes: a corrupt packet is the peer's fault, the rest the library's.
fn library_error(code: ErrorCode) -> CodecError {
    match code {
        ErrorCode::InvalidPacket => CodecError::Malformed {
            kind: KIND,
            reason: code.message(),
        },
        _ => CodecError::Library {
            kind: KIND,
            message: code.message(),
        },
    }
}

fn check_frame(samples: usize, rate: u32) -> Result<(), CodecError> {
    if KIND.is_valid_frame(samples, rate) {
        Ok(())
    } else {
        Err(CodecError::FrameSize {
            kind: KIND,
            samples,
        })
    }
}

/// The widest Opus band a decoder playing back at `rate` renders (RFC 7587 §6.1: 8 kHz
/// narrowband, 12 mediumband, 16 wideband, 24 super-wideband, above fullband).
fn widest_band(rate: u32) -> Bandwidth {
    match rate {
        ..12_000 => Bandwidth::Narrow,
        12_000..16_000 => Bandwidth::Medium,
        16_000..24_000 => Bandwidth::Wide,
        24_000..48_000 => Bandwidth::Superwide,
        _ => Bandwidth::Full,
    }
}

/// An Opus encoder (mono, VoIP application, voice signal).
pub struct OpusEncoder {
    inner: opusic_c::Encoder,
    rate: u32,
    dtx: bool,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("rate", &self.rate)
            .field("dtx", &self.dtx)
            .finish()
    }
}

impl OpusEncoder {
    /// An encoder fed PCM at `audio_rate`, set up from `options`.
    pub fn new(audio_rate: u32, options: &EncoderOptions) -> Result<Self, CodecError> {
        let mut inner =
            opusic_c::Encoder::new(Channels::Mono, sample_rate(audio_rate)?, Application::Voip)
                .map_err(library_error)?;
        if options.complexity > 10 {
            return Err(CodecError::InvalidOption {
                kind: KIND,
                reason: "complexity above 10",
            });
        }
        if options.expected_loss_percent > 100 {
            return Err(CodecError::InvalidOption {
                kind: KIND,
                reason: "loss above 100 %",
            });
        }
        inner
            .set_complexity(options.complexity)
            .map_err(library_error)?;
        inner.set_signal(Signal::Voice).map_err(library_error)?;
        // Mode 1 is the only in-band FEC mode libopus 1.3 (Debian 12) knows.
        let fec = if options.fec {
            InbandFec::Mode1
        } else {
            InbandFec::Off
        };
        inner.set_inband_fec(fec).map_err(library_error)?;
        inner
            .set_packet_loss(options.expected_loss_percent)
            .map_err(library_error)?;
        inner.set_dtx(options.dtx).map_err(library_error)?;
        inner.set_vbr(!options.cbr).map_err(library_error)?;
        if let Some(rate) = options.max_playback_rate {
            inner
                .set_max_bandwidth(widest_band(rate))
                .map_err(library_error)?;
        }
        let mut encoder = Self {
            inner,
            rate: audio_rate,
            dtx: options.dtx,
        };
        encoder.set_bitrate(options.bitrate)?;
        Ok(encoder)
    }

    /// Changes the target bitrate (`None`: libopus' choice), e.g. on the peer's feedback.
    pub fn set_bitrate(&mut self, bits_per_second: Option<u32>) -> Result<(), CodecError> {
        let bitrate = bits_per_second.map_or(Bitrate::Auto, Bitrate::Value);
        self.inner
            .set_bitrate(bitrate)
            .map_err(|_| CodecError::InvalidOption {
                kind: KIND,
                reason: "bitrate outside 500..=512000 bit/s",
            })
    }

    /// Changes the packet loss the FEC is sized for, e.g. from RTCP receiver reports.
    pub fn set_expected_loss_percent(&mut self, percent: u8) -> Result<(), CodecError> {
        self.inner
            .set_packet_loss(percent.min(100))
            .map_err(library_error)
    }
}

impl AudioEncoder for OpusEncoder {
    fn kind(&self) -> CodecKind {
        KIND
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, CodecError> {
        check_frame(pcm.len(), self.rate)?;
        let written = self
            .inner
            .encode_to_slice(bytemuck::cast_slice(pcm), out)
            .map_err(library_error)?;
        // With DTX, libopus marks frames that need not be sent by making them 1 or 2 bytes.
        Ok(if self.dtx && written <= 2 { 0 } else { written })
    }
}

/// An Opus decoder (mono) with libopus' own concealment and in-band FEC recovery.
pub struct OpusDecoder {
    inner: opusic_c::Decoder,
    rate: u32,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder")
            .field("rate", &self.rate)
            .finish()
    }
}

impl OpusDecoder {
    /// A decoder producing PCM at `audio_rate`, whatever rate the peer encoded at.
    pub fn new(audio_rate: u32) -> Result<Self, CodecError> {
        let inner = opusic_c::Decoder::new(Channels::Mono, sample_rate(audio_rate)?)
            .map_err(library_error)?;
        Ok(Self {
            inner,
            rate: audio_rate,
        })
    }

    fn run(&mut self, payload: &[u8], out: &mut [i16], fec: bool) -> Result<usize, CodecError> {
        self.inner
            .decode_to_slice(payload, bytemuck::cast_slice_mut(out), fec)
            .map_err(library_error)
    }
}

impl AudioDecoder for OpusDecoder {
    fn kind(&self) -> CodecKind {
        KIND
    }

    fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// `out` must hold the packet's duration (up to 120 ms).
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        // libopus reads an empty packet as a loss; a peer's empty payload is not one.
        if payload.is_empty() {
            return Err(CodecError::Malformed {
                kind: KIND,
                reason: "empty payload",
            });
        }
        self.run(payload, out, false)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<usize, CodecError> {
        check_frame(out.len(), self.rate)?;
        self.run(&[], out, false)
    }

    fn recover(&mut self, next_payload: &[u8], out: &mut [i16]) -> Result<usize, CodecError> {
        check_frame(out.len(), self.rate)?;
        if next_payload.is_empty() {
            return self.conceal(out);
        }
        self.run(next_payload, out, true)
    }
}

#[cfg(test)]
mod tests;
