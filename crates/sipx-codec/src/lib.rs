//! Voice codecs for SIP legs. No I/O, no clock: encode PCM into a caller's buffer, decode a
//! payload into a caller's buffer, conceal a lost packet.
//!
//! Temporary skeleton.
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
