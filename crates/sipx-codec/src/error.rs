//! The crate's one error type.

use crate::CodecKind;

/// Why an encoder or decoder could not be built or could not process a frame.
///
/// Bad payloads from the network give [`CodecError::Malformed`], never a panic; the other
/// variants are the caller's mistakes (a wrong rate, frame size or buffer) or a refusal by a C
/// library.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec cannot take or produce audio at this sample rate.
    #[error("{kind:?} does not support audio at {rate} Hz")]
    UnsupportedRate {
        /// The codec asked for.
        kind: CodecKind,
        /// The rate asked for.
        rate: u32,
    },
    /// The number of samples is not a frame length the codec can encode or conceal.
    #[error("{samples} samples is not a valid {kind:?} frame length")]
    FrameSize {
        /// The codec.
        kind: CodecKind,
        /// The length offered.
        samples: usize,
    },
    /// The output buffer cannot hold the result.
    #[error("output buffer too small: {needed} needed, {available} available")]
    BufferTooSmall {
        /// How many bytes or samples the result needs.
        needed: usize,
        /// How many the buffer has.
        available: usize,
    },
    /// A payload from the peer cannot be decoded.
    #[error("malformed {kind:?} payload: {reason}")]
    Malformed {
        /// The codec.
        kind: CodecKind,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option is out of range.
    #[error("invalid {kind:?} option: {reason}")]
    InvalidOption {
        /// The codec.
        kind: CodecKind,
        /// Which option and why.
        reason: &'static str,
    },
    /// The codec library refused the operation for a reason not covered above.
    #[error("{kind:?} library error: {message}")]
    Library {
        /// The codec.
        kind: CodecKind,
        /// The library's own description.
        message: &'static str,
    },
    /// The codec is not compiled into this build (G.729 needs the `g729` feature).
    #[error("{kind:?} is not built in (enable the cargo feature)")]
    NotBuilt {
        /// The codec.
        kind: CodecKind,
    },
}
