//! Sans-IO media for SIPx: bytes, PCM frames and time in; packets, frames and events out. No
//! sockets, no clock, no async runtime. The codecs themselves live in `sipx-codec`; the
//! [`leg`] drives them (decode, conceal, encode) and everything else here meets them at PCM
//! `i16` frames and opaque payload bytes.
//!
//! - [`leg`]: [`MediaLeg`], one SIP call's media: RTP/RTCP/SRTP in, 20 ms PCM frames out,
//!   and back.
//! - [`rtp`], [`rtcp`], [`demux`]: packets (RFC 3550, RFC 5761 rtcp-mux, RFC 7983).
//! - [`srtp`]: SDES-SRTP and SRTCP (RFC 3711, RFC 7714), in place.
//! - [`resample`]: integer-ratio polyphase resampling, where a codec cannot run at the
//!   leg's frame rate.
//! - [`prompt`]: voice prompts (the PIN flow's) from embedded WAV files, as 20 ms frames.
//! - [`stats`], [`session`]: receive/send statistics, RTCP reports, round-trip time.
//! - [`jitter`]: an adaptive jitter buffer for one incoming stream.
//! - [`dtmf`]: RFC 4733 telephone events (send and receive) and an in-band Goertzel detector.
//! - [`mixer`]: mix-minus for one room, with a limiter and a single-speaker fast path.
//! - [`silence`]: digital silence, which need not be encoded toward a room or a DTX peer.
//! - [`bridge`]: the phone side of a room participant: the room's Opus streams decoded and
//!   mixed for the phone ([`bridge::RoomListener`]), the caller's voice encoded for the room
//!   ([`bridge::RoomSpeaker`]).
//!
//! Time: every call that needs it takes `now: Instant` from the caller, as `sipx-sip` does;
//! RTP time is counted in timestamp units of the stream's clock rate.

pub mod bridge;
mod decoding;
pub mod demux;
pub mod dtmf;
pub mod error;
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz;
pub mod ids;
pub mod jitter;
pub mod leg;
mod limiter;
pub mod mixer;
mod pcm_queue;
pub mod prompt;
pub mod resample;
mod rng;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod silence;
pub mod srtp;
pub mod stats;

pub use demux::{PacketKind, classify};
pub use error::MediaError;
pub use ids::{Pt, Ssrc};
pub use leg::{FrameKind, LegConfig, LegEvent, LegStats, MediaLeg};
pub use rtp::{RtpHeader, RtpPacket};
pub use session::{RtcpConfig, RtcpEvent, RtcpSession};
pub use stats::MediaStats;
