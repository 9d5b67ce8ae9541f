//! The `srtp` field that trunks and SIP accounts share (and calls will): the SRTP policy of
//! their calls, over the server's `media.srtp` when set.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Whether media must, may or must not be encrypted (SDES-SRTP, RFC 4568).
/// `disabled`: plain RTP only (an `RTP/SAVP` offer is refused with 488, crypto lines in an
/// `RTP/AVP` offer are ignored); `allowed`: SRTP when the peer offers it; `required`: SRTP or
/// nothing (a plain RTP offer is refused with 488).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schema(example = "required")]
pub enum SrtpPolicy {
    Disabled,
    Allowed,
    Required,
}

impl From<SrtpPolicy> for sipx_store::SrtpPolicy {
    fn from(p: SrtpPolicy) -> Self {
        match p {
            SrtpPolicy::Disabled => sipx_store::SrtpPolicy::Disabled,
            SrtpPolicy::Allowed => sipx_store::SrtpPolicy::Allowed,
            SrtpPolicy::Required => sipx_store::SrtpPolicy::Required,
        }
    }
}

impl From<sipx_store::SrtpPolicy> for SrtpPolicy {
    fn from(p: sipx_store::SrtpPolicy) -> Self {
        match p {
            sipx_store::SrtpPolicy::Disabled => SrtpPolicy::Disabled,
            sipx_store::SrtpPolicy::Allowed => SrtpPolicy::Allowed,
            sipx_store::SrtpPolicy::Required => SrtpPolicy::Required,
        }
    }
}
