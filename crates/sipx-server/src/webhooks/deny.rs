//! Networks webhooks are never sent to (`webhooks.deny_networks`): by default the link-local
//! ones, where clouds answer with their metadata and credentials, and addresses no receiver
//! has. A tenant chooses its webhook URL, and the delivery log shows what answered: without
//! this, a URL could aim SIPx at its own host's metadata service. The check is on the
//! addresses a host name resolves to, right before connecting, so a name that resolves
//! somewhere harmless for the check and elsewhere for the connection gets nowhere.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

use crate::error::StartupError;

/// What `webhooks.deny_networks` holds when not set.
pub const DEFAULT_DENY: &[&str] = &[
    "169.254.0.0/16",     // IPv4 link-local: cloud metadata services (169.254.169.254)
    "fe80::/10",          // IPv6 link-local
    "fd00:ec2::254/128",  // a cloud's IPv6 metadata address
    "100.100.100.200/32", // another cloud's metadata address
    "0.0.0.0/8",          // "this network": reaches the local host on Linux
    "::/128",
    "224.0.0.0/4", // multicast
    "ff00::/8",
    "255.255.255.255/32",
];

/// The parsed list.
#[derive(Debug, Clone, Default)]
pub struct DenyList(Arc<[IpNet]>);

impl DenyList {
    pub fn parse(networks: &[String]) -> Result<DenyList, StartupError> {
        networks
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        StartupError::Config(format!(
                            "webhooks.deny_networks: {n:?} is not an address or network"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| DenyList(v.into()))
    }

    /// An IPv6 address carrying an IPv4 one (IPv4-mapped, IPv4-compatible, the NAT64 prefix
    /// `64:ff9b::/96`) is checked as that IPv4 address too: through a NAT64 gateway it reaches it.
    pub fn denies(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let embedded = match ip {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let low = std::net::Ipv4Addr::from((u128::from(v6) & 0xffff_ffff) as u32);
                let compatible = s[..6] == [0; 6] && u32::from(low) > 1;
                let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
                (compatible || nat64).then_some(IpAddr::V4(low))
            }
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

/// The error a lookup ends with when every address it found is denied: told apart from any
/// other failure to connect (a local firewall's EPERM is worth a retry, this is not).
#[derive(Debug)]
pub struct Denied(String);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to addresses webhooks may not reach (webhooks.deny_networks)",
            self.0
        )
    }
}

impl std::error::Error for Denied {}

impl DenyList {
    /// The addresses `host` (a name or an address) is at, on `port`, that the list allows;
    /// `Denied` when there are none. What HTTP connects to for webhooks and routing webhooks:
    /// checked here, then connected to as checked.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await?
            .filter(|a| !self.denies(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                Denied(host.to_owned()),
            ));
        }
        Ok(allowed)
    }
}

/// [`DenyList::resolve`] as the resolver of hyper's connector (which sets the port itself).
#[derive(Clone)]
pub struct GuardedResolver {
    deny: DenyList,
}

impl GuardedResolver {
    pub fn new(deny: DenyList) -> Self {
        GuardedResolver { deny }
    }
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower::Service<Name> for GuardedResolver {
    type Response = Addrs;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Addrs>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let deny = self.deny.clone();
        Box::pin(async move { deny.resolve(name.as_str(), 0).await.map(Vec::into_iter) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_denies_metadata_and_link_local_and_allows_the_rest() {
        let list = DenyList::parse(
            &DEFAULT_DENY
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        for denied in [
            "169.254.169.254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "0.0.0.0",
            "fd00:ec2::254",
        ] {
            assert!(list.denies(denied.parse().unwrap()), "{denied}");
        }
        for allowed in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.10",
            "203.0.113.9",
            "::1",
            "2001:db8::1",
            "64:ff9b::cb00:7109",
        ] {
            assert!(!list.denies(allowed.parse().unwrap()), "{allowed}");
        }
        assert!(DenyList::parse(&["nope".to_owned()]).is_err());
    }
}
