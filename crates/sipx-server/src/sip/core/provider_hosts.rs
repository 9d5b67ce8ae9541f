//! The addresses of the providers trunks register to, looked up off the core and remembered.
//!
//! A trunk reload must be quick: an API write to trunks, accounts or rules answers only once
//! the core has loaded it (`loaded.rs`), and a name server that does not answer would hold
//! every such write for its whole timeout. So a reload waits for a new host's lookup only
//! briefly ([`FIRST_LOOKUP`]); what is still pending then is looked up in the background, and
//! the trunks load again when it resolves. Results, failures included, are kept for
//! [`FRESH_FOR`], then looked up again in the background while the old address serves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sip::call_service::{Families, resolve};

/// How long a reload waits for the lookups of hosts it has never resolved.
const FIRST_LOOKUP: Duration = Duration::from_millis(500);
/// How long a result serves before it is looked up again.
const FRESH_FOR: Duration = Duration::from_secs(300);

type Key = (String, u16);
/// A lookup's result and when it was made.
type Known = (Option<SocketAddr>, Instant);

/// Shared by the core's trunk loads. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ProviderHosts {
    known: Arc<Mutex<HashMap<Key, Known>>>,
    /// Which of a host's addresses SIPx can reach.
    families: Families,
}

impl ProviderHosts {
    /// The address families SIPx has SIP listeners of, which lookups prefer.
    pub fn families(&self) -> Families {
        self.families
    }

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
                Some((_, at)) if now.duration_since(at) < FRESH_FOR => {}
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
            .map(|k| self.get(k.as_ref()?).and_then(|(a, _)| a))
            .collect();
        (addresses, todo)
    }

    /// Looks `hosts` up; true when any address is new (the trunks should load again).
    pub async fn refresh(&self, hosts: Vec<Key>) -> bool {
        let mut changed = false;
        for key in hosts {
            let before = self.get(&key).and_then(|(a, _)| a);
            let addr = resolve(&key.0, key.1, self.families).await;
            self.put(&key, addr);
            changed |= addr != before;
        }
        changed
    }

    fn get(&self, key: &Key) -> Option<Known> {
        self.known.lock().ok()?.get(key).copied()
    }

    fn put(&self, key: &Key, addr: Option<SocketAddr>) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(key.clone(), (addr, Instant::now()));
        }
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
}
