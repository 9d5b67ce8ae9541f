//! Voice codecs for SIP legs. No I/O, no clock: encode PCM into a caller's buffer, decode a
//! payload into a caller's buffer, conceal a lost packet.
//!
//! Temporary skeleton.
pub mod error;
pub mod g722;
pub mod kind;

pub use error::CodecError;
pub use kind::CodecKind;
