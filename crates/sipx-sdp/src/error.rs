//! The crate's error type: what went wrong, and whose fault it was.

use crate::reject::Rejection;

/// Why an SDP could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The bytes are not a session description; `line` is 1-based (0: the SDP as a whole).
    #[error("malformed SDP at line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    /// The SDP exceeds one of the limits in [`crate::limits`].
    #[error("SDP too large: {0}")]
    TooLarge(&'static str),
    /// The SDP parsed, but the negotiation it is part of failed (for example an answer with no
    /// codec we offered).
    #[error("{0}")]
    Rejected(Rejection),
    /// The caller used the API out of order (an answer with no offer outstanding, say).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}

impl From<Rejection> for SdpError {
    fn from(r: Rejection) -> Self {
        SdpError::Rejected(r)
    }
}
