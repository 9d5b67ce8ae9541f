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
    /// Messages per second one source may send (0: unlimited), and the burst above it.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// Proxies in front of SIPx (Kamailio, an SBC): never banned or rate-limited, since they
    /// carry everybody's traffic.
    pub trusted: Vec<ipnet::IpNet>,
}

impl AbusePolicy {
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }
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
    /// Token buckets: (tokens, last refill).
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl AbuseGuard {
    /// Takes one token from `ip`'s bucket; `false` when the source exceeds its rate.
    pub fn allow(&mut self, ip: IpAddr, now: Instant, policy: &AbusePolicy) -> bool {
        if policy.rate_per_sec == 0 || policy.is_trusted(ip) {
            return true;
        }
        let rate = f64::from(policy.rate_per_sec);
        let burst = f64::from(policy.rate_burst.max(policy.rate_per_sec));
        let (tokens, last) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn is_banned(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.bans.is_empty() {
            return false;
        }
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
        if policy.is_trusted(ip) {
            return false;
        }
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
        // A bucket idle for a second is full again: forget it.
        self.buckets
            .retain(|_, (_, last)| now.duration_since(*last) < Duration::from_secs(1));
    }

    pub fn banned_count(&self) -> usize {
        self.bans.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> AbusePolicy {
        AbusePolicy {
            max_auth_failures: 3,
            failure_window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
            drop_scanners: true,
            rate_per_sec: 10,
            rate_burst: 20,
            trusted: vec!["10.9.0.0/16".parse().unwrap()],
        }
    }

    #[test]
    fn rate_limits_per_source_except_trusted_proxies() {
        let p = policy();
        let mut g = AbuseGuard::default();
        let ip: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        let allowed = (0..50).filter(|_| g.allow(ip, t0, &p)).count();
        assert_eq!(allowed, 20, "the burst, then nothing");
        assert!(
            g.allow(ip, t0 + Duration::from_millis(100), &p),
            "refilled at 10/s"
        );
        let proxy: IpAddr = "10.9.1.1".parse().unwrap();
        assert!((0..1000).all(|_| g.allow(proxy, t0, &p)));
        assert!(
            (0..10).all(|_| !g.record_failure(proxy, t0, &p)),
            "a trusted proxy is never banned"
        );
    }

    #[test]
    fn bans_after_repeated_failures_then_forgives() {
        let policy = policy();
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
