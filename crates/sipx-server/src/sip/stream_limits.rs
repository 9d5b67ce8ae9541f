//! Bounds on the stream connections (TCP, TLS, WS, WSS) others open to SIPx. A connection
//! costs a file descriptor whether or not it carries SIP, and the rate limit counts messages:
//! without these bounds, connections that send nothing would exhaust the descriptors media
//! ports, the API and every other caller need.
//!
//! - at most `max_total` at once, and `max_per_source` from one address;
//! - a connection must send its first message, and finish any message it starts, within the
//!   setup timeout (a peer trickling bytes holds nothing for long);
//! - a connection that carried SIP may then stay quiet for the idle timeout, longer than any
//!   registration lasts, so a device registered over it is always reachable down it; a call
//!   whose connection closed anyway is still reached on a new one (`core/reconnect.rs`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The bounds, and the connections open now.
#[derive(Debug)]
pub struct StreamLimits {
    max_total: usize,
    max_per_source: usize,
    pub timeouts: StreamTimeouts,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// How long a connection may take to say something, and then stay quiet.
#[derive(Debug, Clone, Copy)]
pub struct StreamTimeouts {
    pub setup: Duration,
    pub idle: Duration,
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct StreamPermit {
    limits: Arc<StreamLimits>,
    source: IpAddr,
}

impl StreamLimits {
    pub fn new(max_total: usize, max_per_source: usize, timeouts: StreamTimeouts) -> Arc<Self> {
        Arc::new(StreamLimits {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            timeouts,
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a connection from `source`, or `None` when a bound is reached.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Option<StreamPermit> {
        let source = source.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        if open.total >= self.max_total || from_source >= self.max_per_source {
            return None;
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        Some(StreamPermit {
            limits: self.clone(),
            source,
        })
    }

    /// Connections open now.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_source.get_mut(&self.source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_source.remove(&self.source);
            }
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit (at most `want`): the
/// default 1024 would cap calls and connections long before the machine does. Returns the
/// limit in force.
pub fn raise_open_file_limit(want: u64) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        let current = limit.current?;
        let target = limit.maximum.map_or(want, |max| max.min(want));
        if target > current {
            limit.current = Some(target);
            if setrlimit(Resource::Nofile, limit).is_ok() {
                return Some(target);
            }
        }
        Some(current)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = want;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_source: usize) -> Arc<StreamLimits> {
        let t = StreamTimeouts {
            setup: Duration::from_secs(1),
            idle: Duration::from_secs(1),
        };
        StreamLimits::new(total, per_source, t)
    }

    #[test]
    fn one_source_gets_its_share_and_no_more_and_places_come_back() {
        let l = limits(10, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = l.admit(a).unwrap();
        let _second = l.admit(a).unwrap();
        assert!(l.admit(a).is_none());
        // The same address written as IPv4-mapped IPv6 (a dual-stack socket) is the same source.
        assert!(l.admit("::ffff:192.0.2.1".parse().unwrap()).is_none());
        assert!(l.admit("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(l.admit(a).is_some());
    }

    #[test]
    fn the_total_bounds_every_source_together() {
        let l = limits(3, 3);
        let held: Vec<_> = (1..=3)
            .map(|i| l.admit(IpAddr::from([192, 0, 2, i])).unwrap())
            .collect();
        assert_eq!(l.open(), 3);
        assert!(l.admit("192.0.2.9".parse().unwrap()).is_none());
        drop(held);
        assert_eq!(l.open(), 0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_open_file_limit_is_never_lowered() {
        let before = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        let after = raise_open_file_limit(1);
        assert_eq!(after, before);
    }
}
