//! The addresses of providers' hosts (trunks that register, and the hosts dial-outs go to),
//! located off the core (`locate`: SRV, then A/AAAA) and remembered.
//!
//! A trunk reload must be quick: an API write to trunks, accounts or rules answers only once
//! the core has loaded it (`loaded.rs`), and a name server that does not answer would hold
//! every such write for its whole timeout. So a reload waits for a new host's lookup only
//! briefly ([`FIRST_LOOKUP`]); what is still pending then is looked up in the background, and
//! the trunks load again when it resolves. Results, failures included, are kept for
//! [`FRESH_FOR`], then looked up again in the background while the old addresses serve.
//!
//! A lookup that fails does not take known addresses away: they go on serving for up to
//! [`STALE_FOR`] after they were last found (RFC 8767's "serve stale"). A name server's outage
//! must not end the registrations and calls of providers that have not moved.
//!
//! A host can have several addresses (SRV targets, several A records), tried in order. One
//! that failed (no answer, a transport error, 503) is set aside: it goes to the end of the
//! order for [`SET_ASIDE_FOR`], across lookups (RFC 3263 §4.3). A registration stays at the
//! address it uses while that is one of its host's and not set aside: it moves only when its
//! server fails or leaves the host's records, not every time a lookup puts a recovered
//! primary first again (each move is a new registration, and a primary still down would cost
//! a registration's worth of failing REGISTERs every time).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipx_sip::Transport;

use crate::sip::locate::{Located, Locator};

/// How long a reload waits for the lookups of hosts it has never resolved.
const FIRST_LOOKUP: Duration = Duration::from_millis(500);
/// How long a result serves before it is looked up again.
const FRESH_FOR: Duration = Duration::from_secs(300);
/// How long a host never found waits before it is looked up again (a provider's new name
/// whose records are still on their way, a name server that was down).
const NOT_FOUND_FOR: Duration = Duration::from_secs(30);
/// How long after they were last found addresses serve while lookups of their host fail.
const STALE_FOR: Duration = Duration::from_secs(24 * 3600);
/// How long an address that failed is tried after the others.
const SET_ASIDE_FOR: Duration = Duration::from_secs(600);
/// Hosts remembered at most: dial-outs to SIP URIs name hosts of the API user's choosing.
/// When full, hosts not looked up for [`FRESH_FOR`] make room; failing that, a new host's
/// result is not kept.
const MAX_KNOWN: usize = 10_000;

/// A server as SIPx is told it: host, port if given (none: SRV decides), transport.
pub(crate) type Key = (String, Option<u16>, Transport);

/// What is known of a host.
#[derive(Debug, Clone)]
struct Known {
    /// Its addresses in the order its records give, the last ones found, and when they were
    /// found: kept while no older than [`STALE_FOR`].
    found: Option<(Vec<SocketAddr>, Instant)>,
    /// When it was last looked up, whatever came of it.
    looked_up: Instant,
    /// Its addresses that failed, and when (the latest failure last).
    failed: Vec<(SocketAddr, Instant)>,
}

impl Known {
    /// Whether it was looked up recently enough not to be looked up again.
    fn is_fresh(&self, now: Instant) -> bool {
        let fresh_for = if self.found.is_some() {
            FRESH_FOR
        } else {
            NOT_FOUND_FOR
        };
        now.saturating_duration_since(self.looked_up) < fresh_for
    }

    /// The addresses set aside at `now`, the one that failed last, last.
    fn set_aside(&self, now: Instant) -> impl Iterator<Item = SocketAddr> + '_ {
        self.failed
            .iter()
            .filter(move |(_, at)| still_aside(*at, now))
            .map(|(a, _)| *a)
    }

    /// The addresses in the order to try them: as found, those set aside after the others
    /// (the one that failed last, last).
    fn ordered(&self, now: Instant) -> Vec<SocketAddr> {
        let Some((found, _)) = &self.found else {
            return Vec::new();
        };
        let aside: Vec<SocketAddr> = self.set_aside(now).filter(|a| found.contains(a)).collect();
        let mut ordered: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| !aside.contains(a))
            .collect();
        ordered.extend(aside);
        ordered
    }

    fn is_set_aside(&self, addr: SocketAddr, now: Instant) -> bool {
        self.set_aside(now).any(|a| a == addr)
    }
}

/// Whether an address that failed `at` is still tried after the others at `now`.
fn still_aside(at: Instant, now: Instant) -> bool {
    now.saturating_duration_since(at) < SET_ASIDE_FOR
}

