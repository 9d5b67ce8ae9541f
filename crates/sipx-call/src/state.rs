//! The call states the API shows, named and numbered as the first SIPx did.

use std::fmt;
use std::time::Instant;

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Dialled out through the API: SIPx sends the INVITE.
    Outbound,
    /// An INVITE that reached SIPx and was routed to a room.
    Inbound,
}

/// A state of the call as the API and webhooks report it.
///
/// The names and numbers are those of the first SIPx (which were pjsip's `pjsip_inv_state`):
/// `CALLING 1`, `INCOMING 2`, `EARLY 3`, `CONNECTING 4`, `CONFIRMED 5`, `DISCONNECTED 6`. The first
/// SIPx only dialled out; `INCOMING` is the first state of an inbound call here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStateKind {
    /// Outbound: started, joining the room or waiting for the first provisional response.
    Calling,
    /// Inbound: the INVITE arrived; joining the room before answering.
    Incoming,
    /// Outbound: a provisional response (180, 183…) arrived.
    Early,
    /// 2xx sent or received; for an inbound call, waiting for the ACK.
    Connecting,
    /// Answered and acknowledged: media flows both ways.
    Confirmed,
    /// Over. Always the last state, and there is exactly one.
    Disconnected,
}

impl CallStateKind {
    /// Every state, in the order a call goes through them.
    pub const ALL: [CallStateKind; 6] = [
        CallStateKind::Calling,
        CallStateKind::Incoming,
        CallStateKind::Early,
        CallStateKind::Connecting,
        CallStateKind::Confirmed,
        CallStateKind::Disconnected,
    ];

    /// The state a name stands for, in any case (`confirmed`, `CONFIRMED`).
    pub fn from_name(name: &str) -> Option<CallStateKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(name))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallStateKind::Calling => "CALLING",
            CallStateKind::Incoming => "INCOMING",
            CallStateKind::Early => "EARLY",
            CallStateKind::Connecting => "CONNECTING",
            CallStateKind::Confirmed => "CONFIRMED",
            CallStateKind::Disconnected => "DISCONNECTED",
        }
    }

    /// The state number of the first SIPx's `callstate` lines.
    pub fn number(self) -> u8 {
        match self {
            CallStateKind::Calling => 1,
            CallStateKind::Incoming => 2,
            CallStateKind::Early => 3,
            CallStateKind::Connecting => 4,
            CallStateKind::Confirmed => 5,
            CallStateKind::Disconnected => 6,
        }
    }
}

impl fmt::Display for CallStateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call ended, for machines (webhooks, CDRs); the SIP code and reason say it for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndCause {
    /// The callee answered 3xx–6xx (busy, unknown number, declined…).
    Rejected,
    /// No final response (Timer B) or the transport failed.
    Unreachable,
    /// The ring timeout passed before an answer.
    NoAnswer,
    /// Hung up through the API.
    LocalHangup,
    /// The phone hung up (BYE).
    RemoteHangup,
    /// The inbound caller gave up before the answer (CANCEL).
    RemoteCancel,
    /// The participant was removed from the room, or the room closed.
    RoomRemoved,
    /// The room could not be joined, or the participant's session failed.
    RoomFailed,
    /// `max_duration` passed.
    MaxDuration,
    /// The phone stopped sending media.
    MediaTimeout,
    /// Inbound: our 2xx was never acknowledged.
    AckTimeout,
    /// The phone took a blind transfer and the new call was answered.
    Transferred,
    /// The RFC 4028 session was not refreshed in time.
    SessionExpired,
    /// The phone's SDP answer could not be used (no common codec, no usable crypto).
    MediaRefused,
}

impl EndCause {
    pub fn as_str(self) -> &'static str {
        match self {
            EndCause::Rejected => "rejected",
            EndCause::Unreachable => "unreachable",
            EndCause::NoAnswer => "no_answer",
            EndCause::LocalHangup => "local_hangup",
            EndCause::RemoteHangup => "remote_hangup",
            EndCause::RemoteCancel => "remote_cancel",
            EndCause::RoomRemoved => "room_removed",
            EndCause::RoomFailed => "room_failed",
            EndCause::MaxDuration => "max_duration",
            EndCause::MediaTimeout => "media_timeout",
            EndCause::AckTimeout => "ack_timeout",
            EndCause::Transferred => "transferred",
            EndCause::SessionExpired => "session_expired",
            EndCause::MediaRefused => "media_refused",
        }
    }
}

/// One entry of a call's history.
///
/// `at` is the core's monotonic time; the driver, which reads both clocks, turns it into wall
/// time for the API. `code` is 0 for `CALLING`/`INCOMING`, as the first SIPx showed `CALLING 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallState {
    pub kind: CallStateKind,
    pub at: Instant,
    pub code: u16,
    pub reason: String,
    /// Set on `DISCONNECTED` only.
    pub cause: Option<EndCause>,
}

/// How a call is going to end: what `DISCONNECTED` will say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct End {
    pub code: u16,
    pub reason: String,
    pub cause: EndCause,
}

impl End {
    pub fn new(code: u16, reason: impl Into<String>, cause: EndCause) -> End {
        End {
            code,
            reason: reason.into(),
            cause,
        }
    }
}
