//! Registered devices by the address their REGISTERs came from: the "known source" check lets
//! them call, and a call from one of them belongs to its account (for the account's policies).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use sipx_sip::registrar::Binding;

/// Source address → the accounts (usernames) with a live binding from it, one entry per
/// binding.
#[derive(Debug, Default)]
pub(crate) struct BindingSources {
    by_ip: HashMap<IpAddr, Vec<(SocketAddr, String)>>,
}

impl BindingSources {
    /// `username`'s contacts went from `old` to `new`.
    pub fn replace(&mut self, username: &str, old: &[Binding], new: &[Binding]) {
        for b in old {
            let ip = b.source.ip();
            if let Some(entries) = self.by_ip.get_mut(&ip) {
                if let Some(i) = entries
                    .iter()
                    .position(|(addr, user)| *addr == b.source && user == username)
                {
                    entries.swap_remove(i);
                }
                if entries.is_empty() {
                    self.by_ip.remove(&ip);
                }
            }
        }
        for b in new {
            self.by_ip
                .entry(b.source.ip())
                .or_default()
                .push((b.source, username.to_owned()));
        }
    }

    /// Whether a registered device sends from `ip`.
    pub fn contains_ip(&self, ip: IpAddr) -> bool {
        self.by_ip.contains_key(&ip)
    }

    /// The account registered from `source` itself: the device's own socket, or its NAT
    /// binding. With several (one device, several accounts), the first registered.
    pub fn registered_at(&self, source: SocketAddr) -> Option<&str> {
        let entries = self.by_ip.get(&source.ip())?;
        entries
            .iter()
            .find(|(addr, _)| *addr == source)
            .map(|(_, user)| user.as_str())
    }

    /// The account registered from `ip` when it is the only one (a phone that calls from
    /// another socket than it registers from); `None` when none or several are.
    pub fn sole_account_on(&self, ip: IpAddr) -> Option<&str> {
        let entries = self.by_ip.get(&ip)?;
        let (_, first) = entries.first()?;
        entries
            .iter()
            .all(|(_, user)| user == first)
            .then_some(first.as_str())
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
}
