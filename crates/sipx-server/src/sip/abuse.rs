//! Abuse protection for the SIP listeners, as plain state fed with time: repeated
//! authentication failures from one source address earn a temporary ban, during which its
//! packets are dropped unanswered; well-known scanners are dropped outright.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct AbusePolicy {
    pub max_auth_failures: u32,
    pub failure_window: Duration,
    pub ban: Duration,
    pub drop_scanners: bool,
}

/// User-Agent prefixes of SIP scanners (SIPVicious and friends).
const SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipsak",
    "vaxsipuseragent",
    "iwar",
    "sundayddr",
    "pplsip",
    "smap",
    "scanner",
];

pub fn is_scanner(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    SCANNERS.iter().any(|s| ua.starts_with(s))
}

#[derive(Debug, Default)]
pub struct AbuseGuard {
    failures: HashMap<IpAddr, (u32, Instant)>,
    bans: HashMap<IpAddr, Instant>,
}

impl AbuseGuard {
    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.bans.get(&ip) {
            Some(until) if *until > now => true,
            Some(_) => {
                self.bans.remove(&ip);
                false
            }
            None => false,
        }
    }

    /// Counts a failed authentication; `true` when it earns the source a ban.
    pub fn record_failure(&mut self, ip: IpAddr, now: Instant, policy: &AbusePolicy) -> bool {
        let entry = self.failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > policy.failure_window {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 >= policy.max_auth_failures {
            self.failures.remove(&ip);
            self.bans.insert(ip, now + policy.ban);
            return true;
        }
        false
    }

    pub fn record_success(&mut self, ip: IpAddr) {
        self.failures.remove(&ip);
    }

    /// Drops stale entries. Call now and then.
    pub fn prune(&mut self, now: Instant, policy: &AbusePolicy) {
        self.failures
            .retain(|_, (_, since)| now.duration_since(*since) <= policy.failure_window);
        self.bans.retain(|_, until| *until > now);
    }

    pub fn banned_count(&self) -> usize {
        self.bans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_repeated_failures_then_forgives() {
        let policy = AbusePolicy {
            max_auth_failures: 3,
            failure_window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            drop_scanners: true,
        };
        let mut g = AbuseGuard::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        assert!(!g.record_failure(ip, t0, &policy));
        assert!(!g.record_failure(ip, t0, &policy));
        assert!(g.record_failure(ip, t0, &policy));
        assert!(g.is_banned(ip, t0 + Duration::from_secs(299)));
        assert!(!g.is_banned(ip, t0 + Duration::from_secs(301)));
        // Failures spread beyond the window do not add up.
        assert!(!g.record_failure(ip, t0, &policy));
        assert!(!g.record_failure(ip, t0 + Duration::from_secs(61), &policy));
        assert!(!g.record_failure(ip, t0 + Duration::from_secs(62), &policy));
    }

    #[test]
    fn recognises_scanners() {
        assert!(is_scanner("friendly-scanner"));
        assert!(is_scanner("sipvicious 0.3"));
        assert!(!is_scanner("baresip v1.0.0"));
    }
}
