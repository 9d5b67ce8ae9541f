//! Registered devices by the address their REGISTERs came from: the "known source" check lets
//! them call, and a call from one of them belongs to its account (for the account's policies).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use sipx_sip::registrar::Binding;

/// Source address → the accounts (usernames) with a live binding from it, counted per binding.
/// One address may carry thousands of accounts (a gateway's SIM lines, an office behind one
/// NAT): every lookup and update is a map access, never a scan of them.
#[derive(Debug, Default)]
pub(crate) struct BindingSources {
    by_ip: HashMap<IpAddr, AtIp>,
}

/// The bindings registered from one IP address.
#[derive(Debug, Default)]
struct AtIp {
    /// Per source socket, its accounts (ordered, so a shared socket's pick is stable).
    by_source: HashMap<SocketAddr, BTreeMap<String, u32>>,
    /// Every account on the address, with its number of bindings from it.
    users: BTreeMap<String, u32>,
}

/// Adds `delta` (±1) to `user`'s count in `map`, dropping it at zero.
fn count(map: &mut BTreeMap<String, u32>, user: &str, add: bool) {
    if add {
        *map.entry(user.to_owned()).or_default() += 1;
    } else if let Some(n) = map.get_mut(user) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(user);
        }
    }
}

impl BindingSources {
    /// `username`'s contacts went from `old` to `new`. A binding with a `Path` came through
    /// proxies: its source is the proxy, which speaks for many devices, not the device, so it
    /// is not counted (a call from the proxy is let in as its own, a trusted proxy's).
    pub fn replace(&mut self, username: &str, old: &[Binding], new: &[Binding]) {
        let direct = |b: &&Binding| b.path.is_empty();
        for b in old.iter().filter(direct) {
            let ip = b.source.ip();
            let Some(at) = self.by_ip.get_mut(&ip) else {
                continue;
            };
            if let Some(users) = at.by_source.get_mut(&b.source) {
                count(users, username, false);
                if users.is_empty() {
                    at.by_source.remove(&b.source);
                }
            }
            count(&mut at.users, username, false);
            if at.users.is_empty() {
                self.by_ip.remove(&ip);
            }
        }
        for b in new.iter().filter(direct) {
            let at = self.by_ip.entry(b.source.ip()).or_default();
            count(at.by_source.entry(b.source).or_default(), username, true);
            count(&mut at.users, username, true);
        }
    }

    /// Whether a registered device sends from `ip`.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.by_ip.contains_key(&ip)
    }

    /// The account registered from `source` itself: the device's own socket, or its NAT
    /// binding. With several (one device, several accounts), the first by name.
    pub fn registered_at(&self, source: SocketAddr) -> Option<&str> {
        let users = self.by_ip.get(&source.ip())?.by_source.get(&source)?;
        users.keys().next().map(String::as_str)
    }

    /// The account registered from `ip` when it is the only one (a phone that calls from
    /// another socket than it registers from); `None` when none or several are.
    pub fn sole_account_on(&self, ip: IpAddr) -> Option<&str> {
        let users = &self.by_ip.get(&ip)?.users;
        match users.len() {
            1 => users.keys().next().map(String::as_str),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sipx_sip::Transport;

    /// A UDP binding registered from `source`.
    pub(in crate::sip::core) fn binding(source: &str) -> Binding {
        Binding {
            contact: format!("sip:x@{source}"),
            expires_at: 100,
            q: None,
            call_id: "c".to_owned(),
            cseq: 1,
            source: source.parse().unwrap(),
            transport: Transport::Udp,
            user_agent: None,
            path: Vec::new(),
        }
    }

    fn at<'a>(s: &'a BindingSources, source: &str) -> Option<&'a str> {
        let source: SocketAddr = source.parse().unwrap();
        s.registered_at(source).or(s.sole_account_on(source.ip()))
    }

    #[test]
    fn a_call_belongs_to_the_account_registered_from_its_address() {
        let mut s = BindingSources::default();
        s.replace("alice", &[], &[binding("192.0.2.1:5060")]);
        s.replace("bob", &[], &[binding("192.0.2.1:5070")]);
        s.replace("carol", &[], &[binding("192.0.2.9:5060")]);
        assert_eq!(at(&s, "192.0.2.1:5060"), Some("alice"));
        assert_eq!(at(&s, "192.0.2.1:5070"), Some("bob"));
        assert_eq!(s.registered_at("192.0.2.9:6000".parse().unwrap()), None);
        // Another port of a shared address: ambiguous, so no account.
        assert_eq!(at(&s, "192.0.2.1:6000"), None);
        // Another port of an address only carol registers from: carol (a phone that calls
        // from another socket than it registers from).
        assert_eq!(at(&s, "192.0.2.9:6000"), Some("carol"));
        assert_eq!(at(&s, "198.51.100.1:5060"), None);
        assert!(s.contains_ip("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn bindings_that_go_are_forgotten() {
        let mut s = BindingSources::default();
        let a = [binding("192.0.2.1:5060"), binding("192.0.2.1:5062")];
        s.replace("alice", &[], &a);
        s.replace("bob", &[], &[binding("192.0.2.1:5070")]);
        s.replace("alice", &a, &a[1..]);
        assert_eq!(at(&s, "192.0.2.1:5060"), None, "ambiguous now");
        assert_eq!(at(&s, "192.0.2.1:5062"), Some("alice"));
        s.replace("bob", &[binding("192.0.2.1:5070")], &[]);
        assert_eq!(at(&s, "192.0.2.1:5060"), Some("alice"));
        s.replace("alice", &a[1..], &[]);
        assert!(!s.contains_ip("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn a_proxy_that_relays_registrations_with_a_path_does_not_become_the_device() {
        let mut s = BindingSources::default();
        let mut behind = binding("192.0.2.5:5060");
        behind.path = vec!["<sip:192.0.2.5;lr>".to_owned()];
        s.replace("alice", &[], std::slice::from_ref(&behind));
        assert_eq!(at(&s, "192.0.2.5:5060"), None);
        assert!(!s.contains_ip("192.0.2.5".parse().unwrap()));
        // The same account registering directly, and then gone both ways.
        let direct = binding("192.0.2.6:5060");
        let both = [behind.clone(), direct.clone()];
        s.replace("alice", std::slice::from_ref(&behind), &both);
        assert_eq!(at(&s, "192.0.2.6:5060"), Some("alice"));
        s.replace("alice", &both, &[]);
        assert!(!s.contains_ip("192.0.2.6".parse().unwrap()));
    }
}
