//! The built-in rooms of SIPx: a selective forwarding unit on str0m where browsers (WebRTC) and
//! phone participants (through the media engine) meet. Sans-IO: the rooms thread in
//! `sipx-server` owns the UDP socket and the clock and feeds [`Sfu`].
//!
//! Files: `sfu.rs` (rooms, participants, forwarding; `sfu/tests.rs` drives it with str0m
//! peers), `browser.rs` (one browser's `Rtc` and its SDP negotiation), `track.rs`, `speaking.rs`
//! (active speakers from audio levels), `signal.rs` (the signalling messages,
//! docs/rooms-signalling.md), `view.rs` (what the API shows), `ids.rs`, `error.rs`.

mod browser;
mod error;
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz;
mod ids;
mod sfu;
#[cfg(test)]
mod sfu_tests;
pub mod signal;
mod speaking;
mod track;
pub mod view;

pub use error::RoomError;
pub use ids::{PHONE_IDENTITY_PREFIX, ParticipantId, RoomKey, may_choose_identity, valid_name};
pub use sfu::{JoinRequest, Output, RoomEvent, Sfu, SfuConfig};
