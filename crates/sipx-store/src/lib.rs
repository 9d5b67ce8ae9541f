//! Persistent state of SIPx. **The only crate that knows SQL.**
//!
//! The embedded default is SQLite in WAL mode with `synchronous=FULL`: a write is acknowledged
//! only once its transaction is in the write-ahead log on disk, so neither `kill -9` nor a power
//! cut loses an acknowledged write. Secrets are sealed before they reach a row and opened only
//! when a caller needs them (see `sipx_secrets::sealed`).
//!
//! Tenant isolation lives here: every query on a tenant's objects takes the `AppId` and filters
//! by it, so a handler cannot forget to.

mod apps;
mod calls;
mod error;
mod ids;
mod migrations;
mod page;
mod registrations;
mod routing_rules;
mod sip_accounts;
mod sip_identities;
mod srtp;
mod store;
mod time;
mod trunks;
mod webhooks;

pub use apps::{AppRecord, AppUpdate};
pub use calls::{CallEnd, CallFilter, CallProgress, CallRecord, CallWrite, new_call_id};
pub use error::StoreError;
pub use ids::sorted_id;
pub use page::{Page, PageRequest};
pub use registrations::{BindingSet, RegistrationRecord};
pub use routing_rules::{
    MatchKind, MissingRef, NumberMatch, RoutingRuleData, RoutingRuleRecord, RoutingRuleWithPin,
    RuleAction, RuleKey,
};
pub use sip_accounts::{AccountCallSettings, NewSipAccount, SipAccountRecord, SipAccountUpdate};
pub use sip_identities::SipClaim;
pub use srtp::SrtpPolicy;
pub use store::Store;
pub use trunks::{SecretChange, TrunkData, TrunkRecord, TrunkWithSecrets};
pub use webhooks::{
    AfterAttempt, AttemptRecord, DeliveryFilter, DeliveryRecord, DeliveryStatus, NewAttempt,
    NewDelivery,
};

/// A column holding a space-separated list (networks, numbers, codec names), as its items.
pub(crate) fn words(column: &str) -> Vec<String> {
    column.split_whitespace().map(str::to_owned).collect()
}
