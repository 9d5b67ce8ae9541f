//! Locating a SIP server (RFC 3263 §4) for SIPx's own requests to providers and SIP URIs:
//! the addresses to try, in order. The transport is always known here (a trunk's setting, a
//! URI's `transport` parameter or `sips:`), so NAPTR is not needed (§4.1 lets a client that
//! knows its transport go straight to SRV).
//!
//! - An IP address is the one address, at the given port or the transport's default.
//! - A name with a port is looked up for its A/AAAA records (§4.2), at that port.
//! - A name without a port is looked up for SRV records first (`_sip._udp.`, `_sip._tcp.`,
//!   `_sips._tcp.` for TLS), ordered by priority and, within one priority, by weighted chance
//!   (RFC 2782); each target's A/AAAA records at its port. Without SRV records (or when the
//!   SRV lookup itself fails), the name's A/AAAA records at the default port. A lone target
//!   "." says the domain offers no such service: nothing is found.
//!
//! A carrier that publishes a primary and a backup SBC under SRV is therefore reached at the
//! backup when the primary fails: the callers try the next address on a timeout, a transport
//! error or a 503 (§4.3), see `core/dial.rs` and `core/trunks.rs`.
//!
//! SRV records, and their targets' A/AAAA records, come from the system's name servers
//! (`/etc/resolv.conf`) or those of `sip.dns_servers`. A name without SRV records, or given
//! with a port, is looked up by the system's resolver (`getaddrinfo`, so `/etc/hosts`
//! counts), as every other name SIPx looks up.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use sipx_sip::Transport;

use super::call_service::Families;

/// How long each step of a locate may take: the SRV lookup, then the A/AAAA lookups of its
/// targets together (or of the name itself). A locate takes 6 s at most.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Addresses kept for one server at most (SRV targets times their addresses).
const MAX_ADDRESSES: usize = 16;

/// The transport's default port (RFC 3261 §19.1.2).
pub(crate) fn default_port(transport: Transport) -> u16 {
    if transport == Transport::Tls {
        5061
    } else {
        5060
    }
}

/// Finds servers' addresses. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Locator {
    /// For SRV lookups; none when no name server is known (SRV is then skipped).
    srv: Option<Arc<TokioResolver>>,
    /// Which addresses SIPx can reach: only those are kept, when there are any.
    families: Families,
}

