//! Tracks: what a participant publishes (`TrackIn`) and what a browser receives (`TrackOut`).

use str0m::media::{MediaKind, Mid};

use crate::ids::ParticipantId;
use crate::signal::TrackKind;

/// A published track. A browser's has the m-line it arrives on; a phone's has none (its audio
/// arrives through the media engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackIn {
    pub origin: ParticipantId,
    pub mid: Option<Mid>,
    pub kind: MediaKind,
}

pub fn kind_of(kind: MediaKind) -> TrackKind {
    match kind {
        MediaKind::Audio => TrackKind::Audio,
        MediaKind::Video => TrackKind::Video,
    }
}

/// Where a received track stands in the SDP negotiation with its browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackOutState {
    /// Wanted, not offered yet.
    ToOpen,
    /// In the server's unanswered offer.
    Negotiating(Mid),
    Open(Mid),
    /// Its publisher left: the m-line goes inactive, to be reused for a later track of the
    /// same kind. (Stopping m-lines instead would make a browser tear down the whole transport
    /// when the stopped one tags the BUNDLE group.)
    ToIdle(Mid),
    NegotiatingIdle(Mid),
}

/// A track a browser receives from another participant.
#[derive(Debug, Clone, Copy)]
pub struct TrackOut {
    pub source: TrackIn,
    pub state: TrackOutState,
    /// Its publisher left: once open, the m-line goes idle.
    pub gone: bool,
}

impl TrackOut {
    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            TrackOutState::ToOpen => None,
            TrackOutState::Negotiating(m)
            | TrackOutState::Open(m)
            | TrackOutState::ToIdle(m)
            | TrackOutState::NegotiatingIdle(m) => Some(m),
        }
    }

    /// Media can be written to it.
    pub fn open_mid(&self) -> Option<Mid> {
        match self.state {
            TrackOutState::Open(m) => Some(m),
            _ => None,
        }
    }
}
