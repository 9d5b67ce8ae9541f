//! A sans-IO SIP stack (RFC 3261 and friends): bytes and time in, actions out. No sockets, no
//! clock, no async runtime: transport drivers in `sipx-server` feed it.
//!
//! - [`msg`]: messages, URIs, headers; parsing never panics and keeps unknown headers/methods.
//! - [`endpoint`]: the transaction layer (four state machines, timers A–M, RFC 6026).
//! - [`dialog`]: dialogs (route sets, CSeq, target refresh, early dialogs and forking).
//! - [`transport`]: names for transports, flows and peers.
//! - [`identity`]: who a call is from, asserted (RFC 3325) or withheld (RFC 3323).
//! - [`digest`]: digest authentication, server and client side.
//! - [`uac`]: what a caller derives from its INVITE (CANCEL, credentials, the ACK of a 2xx).
//! - [`uas`]: the checks a UAS makes before acting on a request.
//! - [`registrar`]: REGISTER processing over a set of bindings.
//! - [`reliable`]: reliable provisional responses to our INVITEs (RFC 3262): which to PRACK.
//! - [`refer`]: a REFER received (a blind transfer a phone asks for) and its NOTIFY bodies.
//! - [`replaces`]: naming a dialog for a new INVITE to replace (attended transfer).
//! - [`session_timer`]: RFC 4028 session timers, answered and kept.

pub mod dialog;
pub mod digest;
pub mod endpoint;
#[cfg(any(test, feature = "_fuzz"))]
pub mod fuzz;
pub mod identity;
pub mod msg;
pub mod outbound;
mod recent_answers;
pub mod refer;
pub mod registrar;
pub mod reliable;
pub mod replaces;
mod rng;
pub mod session_timer;
pub mod transport;
pub mod uac;
pub mod uas;

/// The hasher of the stack's maps: randomly seeded per map (keys come from the network), and
/// much cheaper than std's SipHash on the strings every message looks up.
pub type FastHash = foldhash::quality::RandomState;

pub use endpoint::{ClientTxnId, Endpoint, EndpointConfig, Event, Output, ServerTxnId};
pub use transport::{FlowId, Peer, Transmit, Transport};
