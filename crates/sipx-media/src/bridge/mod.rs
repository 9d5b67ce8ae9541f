//! The phone side of a room participant, sans-IO. A room's SFU never decodes: it forwards the
//! Opus packets of every participant. For a phone, this bridge does the audio work between
//! those packets and the phone's [`MediaLeg`](crate::MediaLeg), at the leg's frame rate
//! (8 kHz for G.711 legs, 16 kHz for G.722 and Opus legs; Opus decodes and encodes at that rate
//! directly, so nothing is resampled):
//!
//! - [`RoomListener`] (room → phones): each participant's packets into a jitter buffer and an
//!   Opus decoder of its own, decoded once and mixed (mix-minus) for every phone of the room
//!   that listens through it.
//! - [`SharedEncoders`]: what the phones that do not talk hear, encoded once per format.
//! - [`RoomSpeaker`] (phone → room): the caller's 20 ms frames into Opus packets with their
//!   48 kHz RTP time and RFC 6464 audio level.
//!
//! Files: `listener.rs` (sources, mixing), `source.rs` (one participant's stream), `shared.rs`
//! (shared encoding), `speaker.rs` (encoding), `level.rs` (RFC 6464 levels).

mod level;
mod listener;
mod shared;
mod source;
mod speaker;
mod voice;

#[cfg(test)]
mod tests;

pub use level::audio_level;
pub use listener::{Heard, ListenerId, ListenerStats, RoomListener};
pub use shared::SharedEncoders;
pub use speaker::{RoomSpeaker, SpokenPacket};
pub use voice::{NARROWBAND_COMPLEXITY, WIDEBAND_COMPLEXITY, room_voice_options};

/// Opus's RTP clock (RFC 7587): every participant's RTP time counts 48 kHz ticks.
pub const OPUS_CLOCK: u32 = 48_000;
/// RTP ticks of one 20 ms frame on the Opus clock.
pub const FRAME_TICKS: u64 = OPUS_CLOCK as u64 / 50;
/// The largest Opus payload taken (RFC 6716 caps one frame at 1275 bytes).
pub const MAX_PAYLOAD: usize = 1275;
