//! The addresses of providers' hosts (trunks that register, and the hosts dial-outs go to),
//! looked up off the core and remembered.
//!
//! A trunk reload must be quick: an API write to trunks, accounts or rules answers only once
//! the core has loaded it (`loaded.rs`), and a name server that does not answer would hold
//! every such write for its whole timeout. So a reload waits for a new host's lookup only
//! briefly ([`FIRST_LOOKUP`]); what is still pending then is looked up in the background, and
//! the trunks load again when it resolves. Results, failures included, are kept for
//! [`FRESH_FOR`], then looked up again in the background while the old address serves.
//!
//! A lookup that fails does not take a known address away: it goes on serving for up to
//! [`STALE_FOR`] after it was last found (RFC 8767's "serve stale"). A name server's outage
//! must not end the registrations and calls of providers that have not moved.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sip::call_service::{Families, resolve};

/// How long a reload waits for the lookups of hosts it has never resolved.
const FIRST_LOOKUP: Duration = Duration::from_millis(500);
/// How long a result serves before it is looked up again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// How long after it was last found an address serves while lookups of its host fail.
const STALE_FOR: Duration = Duration::from_secs(24 * 3600);
/// Hosts remembered at most: dial-outs to SIP URIs name hosts of the API user's choosing.
/// When full, hosts not looked up for [`FRESH_FOR`] make room; failing that, a new host's
/// result is not kept.
const MAX_KNOWN: usize = 10_000;

type Key = (String, u16);

/// What is known of a host.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// Its address, the last one found, and when it was found: kept while no older than
    /// [`STALE_FOR`].
    found: Option<(SocketAddr, Instant)>,
    /// When it was last looked up, whatever came of it.
    looked_up: Instant,
}

impl Known {
    fn addr(&self) -> Option<SocketAddr> {
        self.found.map(|(addr, _)| addr)
    }
}

/// Shared by the core's trunk loads. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ProviderHosts {
    known: Arc<Mutex<HashMap<Key, Known>>>,
    /// Which of a host's addresses SIPx can reach.
    families: Families,
}

impl ProviderHosts {
    pub fn new(families: Families) -> Self {
        ProviderHosts {
            families,
            ..ProviderHosts::default()
        }
    }

    /// The address of each of `hosts` (`None` where there is no host): from memory when
    /// known, else looked up for at most [`FIRST_LOOKUP`]. Also returns the hosts to look up
    /// (again) in the background: unknown ones still pending, and stale ones.
    pub async fn addresses(&self, hosts: &[Option<Key>]) -> (Vec<Option<SocketAddr>>, Vec<Key>) {
        let now = Instant::now();
        let mut todo = Vec::new();
        let mut unknown = Vec::new();
        for key in hosts.iter().flatten() {
            match self.get(key) {
                Some(k) if now.duration_since(k.looked_up) < FRESH_FOR => {}
                Some(_) => todo.push(key.clone()),
                None => unknown.push(key.clone()),
            }
        }
        let first = async {
            for key @ (host, port) in &unknown {
                self.put(key, resolve(host, *port, self.families).await);
            }
        };
        let _ = tokio::time::timeout(FIRST_LOOKUP, first).await;
        todo.extend(unknown.into_iter().filter(|k| self.get(k).is_none()));
        let addresses = hosts
            .iter()
            .map(|k| self.get(k.as_ref()?).and_then(|k| k.addr()))
            .collect();
        (addresses, todo)
    }

    /// Looks `hosts` up; true when any address is new (the trunks should load again).
    pub async fn refresh(&self, hosts: Vec<Key>) -> bool {
        let mut changed = false;
        for key in hosts {
            let before = self.get(&key).and_then(|k| k.addr());
            let addr = resolve(&key.0, key.1, self.families).await;
            changed |= self.put(&key, addr) != before;
        }
        changed
    }

