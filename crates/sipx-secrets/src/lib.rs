//! Secrets of SIPx, with no I/O and no clock.
//!
//! - [`signature`]: the request signature scheme of the first SIPx
//!   (`HMAC-SHA256(api_secret, api_key ‖ expire_at)`, base64url without padding), verified in
//!   constant time.
//! - [`sealed`]: secrets that the server must be able to read back (an application's
//!   `api_secret` is the HMAC key; a SIP account password feeds digest) are stored sealed with
//!   AES-256-GCM under a master key, bound to the row they belong to.
//! - [`generate`]: new API keys, secrets and master keys from the system CSPRNG.
//! - [`jwt`]: HS256 JSON Web Tokens, the room join tokens (signed with an application's secret).
//! - [`webhook`]: the `SIPx-Signature` header on outgoing webhooks (HMAC-SHA256 over
//!   timestamp and body, hex).
//! - [`Redacted`]: a wrapper whose `Debug`/`Display` never print the value.

pub mod generate;
pub mod jwt;
pub mod redacted;
pub mod sealed;
pub mod signature;
pub mod webhook;

pub use redacted::Redacted;
pub use sealed::{MasterKey, SealError};
pub use signature::{SignatureError, sign, verify};
pub use webhook::{WebhookSignatureError, sign_webhook, verify_webhook};
