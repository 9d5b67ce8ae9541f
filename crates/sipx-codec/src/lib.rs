//! Voice codecs for SIP legs. No I/O, no clock: encode PCM into a caller's buffer, decode a
//! payload into a caller's buffer, conceal a lost packet.
//!
//! Temporary skeleton.
mod buffer;
pub mod error;
pub mod g711;
pub mod g722;
pub mod kind;
pub mod plc;
pub mod tone;

pub use error::CodecError;
pub use kind::CodecKind;
