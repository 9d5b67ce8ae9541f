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
    /// An SRTP or SRTCP packet too short or malformed to unprotect.
    #[error("malformed SRTP packet: {0}")]
    MalformedSrtp(&'static str),
    /// An SRTP or SRTCP packet whose authentication tag does not verify: forged, corrupted
    /// or protected with other keys. The packet must be dropped.
    #[error("SRTP authentication failed")]
    SrtpAuthentication,
    /// An SRTP or SRTCP packet already received, or too old to tell (RFC 3711 §3.3.2).
    #[error("SRTP replay rejected")]
    SrtpReplay,
    /// Keys of the wrong length for the suite, or a crypto library failure.
    #[error("SRTP setup failed: {0}")]
    SrtpSetup(&'static str),
    /// A codec could not be built or refused a frame.
    #[error("codec: {0}")]
    Codec(#[from] sipx_codec::CodecError),
    /// The caller broke an API contract (wrong frame length, unknown participant, ...).
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),
}