    /// The address of a dial-out's host: from memory while fresh, else looked up now (the
    /// caller waits; it is off the core). When the lookup fails, the last address found serves.
    pub async fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let key = (host.to_owned(), port);
        match self.get(&key) {
            Some(k) if k.looked_up.elapsed() < FRESH_FOR && k.addr().is_some() => k.addr(),
            _ => {
                let addr = resolve(host, port, self.families).await;
                self.put(&key, addr)
            }
        }
    }

    fn get(&self, key: &Key) -> Option<Known> {
        self.known.lock().ok()?.get(key).copied()
    }

    /// Records a lookup's result; returns the host's address now (a failure keeps the last one
    /// found while it is no older than [`STALE_FOR`]).
    fn put(&self, key: &Key, addr: Option<SocketAddr>) -> Option<SocketAddr> {
        self.put_at(key, addr, Instant::now())
    }

    fn put_at(&self, key: &Key, addr: Option<SocketAddr>, now: Instant) -> Option<SocketAddr> {
        let Ok(mut known) = self.known.lock() else {
            return addr;
        };
        let serves =
            |found: &(SocketAddr, Instant)| now.saturating_duration_since(found.1) < STALE_FOR;
        let entry = Known {
            found: match addr {
                Some(addr) => Some((addr, now)),
                None => known.get(key).and_then(|old| old.found).filter(serves),
            },
            looked_up: now,
        };
        if known.len() >= MAX_KNOWN && !known.contains_key(key) {
            known.retain(|_, k| now.saturating_duration_since(k.looked_up) < FRESH_FOR);
            if known.len() >= MAX_KNOWN {
                return entry.addr();
            }
        }
        known.insert(key.clone(), entry);
        entry.addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn known_hosts_come_from_memory_and_unknown_ones_wait_briefly() {
        let hosts = ProviderHosts::default();
        let literal = ("127.0.0.1".to_owned(), 5060);
        let (addrs, todo) = hosts.addresses(&[Some(literal.clone()), None]).await;
        assert_eq!(addrs, [Some("127.0.0.1:5060".parse().unwrap()), None]);
        assert!(todo.is_empty(), "resolved at once: nothing left to do");
        // A failure is remembered too: the next reload does not wait for it again.
        hosts.put(&("unresolvable.invalid".to_owned(), 5060), None);
        let started = Instant::now();
        let (addrs, todo) = hosts
            .addresses(&[
                Some(("unresolvable.invalid".to_owned(), 5060)),
                Some(literal),
            ])
            .await;
        assert!(started.elapsed() < FIRST_LOOKUP);
        assert_eq!(addrs[0], None);
        assert!(todo.is_empty());
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_last_address_found_for_a_while() {
        let hosts = ProviderHosts::default();
        let key = ("sbc.provider.invalid".to_owned(), 5060);
        let addr: SocketAddr = "192.0.2.7:5060".parse().unwrap();
        let long_ago = Instant::now() - FRESH_FOR - Duration::from_secs(1);
        hosts.put_at(&key, Some(addr), long_ago);
        // Stale: looked up again (the .invalid name fails), and the address still serves, to
        // dial-outs and to the registering trunks' reloads alike.
        assert_eq!(hosts.lookup(&key.0, key.1).await, Some(addr));
        assert!(!hosts.refresh(vec![key.clone()]).await, "nothing changed");
        let (addrs, todo) = hosts.addresses(&[Some(key.clone())]).await;
        assert_eq!((addrs, todo), (vec![Some(addr)], vec![]));
        // ... until it has not been found for STALE_FOR.
        let too_long_ago = Instant::now() - STALE_FOR - Duration::from_secs(1);
        hosts.put_at(&key, Some(addr), too_long_ago);
        assert_eq!(hosts.put(&key, None), None);
    }

    #[tokio::test]
    async fn a_fresh_address_serves_dial_outs_without_a_lookup() {
        let hosts = ProviderHosts::default();
        // A name that no lookup could find: only memory can answer.
        let key = ("sbc.provider.invalid".to_owned(), 5061);
        let addr: SocketAddr = "192.0.2.8:5061".parse().unwrap();
        hosts.put(&key, Some(addr));
        assert_eq!(hosts.lookup(&key.0, key.1).await, Some(addr));
        assert_eq!(
            hosts.lookup(&key.0, 5062).await,
            None,
            "another port, another key"
        );
    }
}
