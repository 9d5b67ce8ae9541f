//! Wires SIPx together: layered configuration, logging, storage, listeners, drain.
//!
//! `main` calls [`Config::load`], [`App::build`] (which binds every listener, so a port in use
//! fails before anything starts) and [`App::run`] until a signal. Protocol logic lives in other
//! crates; this one only owns I/O, time and lifecycles.

mod app;
pub mod config;
mod connection_limits;
mod drain;
mod error;
mod http;
pub mod logging;
mod master_key;
mod media;
mod rooms;
mod sip;
pub mod tls;
mod webhooks;

pub use app::{App, Shutdown, Signals, signals};
pub use config::Config;
pub use drain::{Drain, DrainGuard};
pub use error::StartupError;
pub use master_key::load_master_key;

/// Unix seconds now (for what is shown to people: join times, creation times).
#[allow(clippy::disallowed_methods)]
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