impl Locator {
    /// SRV lookups go to `name_servers` (`ip:port`), or to the system's when empty.
    pub fn new(name_servers: &[SocketAddr], families: Families) -> Locator {
        let builder = if name_servers.is_empty() {
            match Resolver::builder_tokio() {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(error = %e, "no system name servers for SRV lookups: SIP servers are looked up by A/AAAA records only");
                    None
                }
            }
        } else {
            let servers = name_servers
                .iter()
                .map(|s| {
                    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                        .into_iter()
                        .map(|mut c| {
                            c.port = s.port();
                            c
                        })
                        .collect();
                    NameServerConfig::new(s.ip(), true, connections)
                })
                .collect();
            Some(Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            ))
        };
        let srv = builder.and_then(|mut b| {
            let options = b.options_mut();
            options.timeout = Duration::from_secs(1);
            options.attempts = 2;
            b.build()
                .inspect_err(|e| tracing::warn!(error = %e, "cannot start SRV lookups"))
                .ok()
        });
        Locator {
            srv: srv.map(Arc::new),
            families,
        }
    }

    /// The addresses of `host` to try in order (RFC 3263 §4.2); empty when it does not
    /// resolve. Only addresses of families SIPx has listeners of, unless it has no other.
    pub async fn locate(&self, host: &str, port: Option<u16>, transport: Transport) -> Located {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            let port = port.unwrap_or_else(|| default_port(transport));
            return Located::complete(vec![SocketAddr::new(ip.to_canonical(), port)]);
        }
        // Loopback names are never asked of DNS (RFC 6761 §6.3).
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host.to_ascii_lowercase().ends_with(".localhost");
        if let Some(port) = port.or(loopback.then(|| default_port(transport))) {
            return Located::complete(self.addresses_of(host, port).await);
        }
        let targets = match self.srv_targets(host, transport).await {
            SrvAnswer::Targets(targets) => targets,
            answer => {
                // The name's own records; after a failed SRV lookup only a guess, for a host
                // never found before.
                let addrs = self.addresses_of(host, default_port(transport)).await;
                let complete = !matches!(answer, SrvAnswer::Failed);
                return Located { addrs, complete };
            }
        };
        // The targets' lookups share one deadline: a locate stays bounded however many
        // targets there are.
        let deadline = tokio::time::Instant::now() + LOOKUP_TIMEOUT;
        let mut found = Vec::new();
        for (target, port) in targets {
            let lookup = self.target_addresses(&target, port);
            let Ok(addrs) = tokio::time::timeout_at(deadline, lookup).await else {
                break;
            };
            for addr in addrs {
                if found.len() < MAX_ADDRESSES && !found.contains(&addr) {
                    found.push(addr);
                }
            }
        }
        Located::complete(self.reachable_only(found))
    }

    /// The SRV targets of `host` for `transport`, in the order to try them (empty when it says
    /// it offers no such service: a lone target ".", RFC 2782).
    async fn srv_targets(&self, host: &str, transport: Transport) -> SrvAnswer {
        let Some(resolver) = self.srv.as_ref() else {
            return SrvAnswer::NoRecords;
        };
        let service = match transport {
            Transport::Tls => "_sips._tcp",
            Transport::Tcp => "_sip._tcp",
            _ => "_sip._udp",
        };
        // Fully qualified: the search domains of resolv.conf are not for SIP domains.
        let name = format!("{service}.{}.", host.trim_end_matches('.'));
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, resolver.srv_lookup(name.as_str()));
        let records: Vec<Srv> = match lookup.await {
            Ok(Ok(lookup)) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(srv) => Some(Srv {
                        priority: srv.priority,
                        weight: srv.weight,
                        port: srv.port,
                        target: srv.target.to_ascii(),
                    }),
                    _ => None,
                })
                .collect(),
            Ok(Err(e)) if e.is_no_records_found() => return SrvAnswer::NoRecords,
            Ok(Err(e)) => {
                tracing::debug!(name, error = %e, "SRV lookup failed");
                return SrvAnswer::Failed;
            }
            Err(_) => {
                tracing::debug!(name, "SRV lookup timed out");
                return SrvAnswer::Failed;
            }
        };
        if records.is_empty() {
            return SrvAnswer::NoRecords;
        }
        let state = RandomState::new();
        let mut draws = 0u64;
        let mut random = |bound: u32| {
            draws += 1;
            (state.hash_one(draws) % (u64::from(bound) + 1)) as u32
        };
        SrvAnswer::Targets(srv_order(records, &mut random))
    }

    /// `host`'s addresses at `port` from the system's resolver.
    async fn addresses_of(&self, host: &str, port: u16) -> Vec<SocketAddr> {
        let host = host.trim_end_matches('.');
        let lookup = tokio::net::lookup_host((host, port));
        let Ok(Ok(addrs)) = tokio::time::timeout(LOOKUP_TIMEOUT, lookup).await else {
            return Vec::new();
        };
        self.reachable_only(at_port(addrs.map(|a| a.ip()), port))
    }

    /// The addresses of a family SIPx has a listener of, if there is any: a server SIPx
    /// cannot send to is no server to move on to.
    fn reachable_only(&self, mut addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        if addrs.iter().any(|a| self.families.has(a)) {
            addrs.retain(|a| self.families.has(a));
        }
        addrs
    }

    /// An SRV target's addresses at `port`, from the name servers that gave the SRV records:
    /// a target is a DNS name (RFC 2782), and those servers often sent its addresses along.
    async fn target_addresses(&self, target: &str, port: u16) -> Vec<SocketAddr> {
        let Some(resolver) = &self.srv else {
            return Vec::new();
        };
        let name = format!("{}.", target.trim_end_matches('.'));
        let lookup = tokio::time::timeout(LOOKUP_TIMEOUT, resolver.lookup_ip(name.as_str()));
        match lookup.await {
            Ok(Ok(ips)) => at_port(ips.iter(), port),
            _ => Vec::new(),
        }
    }
}

/// `ips` at `port`, each once, in the resolver's order.
fn at_port(ips: impl Iterator<Item = IpAddr>, port: u16) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for ip in ips {
        let addr = SocketAddr::new(ip.to_canonical(), port);
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs
}

/// What a locate found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Located {
    /// In the order to try them.
    pub addrs: Vec<SocketAddr>,
    /// False when the SRV lookup failed (no answer, a server error) and `addrs` are the name's
    /// own A/AAAA records instead: a guess, which must not replace SRV servers known before.
    pub complete: bool,
}

impl Located {
    fn complete(addrs: Vec<SocketAddr>) -> Located {
        Located {
            addrs,
            complete: true,
        }
    }
}