/// Shared by the core's trunk loads. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ProviderHosts {
    known: Arc<Mutex<HashMap<Key, Known>>>,
    locator: Locator,
}

impl ProviderHosts {
    pub fn new(locator: Locator) -> Self {
        ProviderHosts {
            locator,
            ..ProviderHosts::default()
        }
    }

    /// The address to use for each of `hosts` (`None` where there is no host), given the one
    /// in use (a registration's): that one while it is still the host's and not set aside,
    /// else the first to try. From memory when known, else looked up for at most
    /// [`FIRST_LOOKUP`]. Also returns the hosts to look up (again) in the background: unknown
    /// ones still pending, and stale ones.
    pub async fn addresses(
        &self,
        hosts: &[Option<(Key, Option<SocketAddr>)>],
    ) -> (Vec<Option<SocketAddr>>, Vec<Key>) {
        let now = Instant::now();
        let mut todo = Vec::new();
        let mut unknown = Vec::new();
        for (key, _) in hosts.iter().flatten() {
            match self.get(key) {
                Some(k) if k.is_fresh(now) => {}
                Some(_) => todo.push(key.clone()),
                None => unknown.push(key.clone()),
            }
        }
        let first = async {
            for key in &unknown {
                let found = self.locate(key).await;
                self.put(key, found);
            }
        };
        let _ = tokio::time::timeout(FIRST_LOOKUP, first).await;
        todo.extend(unknown.into_iter().filter(|k| self.get(k).is_none()));
        let now = Instant::now();
        let addresses = hosts
            .iter()
            .map(|host| {
                let (key, in_use) = host.as_ref()?;
                let known = self.get(key)?;
                let ordered = known.ordered(now);
                let usable = |a: &SocketAddr| !known.is_set_aside(*a, now);
                match in_use {
                    Some(a) if ordered.contains(a) && usable(a) => Some(*a),
                    // Every address failed: where it is, rather than churn among them.
                    Some(a) if ordered.contains(a) && !ordered.iter().any(usable) => Some(*a),
                    _ => ordered.first().copied(),
                }
            })
            .collect();
        (addresses, todo)
    }

    /// Looks `hosts` up; true when any host's first address is new (the trunks should load
    /// again).
    pub async fn refresh(&self, hosts: Vec<Key>) -> bool {
        let mut changed = false;
        for key in hosts {
            let before = self.first(&key);
            let found = self.locate(&key).await;
            changed |= self.put(&key, found).first().copied() != before;
        }
        changed
    }

    /// The addresses of a dial-out's host, in the order to try them: from memory while
    /// fresh, else looked up now (the caller waits; it is off the core). When the lookup
    /// fails, the last addresses found serve.
    pub async fn lookup(&self, key: &Key) -> Vec<SocketAddr> {
        let now = Instant::now();
        if let Some(k) = self
            .get(key)
            .filter(|k| k.is_fresh(now) && k.found.is_some())
        {
            return k.ordered(now);
        }
        let found = self.locate(key).await;
        self.put(key, found)
    }

    /// `addr` of `key` failed (no answer, a transport error, 503): it is tried after the
    /// host's other addresses for [`SET_ASIDE_FOR`]. True when the host has another address
    /// that has not failed (somewhere to move to).
    pub fn set_aside(&self, key: &Key, addr: SocketAddr) -> bool {
        self.set_aside_at(key, addr, Instant::now())
    }

    fn set_aside_at(&self, key: &Key, addr: SocketAddr, now: Instant) -> bool {
        let Ok(mut known) = self.known.lock() else {
            return false;
        };
        let Some(k) = known.get_mut(key) else {
            return false;
        };
        k.failed
            .retain(|(a, at)| *a != addr && still_aside(*at, now));
        k.failed.push((addr, now));
        k.ordered(now).iter().any(|a| !k.is_set_aside(*a, now))
    }

    /// `key`'s addresses in the order to try them now, from memory (none when unknown).
    pub fn ordered(&self, key: &Key) -> Vec<SocketAddr> {
        self.get(key)
            .map_or_else(Vec::new, |k| k.ordered(Instant::now()))
    }

    fn first(&self, key: &Key) -> Option<SocketAddr> {
        self.ordered(key).first().copied()
    }

    async fn locate(&self, (host, port, transport): &Key) -> Located {
        self.locator.locate(host, *port, *transport).await
    }

