//! SDP for the SIP side of SIPx: parse and write session descriptions (RFC 8866), and
//! negotiate the one audio stream of a call by offer/answer (RFC 3264). Pure: no I/O, no clock,
//! no random numbers (the caller supplies SRTP key material and the `o=` session id).
//!
//! - [`SessionDescription`]: the model; [`SessionDescription::parse`] is tolerant of real
//!   equipment, keeps unknown lines, never panics, and enforces the [`limits`].
//! - [`attr`], [`crypto`], [`codec`]: typed views of `rtpmap`, `fmtp`, `ptime`, directions,
//!   `rtcp`, `crypto` (SDES), and the codecs and static payload types SIPx knows.
//! - [`MediaSession`]: the offer/answer state machine (early and late offer, re-offers, hold,
//!   SDES-SRTP policy). Success gives a [`NegotiatedMedia`]; refusal a [`Rejection`] that
//!   becomes `488` plus a `Warning` header.

pub mod attr;
pub mod codec;
mod config;
pub mod crypto;
mod error;
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz;
pub mod limits;
mod model;
mod negotiate;
mod negotiated;
mod offer;
mod parse;
mod reject;
mod serialize;
mod session;

pub use attr::Direction;
pub use codec::Codec;
pub use config::{LocalCodec, MediaConfig, Preference, SrtpPolicy};
pub use crypto::SrtpSuite;
pub use error::SdpError;
pub use model::{
    Attribute, Bandwidth, Connection, Line, MediaDescription, Origin, SessionDescription,
    addr_type_of,
};
pub use negotiate::KEY_MATERIAL_LEN;
pub use negotiated::{
    NegotiatedCodec, NegotiatedMedia, RtcpTarget, SrtpKey, SrtpParams, TelephoneEvent,
};
pub use reject::Rejection;
pub use session::MediaSession;
