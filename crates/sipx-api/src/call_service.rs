//! What the API needs of call control (the calls live in the SIP core of `sipx-server`): a
//! trait, so this crate stays free of SIP and tests can run the API without it.
//!
//! Reads (`GET /v1/calls…`, `/v1/cdrs`) go to the store, where the core keeps every call's last
//! known state; commands (dial, hang up, DTMF, mute) go through this trait to the core.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::room_service::BoxFuture;

/// How a dial-out reaches the phone network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialRoute {
    /// Through this outbound trunk of the application.
    Trunk(String),
    /// Through a device registered with this SIP account of the application (a SIM gateway,
    /// a phone).
    SipAccount(String),
    /// The application's outbound trunks in name order, then its registered accounts.
    Automatic,
}

/// A checked `POST /v1/calls`.
#[derive(Debug, Clone)]
pub struct DialRequest {
    pub app_id: String,
    /// An E.164 number (`+` and digits), digits, or a `sip:`/`sips:` URI.
    pub to: String,
    /// Caller id: a number or SIP user; the trunk's own caller id when `None`.
    pub from: Option<String>,
    /// The called phone is not shown the caller id (RFC 3323 `Privacy: id`).
    pub withhold_caller_id: bool,
    pub route: DialRoute,
    pub room: String,
    pub identity: String,
    pub display_name: String,
    pub metadata: Option<String>,
    pub ring_timeout: Duration,
    pub max_duration: Duration,
    pub dtmf_after_answer: Option<String>,
    pub early_media: bool,
    /// `disabled`, `allowed` or `required`; the route's (then the server's) when `None`.
    pub srtp: Option<sipx_store::SrtpPolicy>,
    pub webhook_url: Option<String>,
}

/// Why call control refused a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommandError {
    /// No such call in this application.
    NotFound,
    /// The call has ended (or is in a state where the command makes no sense).
    Conflict(String),
    /// A field names something that does not work (an unknown trunk, a disabled account).
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Nothing can place the call now (no route, no media port, no rooms).
    Unavailable(String),
}

/// The first SIPx's number for a call state, for receivers written against it.
pub fn state_number(state: &str) -> u8 {
    match state {
        "CALLING" => 1,
        "INCOMING" => 2,
        "EARLY" => 3,
        "CONNECTING" => 4,
        "CONFIRMED" => 5,
        "DISCONNECTED" => 6,
        _ => 0,
    }
}

/// Where a transferred phone goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    /// A number (in the phone's own domain) or a SIP URI.
    Blind { to: String },
    /// The phone of another answered call of the same application, whose dialog the new call
    /// replaces (RFC 3891).
    Attended { replaces: String },
}

pub trait CallService: Send + Sync {
    /// Starts a dial-out and answers, as soon as it is started, with the call's record as it
    /// was stored then (`CALLING`): what happened to it since is for `GET` and the events.
    fn dial(
        &self,
        request: DialRequest,
    ) -> BoxFuture<Result<sipx_store::CallRecord, CallCommandError>>;
    /// Hangs up in any state.
    fn hangup(&self, app_id: String, call_id: String) -> BoxFuture<Result<(), CallCommandError>>;
    /// Queues key presses for the phone (digits, `*`, `#`, `A`–`D`; `,` pauses 500 ms).
    fn send_dtmf(
        &self,
        app_id: String,
        call_id: String,
        digits: String,
    ) -> BoxFuture<Result<(), CallCommandError>>;
    /// Asks the phone (REFER) to call someone else; our side ends once the phone reports the
    /// new call answered.
    fn transfer(
        &self,
        app_id: String,
        call_id: String,
        target: TransferTarget,
    ) -> BoxFuture<Result<(), CallCommandError>>;
    fn mute(
        &self,
        app_id: String,
        call_id: String,
        muted: bool,
    ) -> BoxFuture<Result<(), CallCommandError>>;
}

/// One entry of a call's history as the core stores it (JSON in the call's row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHistoryEntry {
    pub state: String,
    /// Unix milliseconds.
    pub at_ms: i64,
    pub code: u16,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// Media statistics as the core stores them (JSON in the call's row).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredMediaStats {
    pub packets_received: u64,
    pub packets_sent: u64,
    pub packets_lost: u64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Round trip from RTCP, milliseconds, when known.
    pub rtt_ms: Option<f64>,
    /// An E-model estimate (ITU-T G.107), 1–4.5.
    pub mos: Option<f64>,
}
