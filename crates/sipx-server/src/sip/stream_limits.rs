//! The SIP side of the bounds on stream connections (TCP, TLS, WS, WSS): how many
//! (`connection_limits`), and how long a connection may stay quiet.
//!
//! - a connection must send its first message, and finish any message it starts, within the
//!   setup timeout (a peer trickling bytes holds nothing for long);
//! - a connection that carried SIP may then stay quiet for the idle timeout, longer than any
//!   registration lasts, so a device registered over it is always reachable down it; a call
//!   whose connection closed anyway is still reached on a new one (`core/reconnect.rs`).

use std::sync::Arc;
use std::time::Duration;

use crate::connection_limits::ConnectionLimits;

/// The bounds on SIP's stream connections.
#[derive(Debug)]
pub struct StreamLimits {
    pub connections: Arc<ConnectionLimits>,
    pub timeouts: StreamTimeouts,
}

/// How long a connection may take to say something, and then stay quiet.
#[derive(Debug, Clone, Copy)]
pub struct StreamTimeouts {
    pub setup: Duration,
    pub idle: Duration,
}
