//! Sans-IO media for SIPx: bytes, PCM frames and time in; packets, frames and events out. No
//! sockets, no clock, no async runtime, no codecs (those live in the codec crate and meet this
//! one at PCM `i16` frames and opaque payload bytes).
//!
//! - [`rtp`], [`rtcp`], [`demux`]: packets (RFC 3550, RFC 5761 rtcp-mux, RFC 7983).
//! - [`stats`], [`session`]: receive/send statistics, RTCP reports, round-trip time.
//! - [`jitter`]: an adaptive jitter buffer for one incoming stream.
//! - [`dtmf`]: RFC 4733 telephone events (send and receive) and an in-band Goertzel detector.
//! - [`mixer`]: mix-minus for one room, with a limiter and a single-speaker fast path.
//!
//! Time: every call that needs it takes `now: Instant` from the caller, as `sipx-sip` does;
//! RTP time is counted in timestamp units of the stream's clock rate.

pub mod demux;
pub mod dtmf;
pub mod error;
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz;
pub mod ids;
pub mod jitter;
pub mod mixer;
pub mod resample;
mod rng;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod srtp;
pub mod stats;

pub use demux::{PacketKind, classify};
pub use error::MediaError;
pub use ids::{Pt, Ssrc};
pub use rtp::{RtpHeader, RtpPacket};
pub use session::{RtcpConfig, RtcpEvent, RtcpSession};
pub use stats::MediaStats;
