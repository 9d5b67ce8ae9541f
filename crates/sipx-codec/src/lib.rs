//! Voice codecs for SIP legs: G.711 (PCMU, PCMA) with packet-loss concealment, G.722, Opus, and
//! G.729 behind a feature. No I/O and no clock: encoders write PCM into a caller's payload
//! buffer, decoders write a payload into a caller's PCM buffer, so nothing allocates per frame.
//!
//! - [`CodecKind`]: the codecs and their RTP/SDP facts (clock rate vs audio rate, payload
//!   types, valid frame lengths).
//! - [`AudioEncoder`] / [`AudioDecoder`]: the interface; [`new_encoder`] / [`new_decoder`] build
//!   an [`Encoder`] / [`Decoder`] enum for a kind and rate (plain `match` dispatch, no vtable).
//! - [`g711`], [`g722`]: written here, bit-exact with ITU-T G.711 and with spandsp's G.722.
//! - [`opus`]: libopus through `opusic-c`; encodes and decodes at the leg's own rate.
//! - [`plc`]: concealment for the waveform codecs, after G.711 Appendix I.
//! - [`tone`]: sine, Goertzel and SNR helpers for tests and benchmarks.
//!
//! # Sample rates
//!
//! The phone side is narrowband. Decoders produce the rate the consumer needs and encoders take
//! it: Opus runs at 8 or 16 kHz directly, G.722 also offers an 8 kHz interface. Nothing here
//! resamples, because resampling a PCMU ↔ Opus call to 48 kHz costs more than the codecs.
//!
//! # Licences and system libraries
//!
//! The default build links the system libopus (Debian package `libopus-dev`). The `g729`
//! feature adds G.729 Annex A/B through the system's bcg729 (`libbcg729-dev`), which is
//! **GPL-3.0: a build with that feature is GPL-3.0 as a whole**. It is off by default.
//!
//! # Safety
//!
//! `unsafe` is denied crate-wide and allowed only in the `g729` FFI module. Opus uses the safe
//! API of `opusic-c`; PCM slices are reinterpreted for it with `bytemuck`.

mod buffer;
mod codec;
pub mod error;
pub mod g711;
pub mod g722;
#[cfg(feature = "g729")]
#[allow(unsafe_code)]
pub mod g729;
pub mod kind;
pub mod opus;
pub mod plc;
pub mod tone;

pub use codec::{
    AudioDecoder, AudioEncoder, Decoder, Encoder, EncoderOptions, new_decoder, new_encoder,
};
pub use error::CodecError;
pub use kind::CodecKind;
