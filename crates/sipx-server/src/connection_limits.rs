//! Bounds on the connections others open to SIPx's stream listeners (SIP over TCP, TLS, WS,
//! WSS; the HTTP API). A connection costs a file descriptor whether or not it carries anything:
//! without bounds, connections that send nothing would exhaust the descriptors media ports, the
//! database and every other client need. At most `max_total` at once, and `max_per_source` from
//! one address; a connection past either is closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The bounds, and the connections open now.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_source: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct ConnectionPermit {
    limits: Arc<ConnectionLimits>,
    source: IpAddr,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_source: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            open: Mutex::new(Open::default()),
        })
    }

    /// A place for a connection from `source`, or `None` when a bound is reached.
    pub fn admit(self: &Arc<Self>, source: IpAddr) -> Option<ConnectionPermit> {
        let source = source_of(source);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let from_source = open.by_source.get(&source).copied().unwrap_or(0);
        if open.total >= self.max_total || from_source >= self.max_per_source {
            return None;
        }
        open.total += 1;
        open.by_source.insert(source, from_source + 1);
        Some(ConnectionPermit {
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

/// The source a connection counts against: its address, or for IPv6 its /64 (one host
/// commonly holds a whole /64, and would otherwise escape the per-source bound).
fn source_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Drop for ConnectionPermit {
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

/// `max` connections, within `1/share` of the open files this process may have (raised to
/// its hard limit first), so that one listener's clients cannot take the descriptors the
/// others, media ports and the database need. Returns the bound and the open-file limit.
pub fn within_open_files(max: usize, share: u64) -> (usize, Option<u64>) {
    let files = raise_open_file_limit(1 << 20);
    let bound = match files {
        Some(n) => max.min(usize::try_from(n / share.max(1)).unwrap_or(usize::MAX)),
        None => max,
    };
    (bound, files)
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

    fn limits(total: usize, per_source: usize) -> Arc<ConnectionLimits> {
        ConnectionLimits::new(total, per_source)
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
        // The addresses of one IPv6 /64 are one source.
        let _v6 = l.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        let _v6b = l.admit("2001:db8:1:2::ffff".parse().unwrap()).unwrap();
        assert!(l.admit("2001:db8:1:2:aaaa::7".parse().unwrap()).is_none());
        assert!(l.admit("2001:db8:1:3::1".parse().unwrap()).is_some());
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
