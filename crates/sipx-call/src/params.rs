//! What a call is started with.

use std::time::Duration;

use crate::dtmf::{DtmfSequence, DtmfTiming};

/// The room the phone joins, as the API named it. Opaque here: the driver's room backend
/// (built-in rooms now, other connectors later) interprets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomTarget {
    pub room: String,
    /// The participant identity the phone gets.
    pub identity: String,
    pub name: String,
    pub metadata: Option<String>,
}

/// A dial-out (`POST /v1/calls`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialOut {
    /// An E.164 number or a SIP URI, as given; the driver builds the Request-URI.
    pub to: String,
    /// Caller id.
    pub from: Option<String>,
    /// The trunk, account or rule chosen; opaque here.
    pub route: Option<String>,
    pub room: RoomTarget,
    /// From the start of the call to the answer; `None`: no limit.
    pub ring_timeout: Option<Duration>,
    /// From the answer; `None`: no limit.
    pub max_duration: Option<Duration>,
    /// Played after the answer (extensions, IVR menus).
    pub dtmf_after_answer: DtmfSequence,
    /// Play early media (a 183 with SDP) into the room before the answer.
    pub early_media: bool,
}

/// An INVITE routed to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub room: RoomTarget,
    /// How long joining the room may take before the caller is turned away (480).
    pub answer_timeout: Option<Duration>,
    /// From the answer; `None`: no limit.
    pub max_duration: Option<Duration>,
}

/// Settings shared by every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallConfig {
    pub dtmf: DtmfTiming,
    /// How long a call that is being ended waits for the other side (a final response to the
    /// cancelled INVITE, the ACK before our BYE) before it is declared over anyway. 64*T1, like
    /// Timer B, by default.
    pub end_guard: Duration,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            dtmf: DtmfTiming::default(),
            end_guard: Duration::from_secs(32),
        }
    }
}