    fn get(&self, key: &Key) -> Option<Known> {
        self.known.lock().ok()?.get(key).cloned()
    }

    /// Records a lookup's result; returns the host's addresses in the order to try them (a
    /// failure keeps the last ones found while they are no older than [`STALE_FOR`], and so
    /// does a guess made when the SRV lookup failed; what failed stays set aside).
    fn put(&self, key: &Key, found: Located) -> Vec<SocketAddr> {
        self.put_at(key, found, Instant::now())
    }

    fn put_at(&self, key: &Key, found: Located, now: Instant) -> Vec<SocketAddr> {
        let Ok(mut known) = self.known.lock() else {
            return found.addrs;
        };
        let serves =
            |(_, at): &(Vec<SocketAddr>, Instant)| now.saturating_duration_since(*at) < STALE_FOR;
        let old = known.get(key);
        let stale = old.and_then(|old| old.found.clone()).filter(serves);
        let entry = Known {
            found: match (found.addrs.is_empty(), found.complete, stale) {
                (false, true, _) | (false, false, None) => Some((found.addrs, now)),
                (_, _, stale) => stale,
            },
            looked_up: now,
            failed: old.map_or_else(Vec::new, |old| {
                old.failed
                    .iter()
                    .copied()
                    .filter(|(_, at)| still_aside(*at, now))
                    .collect()
            }),
        };
        if known.len() >= MAX_KNOWN && !known.contains_key(key) {
            known.retain(|_, k| now.saturating_duration_since(k.looked_up) < FRESH_FOR);
            if known.len() >= MAX_KNOWN {
                return entry.ordered(now);
            }
        }
        let ordered = entry.ordered(now);
        known.insert(key.clone(), entry);
        ordered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str, port: u16) -> Key {
        (host.to_owned(), Some(port), Transport::Udp)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// What a lookup found.
    fn found(addrs: &[SocketAddr]) -> Located {
        Located {
            addrs: addrs.to_vec(),
            complete: true,
        }
    }

    #[tokio::test]
    async fn known_hosts_come_from_memory_and_unknown_ones_wait_briefly() {
        let hosts = ProviderHosts::default();
        let literal = key("127.0.0.1", 5060);
        let (addrs, todo) = hosts
            .addresses(&[Some((literal.clone(), None)), None])
            .await;
        assert_eq!(addrs, [Some(addr("127.0.0.1:5060")), None]);
        assert!(todo.is_empty(), "resolved at once: nothing left to do");
        // A failure is remembered too: the next reload does not wait for it again.
        hosts.put(&key("unresolvable.invalid", 5060), found(&[]));
        let started = Instant::now();
        let (addrs, todo) = hosts
            .addresses(&[
                Some((key("unresolvable.invalid", 5060), None)),
                Some((literal, None)),
            ])
            .await;
        assert!(started.elapsed() < FIRST_LOOKUP);
        assert_eq!(addrs[0], None);
        assert!(todo.is_empty());
    }

    #[tokio::test]
    async fn a_failed_lookup_keeps_the_last_address_found_for_a_while() {
        let hosts = ProviderHosts::default();
        let key = key("sbc.provider.invalid", 5060);
        let addrs = vec![addr("192.0.2.7:5060")];
        let long_ago = Instant::now() - FRESH_FOR - Duration::from_secs(1);
        hosts.put_at(&key, found(&addrs), long_ago);
        // Stale: looked up again (the .invalid name fails), and the address still serves, to
        // dial-outs and to the registering trunks' reloads alike.
        assert_eq!(hosts.lookup(&key).await, addrs);
        assert!(!hosts.refresh(vec![key.clone()]).await, "nothing changed");
        let (picked, todo) = hosts.addresses(&[Some((key.clone(), None))]).await;
        assert_eq!((picked, todo), (vec![Some(addrs[0])], vec![]));
        // A guess made when the SRV lookup failed (the domain's own A record) does not replace
        // them either; with nothing known, it serves.
        let guess = Located {
            addrs: vec![addr("198.51.100.80:5060")],
            complete: false,
        };
        assert_eq!(hosts.put(&key, guess.clone()), addrs);
        assert_eq!(
            hosts.put(
                &("elsewhere.invalid".to_owned(), None, Transport::Udp),
                guess.clone()
            ),
            guess.addrs
        );
        // ... until they have not been found for STALE_FOR.
        let too_long_ago = Instant::now() - STALE_FOR - Duration::from_secs(1);
        hosts.put_at(&key, found(&addrs), too_long_ago);
        assert_eq!(hosts.put(&key, found(&[])), []);
    }

    #[tokio::test]
    async fn a_fresh_address_serves_dial_outs_without_a_lookup() {
        let hosts = ProviderHosts::default();
        // A name that no lookup could find: only memory can answer.
        let known = key("sbc.provider.invalid", 5061);
        let addrs = vec![addr("192.0.2.8:5061")];
        hosts.put(&known, found(&addrs));
        assert_eq!(hosts.lookup(&known).await, addrs);
        assert_eq!(
            hosts.lookup(&key("sbc.provider.invalid", 5062)).await,
            [],
            "another port, another key"
        );
        let other_transport = (
            "sbc.provider.invalid".to_owned(),
            Some(5061),
            Transport::Tcp,
        );
        assert_eq!(
            hosts.lookup(&other_transport).await,
            [],
            "another transport too"
        );
    }

    #[tokio::test]
    async fn a_failed_address_is_tried_last_for_a_while_even_after_a_lookup() {
        let hosts = ProviderHosts::default();
        let srv = ("sbc.provider.invalid".to_owned(), None, Transport::Udp);
        let (primary, backup) = (addr("192.0.2.1:5060"), addr("192.0.2.2:5070"));
        hosts.put(&srv, found(&[primary, backup]));
        assert!(hosts.set_aside(&srv, primary));
        assert_eq!(hosts.lookup(&srv).await, [backup, primary]);
        assert_eq!(
            hosts.addresses(&[Some((srv.clone(), None))]).await.0,
            [Some(backup)]
        );
        // A new lookup gives the same order: the primary stays set aside.
        assert_eq!(
            hosts.put(&srv, found(&[primary, backup])),
            [backup, primary]
        );
        // Both failed: nowhere better to move to, and the one that failed first comes first
        // again.
        assert!(!hosts.set_aside(&srv, backup));
        assert_eq!(hosts.lookup(&srv).await, [primary, backup]);
        // Once SET_ASIDE_FOR has passed, the records' order stands again.
        let long_ago = Instant::now() - SET_ASIDE_FOR - Duration::from_secs(1);
        hosts.set_aside_at(&srv, primary, long_ago);
        hosts.set_aside_at(&srv, backup, long_ago);
        assert_eq!(hosts.lookup(&srv).await, [primary, backup]);
    }

    #[tokio::test]
    async fn a_registration_stays_at_its_address_until_that_fails_or_goes() {
        let hosts = ProviderHosts::default();
        let srv = ("sbc.provider.invalid".to_owned(), None, Transport::Udp);
        let (primary, backup) = (addr("192.0.2.1:5060"), addr("192.0.2.2:5070"));
        hosts.put(&srv, found(&[primary, backup]));
        let at = |in_use| {
            let hosts = hosts.clone();
            let srv = srv.clone();
            async move { hosts.addresses(&[Some((srv, in_use))]).await.0[0] }
        };
        // Registered at the backup (the primary had failed, and has recovered since): it
        // stays there.
        assert_eq!(at(Some(backup)).await, Some(backup));
        // Its server failed: the first other one.
        hosts.set_aside(&srv, backup);
        assert_eq!(at(Some(backup)).await, Some(primary));
        // Its server is no longer among the host's: the first.
        let moved = addr("192.0.2.3:5060");
        hosts.put(&srv, found(&[primary, backup]));
        assert_eq!(at(Some(moved)).await, Some(primary));
        // Every server failed: it stays where it is (its own back-off paces it), rather than
        // moving back and forth.
        assert!(!hosts.set_aside(&srv, primary));
        assert_eq!(at(Some(backup)).await, Some(backup));
    }

    #[tokio::test]
    async fn a_host_never_found_is_looked_up_again_sooner_than_one_found() {
        let hosts = ProviderHosts::default();
        let (never, known) = (key("nothing.invalid", 5060), key("192.0.2.5", 5060));
        let a_minute_ago = Instant::now() - Duration::from_secs(60);
        hosts.put_at(&never, found(&[]), a_minute_ago);
        hosts.put_at(&known, found(&[addr("192.0.2.5:5060")]), a_minute_ago);
        let (_, todo) = hosts
            .addresses(&[Some((never.clone(), None)), Some((known, None))])
            .await;
        assert_eq!(todo, [never]);
    }
}
