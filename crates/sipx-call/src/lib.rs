//! The call state machine of SIPx, sans-IO: one [`Call`] per call, dialled out through the API
//! or arriving as an INVITE routed to a room.
//!
//! A call is fed API commands ([`Call::hangup`], [`Call::send_dtmf`], [`Call::set_muted`]),
//! abstract SIP, room and media events ([`Call::handle_input`]) and time
//! ([`Call::handle_timeout`]), each with `now`. It answers through [`Call::poll_output`] with
//! [`Command`]s for the driver (send INVITE/CANCEL/BYE, answer or reject, join or leave the room,
//! start, bridge or stop media, press a DTMF key), [`Event`]s for webhooks (every state change,
//! every digit received) and the next [`Output::Timeout`]. After every input, drain
//! `poll_output` until it returns `Output::Timeout` or `None`. It keeps the full
//! [`Call::history`]. No sockets, clock, tokio, SQL or serde; the driver in `sipx-server`
//! owns the transactions and dialogs (`sipx-sip`), the media leg and the room.
//!
//! # States
//!
//! The first SIPx's states, with its numbers ([`CallStateKind::number`]): `CALLING 1`,
//! `INCOMING 2` (inbound calls, new here), `EARLY 3`, `CONNECTING 4`, `CONFIRMED 5`,
//! `DISCONNECTED 6`. Each entry has a time, a SIP code and a reason; `DISCONNECTED` also an
//! [`EndCause`]. Every call ends in exactly one `DISCONNECTED`, and nothing comes out after it.
//!
//! ## Outbound (dial-out)
//!
//! | state (phase) | on | commands | next |
//! |---|---|---|---|
//! | `CALLING 0` (joining room) | room joined | `SendInvite` | `CALLING` (awaiting answer) |
//! | | room failed / removed | — | `DISCONNECTED 500 Room failed: …` |
//! | | ring timeout | `LeaveRoom` | `DISCONNECTED 500 Room join timed out` |
//! | | hang-up | `LeaveRoom` | `DISCONNECTED 487 Request Terminated` |
//! | `CALLING`/`EARLY` (awaiting answer) | 100 | — | (a CANCEL may now be sent) |
//! | | 101–199 | `StartMedia` if SDP, `SetMediaMode(EarlyToRoom)` if `early_media` | `EARLY code reason` (once per distinct code and reason) |
//! | | 2xx | `StartMedia` if not yet, `SetMediaMode(Bridged)`; DTMF after answer begins | `CONNECTING 200`, `CONFIRMED 200` |
//! | | 3xx–6xx | `LeaveRoom`, `StopMedia` | `DISCONNECTED code reason` (`Rejected`) |
//! | | Timer B / transport error | `LeaveRoom`, `StopMedia` | `DISCONNECTED 408 Request Timeout` / `503 Service Unavailable` (`Unreachable`) |
//! | | not sent (`NotSent`: no address, no device, trunk full) | `LeaveRoom`, `StopMedia` | `DISCONNECTED code reason` (`Unreachable`) |
//! | | ring timeout | `SendCancel`¹, `LeaveRoom`, `StopMedia` | cancelling, to end `408 No answer` (`NoAnswer`) |
//! | | hang-up | same | cancelling, to end `487 Request Terminated` |
//! | | room removed / failed | `SendCancel`¹, `StopMedia` | cancelling, to end `487 Removed from room: …` / `500 Room failed: …` |
//! | | BYE (2xx overtaken) | `LeaveRoom`, `StopMedia` | `DISCONNECTED 200 Normal call clearing` |
//! | cancelling (state unchanged) | first provisional¹ | `SendCancel` | cancelling |
//! | | 487 or any final, Timer B, transport error, BYE | — | `DISCONNECTED` with the code chosen when ending |
//! | | 2xx (crossed the CANCEL) | `SendBye` | same |
//! | | `end_guard` (32 s) passes | — | same |
//! | `CONFIRMED` | BYE | `LeaveRoom`, `StopMedia` | `DISCONNECTED 200 Normal call clearing` (`RemoteHangup`) |
//! | | hang-up | `SendBye`, `LeaveRoom`, `StopMedia` | `DISCONNECTED 200 Normal call clearing` (`LocalHangup`) |
//! | | room removed / failed | `SendBye`, `StopMedia` | `DISCONNECTED 200 Removed from room: …` / `Room failed: …` |
//! | | max duration | `SendBye`, `LeaveRoom`, `StopMedia` | `DISCONNECTED 200 Max duration reached` |
//! | | transfer completed ([`Call::transferred`]) | same | `DISCONNECTED 200 Transferred` |
//! | | media timeout | same | `DISCONNECTED 200 Media timeout` |
//! | | DTMF step due | `SendDtmf` | `CONFIRMED` |
//!
//! ¹ RFC 3261 §9.1: no CANCEL before a provisional response. Ended before one, the call sends
//! the CANCEL when the first provisional response (100 included) arrives; if none does, Timer B
//! or the guard ends it.
//!
//! ## Inbound
//!
//! | state (phase) | on | commands | next |
//! |---|---|---|---|
//! | `INCOMING 0` | room joined | `Answer`, `StartMedia`, `SetMediaMode(Bridged)` | `CONNECTING 200 OK` |
//! | | CANCEL | `Reject 487`, `LeaveRoom` | `DISCONNECTED 487 Request Terminated` (`RemoteCancel`) |
//! | | hang-up | `Reject 603`, `LeaveRoom` | `DISCONNECTED 603 Decline` |
//! | | room failed / removed, answer timeout | `Reject 480` (`LeaveRoom` on timeout) | `DISCONNECTED 480 …` |
//! | `CONNECTING` (awaiting ACK) | ACK | — | `CONFIRMED 200 OK` |
//! | | ACK timeout | `SendBye`, `LeaveRoom`, `StopMedia` | `DISCONNECTED 408 ACK timeout` |
//! | | BYE | `LeaveRoom`, `StopMedia` | `DISCONNECTED 200 Normal call clearing` |
//! | | hang-up, room gone, max duration, media timeout | `LeaveRoom`/`StopMedia` now, `SendBye` once the ACK (or its timeout, or the guard) comes (RFC 3261 §15) | `DISCONNECTED 200 …` then |
//! | `CONFIRMED` | as outbound | | |
//!
//! # Decisions
//!
//! - **No answer is `408 No answer`.** The ring timeout sends a CANCEL and the callee answers
//!   487, but `DISCONNECTED` keeps the cause we chose when ending: `408 No answer` for the ring
//!   timeout, `487 Request Terminated` for a hang-up through the API. So the two differ by code,
//!   not only by reason; whatever final response the cancelled INVITE gets (487, 486, a 2xx
//!   ended with BYE) does not change it.
//! - **Ended by us, recorded when the INVITE is settled.** Before an answer, `DISCONNECTED` waits
//!   for the INVITE's final response, because a 2xx may still cross the CANCEL and must get a
//!   BYE; the room and media are let go at once. The wait is bounded by `end_guard` (64*T1).
//! - **The room first.** A dial-out joins its room before it sends the INVITE, so no phone rings
//!   for a room that cannot be joined; the ring timeout counts from the start.
//! - **After the answer the code is 200**, as the first SIPx showed `DISCONNECTED 200 Normal call
//!   clearing`; the reason and [`EndCause`] say why (BYE from either side, room removal, max
//!   duration, media timeout). `max_duration` counts from the answer.
//! - **ACKs are not the call's.** The INVITE transaction ACKs non-2xx answers; the dialog layer
//!   ACKs every 2xx, including one that crossed a CANCEL, after which the call asks for the BYE.
//!   A 2xx arriving after `end_guard` has ended the call is the dialog layer's to ACK and BYE.
//! - **Reasons are what the peer said**, cut to 128 bytes; an empty one becomes `SIP <code>`
//!   (the driver can put the standard phrase in first), so every entry says something. A status of 700 or more (not SIP) ends the
//!   call as `500 Invalid status code …`; below 100 it is ignored.
//! - **A `LeaveRoom` also abandons a join in progress**: a `Joined` that arrives after it is
//!   ignored here, and the driver must not leave the participant behind.
//!
//! # Routing and PINs
//!
//! [`routing::route`] picks the rule an inbound call matches and says what to do with it (a
//! room, a webhook to ask, a refusal); [`PinEntry`] collects the PIN of a protected room by
//! DTMF. Both are pure, like the call: plain types in, decisions out (docs/routing.md).
//!
//! Files: `call.rs` (the machine), `state.rs` (states, history entries, end causes), `io.rs`
//! (inputs and outputs), `params.rs` (dial-out and inbound parameters, settings), `dtmf.rs`
//! (digits, dial strings with pauses, pacing), `reason.rs` (reason phrases), `timer.rs`,
//! `error.rs`, `routing.rs` (inbound routing rules), `pin.rs` (PIN entry), `numbers.rs` (a
//! trunk's or account's number rewrites).

mod call;
mod dtmf;
mod error;
mod io;
mod numbers;
mod params;
mod pin;
mod reason;
pub mod routing;
mod state;
mod timer;

#[cfg(test)]
mod tests;

pub use call::{Call, SHUTTING_DOWN};
pub use dtmf::{Digit, DtmfQueue, DtmfSequence, DtmfStep, DtmfTiming, MAX_DTMF_LEN, MAX_QUEUED};
pub use error::CallError;
pub use io::{Command, Event, Input, Invite, MediaInput, MediaMode, Output, RoomInput, SipInput};
pub use numbers::NumberRules;
pub use params::{CallConfig, DialOut, Inbound, RoomTarget};
pub use pin::{PIN_LEN, Pin, PinEntry, PinOutput, PinSettings, Prompt};
pub use state::{CallState, CallStateKind, Direction, EndCause};
