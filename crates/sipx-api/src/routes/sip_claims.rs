//! One application's SIP must not be another's: a trunk whose inbound networks overlap those
//! of another application's trunk would take that application's calls (the narrowest network
//! wins), and a user name SIP authenticates (a trunk's inbound digest user, a SIP account, an
//! application key) that another already uses would take its logins. Such a trunk or account
//! is refused with 409 before it is stored.
//!
//! The check and the write that follows are one step: two requests of two applications at
//! once must not both find a name free and both take it. The guard `refuse_taken` returns
//! is held until the write is done (one SIPx process serves the API over one database).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::problem::ApiError;
use crate::state::ApiState;

/// What a new or changed trunk or account would claim.
pub(crate) struct Claim<'a> {
    pub app_id: &'a str,
    /// The trunk or account being changed, which may keep what it has.
    pub owner_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub networks: &'a [String],
}

/// Held from the check of a claim until its trunk or account is written.
pub(crate) type ClaimGuard = tokio::sync::MutexGuard<'static, ()>;

static CLAIMS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// 409 when `claim` takes what another application's trunk, account or key has (a user name:
/// what anything else has, in any application). Else the guard to hold until the write.
pub(crate) async fn refuse_taken(
    state: &ApiState,
    claim: Claim<'_>,
) -> Result<ClaimGuard, ApiError> {
    let guard = CLAIMS.lock().await;
    if claim.username.is_none() && claim.networks.is_empty() {
        return Ok(guard);
    }
    // The operator's key is no one's SIP user name either.
    if let (Some(user), Some(admin)) = (claim.username, &state.auth.admin)
        && user == admin.api_key
    {
        return Err(ApiError::Conflict(
            "this SIP user name is already taken".to_owned(),
        ));
    }
    let mine: Vec<IpNet> = claim
        .networks
        .iter()
        .filter_map(|n| claimed_net(n))
        .collect();
    for other in state.store.sip_claims().await? {
        if Some(other.owner_id.as_str()) == claim.owner_id {
            continue;
        }
        if claim.username.is_some() && other.username.as_deref() == claim.username {
            return Err(ApiError::Conflict(
                "this SIP user name is already taken".to_owned(),
            ));
        }
        if other.app_id == claim.app_id {
            continue;
        }
        for theirs in other.networks.iter().filter_map(|n| claimed_net(n)) {
            if let Some(net) = mine.iter().find(|m| overlap(m, &theirs)) {
                return Err(ApiError::Conflict(format!(
                    "inbound network {net} overlaps one another application takes calls from"
                )));
            }
        }
    }
    Ok(guard)
}

/// A network as the API takes it: `203.0.113.0/24`, or one address.
pub(crate) fn parse_net(net: &str) -> Option<IpNet> {
    net.parse::<IpNet>()
        .ok()
        .or_else(|| net.parse::<IpAddr>().ok().map(IpNet::from))
}

/// A network as it claims sources: an IPv4-mapped IPv6 one (`::ffff:192.0.2.1`) claims the
/// IPv4 addresses a dual-stack socket shows that way.
pub(crate) fn claimed_net(net: &str) -> Option<IpNet> {
    let net = parse_net(net)?;
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
    {
        return ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
            .ok()
            .map(IpNet::V4);
    }
    Some(net)
}

/// Whether a trunk's network is wider than any may claim: more than a /16 of IPv4 (65 536
/// addresses, more than any carrier's signalling network) or a /32 of IPv6 (a whole
/// provider's allocation). The API refuses such a network; the SIP core warns of one stored
/// before the bound.
pub fn too_wide_to_claim(net: &IpNet) -> bool {
    let narrowest = match net {
        IpNet::V4(_) => 16,
        IpNet::V6(_) => 32,
    };
    net.prefix_len() < narrowest
}

/// Two prefixes overlap when one contains the other.
fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_overlap_when_one_holds_the_other() {
        let net = |s: &str| parse_net(s).unwrap();
        assert!(overlap(&net("127.0.0.0/24"), &net("127.0.0.77/32")));
        assert!(overlap(&net("127.0.0.77"), &net("0.0.0.0/0")));
        assert!(overlap(&net("10.0.0.0/8"), &net("10.0.0.0/8")));
        assert!(!overlap(&net("10.0.0.0/8"), &net("11.0.0.0/8")));
        assert!(!overlap(&net("127.0.0.1/32"), &net("::1/128")));
        let claimed = |s: &str| claimed_net(s).unwrap();
        assert!(overlap(
            &claimed("127.0.0.231/32"),
            &claimed("::ffff:127.0.0.231/128")
        ));
        assert!(overlap(
            &claimed("10.0.0.0/8"),
            &claimed("::ffff:10.1.0.0/112")
        ));
        assert!(!overlap(&claimed("10.0.0.0/8"), &claimed("::ffff:0:0/95")));
    }
}
