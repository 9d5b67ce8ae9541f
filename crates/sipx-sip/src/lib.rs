//! A sans-IO SIP stack (RFC 3261 and friends): bytes and time in, actions out. No sockets, no
//! clock, no async runtime: transport drivers in `sipx-server` feed it.
//!
//! - [`msg`]: messages, URIs, headers; parsing never panics and keeps unknown headers/methods.

pub mod msg;
