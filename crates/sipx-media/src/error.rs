//! The crate's one error type. Kinds follow rustls: the peer's bytes do not parse
//! (`Malformed*`), or the caller asked for something impossible (`ApiMisuse`, `BufferTooSmall`).

/// Why a media operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// An RTP packet that fails RFC 3550 §5.1 checks; the reason names the first failed check.
    #[error("malformed RTP packet: {0}")]
    MalformedRtp(&'static str),
    /// An RTCP packet (or compound packet) that fails RFC 3550 §6.4/A.2 checks.
    #[error("malformed RTCP packet: {0}")]
    MalformedRtcp(&'static str),
    /// An RFC 4733 telephone-event payload that cannot be read.
    #[error("malformed telephone-event payload: {0}")]
    MalformedDtmf(&'static str),
    /// The caller's output buffer cannot hold what is to be written.
    #[error("buffer too small: {need} bytes needed")]
    BufferTooSmall {
        /// Bytes the write needs in total.
        need: usize,
    },
    /// The caller broke an API contract (wrong frame length, unknown participant, ...).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}
