//! What goes into a [`Call`](crate::Call) and what comes out.
//!
//! SIP arrives as abstract events, not `sipx-sip` types: the driver owns the transactions and
//! dialogs, and tells the call only what matters to its state. Digest challenges are answered by
//! the driver (it re-sends the INVITE) and never reach the call.

use std::time::{Duration, Instant};

use crate::dtmf::Digit;
use crate::params::RoomTarget;
use crate::state::CallState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Sip(SipInput),
    Room(RoomInput),
    Media(MediaInput),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipInput {
    /// A response to our INVITE, any code (100 included). 3xx is not followed: it ends the
    /// call like any other failure.
    Response {
        code: u16,
        /// The reason phrase as received; the driver may put the standard phrase in place of an
        /// empty one (the call records `SIP <code>` otherwise).
        reason: String,
        /// It carried SDP (early media on a provisional, the answer on a 2xx).
        sdp: bool,
    },
    /// Timer B fired: the INVITE got no final response (treated as 408).
    RequestTimeout,
    /// The INVITE could not be delivered (treated as 503, RFC 3261 §8.1.3.1).
    TransportError,
    /// The INVITE could not be sent at all, for the driver's reason (a host that does not
    /// resolve, no registered device, the trunk's call limit): the callee was not reached.
    NotSent { code: u16, reason: String },
    /// The phone's BYE (the driver answers it 200).
    Bye,
    /// Inbound: the caller's CANCEL matched our INVITE server transaction.
    Cancel,
    /// Inbound: the ACK of our 2xx.
    Ack,
    /// Inbound: our 2xx was not acknowledged in time (Timer H/L).
    AckTimeout,
    /// The RFC 4028 session timer ran out: nobody refreshed the session, or the peer answered
    /// a refresh with 408/481. An answered call ends with a BYE.
    SessionExpired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomInput {
    /// The phone's participant is in the room.
    Joined { participant: String },
    /// Removed through the API, replaced, or the room closed.
    Removed { why: String },
    /// The join failed, or the participant's session did.
    Failed { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaInput {
    /// A key press from the phone (RFC 4733, INFO or in-band, the leg does not say).
    Dtmf { digit: Digit },
    /// The phone stopped sending media.
    Timeout,
}

/// What the call asks the driver to do, or tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Command(Command),
    Event(Event),
    /// Call [`Call::handle_timeout`](crate::Call::handle_timeout) at this instant.
    Timeout(Instant),
}

/// Something for the driver to do. ACKs are not here: the ACK of a non-2xx belongs to the
/// INVITE client transaction, and the ACK of a 2xx to the dialog layer, which sends it for every
/// 2xx (even one that crossed our CANCEL, which the call then ends with a BYE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    JoinRoom(RoomTarget),
    /// Leave the room (or give up a join still in progress).
    LeaveRoom,
    /// Stop or resume sending the phone's audio into the room.
    SetMuted(bool),
    /// Outbound: send the INVITE (with an SDP offer).
    SendInvite(Invite),
    /// Outbound: cancel the INVITE (only after a provisional response, RFC 3261 §9.1).
    SendCancel,
    /// End the confirmed (or answered) dialog.
    SendBye,
    /// Inbound: answer the INVITE 200 with the SDP answer.
    Answer,
    /// Inbound: answer the INVITE with this final failure response.
    Reject {
        code: u16,
        reason: String,
    },
    /// Start the media leg: the remote SDP is known. A started leg is silent until
    /// [`Command::SetMediaMode`].
    StartMedia,
    SetMediaMode(MediaMode),
    StopMedia,
    /// Press a key on the phone's line for `duration`.
    SendDtmf {
        digit: Digit,
        duration: Duration,
    },
}

/// What the phone's audio does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaMode {
    /// Early media: the phone's side (ringback, announcements) is heard in the room; the room
    /// is not sent to the phone.
    EarlyToRoom,
    /// Answered: the phone hears the room's mix and the room hears the phone.
    Bridged,
}

/// The parameters the driver needs for the INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub to: String,
    pub from: Option<String>,
    pub route: Option<String>,
}

/// Something that happened, for webhooks and the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new entry of the history.
    StateChanged(CallState),
    /// A key press from the phone.
    DtmfReceived { digit: Digit, at: Instant },
}