/// What the SRV lookup said.
enum SrvAnswer {
    Targets(Vec<(String, u16)>),
    /// No such records (or no name server to ask): the name's own A/AAAA records serve.
    NoRecords,
    /// No answer, or a server error.
    Failed,
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// RFC 2782's order: lowest priority first; within a priority, each next target drawn with a
/// chance proportional to its weight (`random(n)` picks uniformly in `0..=n`). A lone "."
/// target means the service is not offered: no targets.
pub(crate) fn srv_order(
    mut records: Vec<Srv>,
    random: &mut impl FnMut(u32) -> u32,
) -> Vec<(String, u16)> {
    if let [only] = records.as_slice()
        && (only.target == "." || only.target.is_empty())
    {
        return Vec::new();
    }
    records.retain(|r| r.target != "." && !r.target.is_empty());
    // Weight 0 first within each priority, as RFC 2782 asks before the draw.
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (mut group, later): (Vec<&Srv>, _) = (rest[..same].iter().collect(), &rest[same..]);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let draw = random(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= draw
                })
                .unwrap_or(0);
            let chosen = group.remove(index);
            ordered.push((chosen.target.trim_end_matches('.').to_owned(), chosen.port));
        }
        rest = later;
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.to_owned(),
        }
    }

    #[test]
    fn lower_priorities_come_first_whatever_their_weight() {
        let records = vec![
            srv(20, 100, 5060, "backup.example.net."),
            srv(10, 0, 5070, "primary.example.net."),
        ];
        let mut random = |n: u32| n;
        assert_eq!(
            srv_order(records, &mut random),
            [
                ("primary.example.net".to_owned(), 5070),
                ("backup.example.net".to_owned(), 5060)
            ]
        );
    }

    #[test]
    fn within_a_priority_targets_are_drawn_by_weight() {
        let records = vec![
            srv(10, 30, 5060, "a.example.net."),
            srv(10, 10, 5060, "b.example.net."),
            srv(10, 0, 5060, "zero.example.net."),
        ];
        // Over many draws, the first place goes to each by its share of the weight (30:10),
        // and a weight of 0 is first only when the draw is 0 (RFC 2782).
        let state = RandomState::new();
        let mut n = 0u64;
        let mut random = |bound: u32| {
            n += 1;
            (state.hash_one(n) % (u64::from(bound) + 1)) as u32
        };
        let mut firsts = std::collections::HashMap::<String, u32>::new();
        for _ in 0..4000 {
            let order = srv_order(records.clone(), &mut random);
            assert_eq!(order.len(), 3, "every target, once: {order:?}");
            *firsts.entry(order[0].0.clone()).or_default() += 1;
        }
        let a = firsts.get("a.example.net").copied().unwrap_or(0);
        let b = firsts.get("b.example.net").copied().unwrap_or(0);
        let zero = firsts.get("zero.example.net").copied().unwrap_or(0);
        assert!((2700..=3300).contains(&a), "{firsts:?}");
        assert!((800..=1200).contains(&b), "{firsts:?}");
        assert!(zero < 250, "{firsts:?}");
    }

    #[test]
    fn a_lone_dot_target_means_no_service() {
        let mut random = |n: u32| n;
        assert!(srv_order(vec![srv(0, 0, 0, ".")], &mut random).is_empty());
        assert!(srv_order(Vec::new(), &mut random).is_empty());
    }

    #[tokio::test]
    async fn addresses_and_names_with_ports_skip_srv() {
        let locator = Locator::new(
            &[],
            Families {
                v4: true,
                v6: false,
            },
        );
        let addrs =
            |s: &[&str]| -> Vec<SocketAddr> { s.iter().map(|a| a.parse().unwrap()).collect() };
        let tls = locator.locate("[::1]", None, Transport::Tls).await;
        assert_eq!(tls.addrs, addrs(&["[::1]:5061"]));
        let given = locator
            .locate("192.0.2.1", Some(5080), Transport::Udp)
            .await;
        assert_eq!(given.addrs, addrs(&["192.0.2.1:5080"]));
        // localhost has both families (on most systems): only the one SIPx listens on.
        let found = locator
            .locate("localhost", Some(5062), Transport::Udp)
            .await;
        assert_eq!(found.addrs, addrs(&["127.0.0.1:5062"]));
        assert!(found.complete);
        let nothing = locator
            .locate("nothing.invalid", Some(5060), Transport::Udp)
            .await;
        assert!(nothing.addrs.is_empty());
        // No family SIPx listens on: every address, rather than none.
        let neither = Locator::new(&[], Families::default());
        let all = neither
            .locate("localhost", Some(5062), Transport::Udp)
            .await;
        assert!(!all.addrs.is_empty());
    }
}
