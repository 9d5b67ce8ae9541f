//! Where a dialog's requests go (RFC 3261 §12.2.1.1, §8.1.2): to the first hop of its route
//! set, the proxy or SBC that record-routed the call, which may listen on another address or
//! port than the one its messages came from (a cluster's shared address, a proxy with two
//! interfaces). Without a route set they go back where the peer's messages come from: a
//! phone behind NAT names an unreachable address in its Contact, and its flow is the way back.
//!
//! Over TCP, TLS and WebSocket the connection the call came on stays the way back (a proxy
//! reuses it both ways); the route set decides only for UDP.

use std::net::{IpAddr, SocketAddr};

use sipx_sip::msg::{NameAddr, SipUri};
use sipx_sip::{Peer, Transport};

/// The peer a dialog's next request goes to: `received` (where its messages come from), or
/// the first route when that names an IP address reachable over the same UDP socket.
pub(crate) fn next_hop(route_set: &[NameAddr], received: Peer) -> Peer {
    if received.transport != Transport::Udp {
        return received;
    }
    let Some(first) = route_set.first().and_then(|r| r.uri.as_sip()) else {
        return received;
    };
    if first
        .param("transport")
        .flatten()
        .is_some_and(|t| !t.eq_ignore_ascii_case("udp"))
    {
        return received;
    }
    // A host name would need a lookup (RFC 3263) the core does not make here.
    let Some(addr) = uri_addr(first) else {
        return received;
    };
    // The socket the call came on speaks one address family.
    if addr.is_ipv4() != received.addr.is_ipv4() {
        return received;
    }
    Peer { addr, ..received }
}

/// The address a SIP URI names, when its host is an IP address (port: the scheme's default).
pub(crate) fn uri_addr(uri: &SipUri) -> Option<SocketAddr> {
    let ip = uri.host.trim_matches(['[', ']']).parse::<IpAddr>().ok()?;
    let port = uri.port.unwrap_or(if uri.secure { 5061 } else { 5060 });
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipx_sip::FlowId;

    fn peer(addr: &str, transport: Transport) -> Peer {
        Peer {
            transport,
            flow: FlowId(1),
            addr: addr.parse().unwrap(),
        }
    }

    fn routes(values: &[&str]) -> Vec<NameAddr> {
        values.iter().map(|v| NameAddr::parse(v).unwrap()).collect()
    }

    #[test]
    fn the_first_route_is_the_next_hop_over_udp() {
        let source = peer("192.0.2.10:40312", Transport::Udp);
        let set = routes(&["<sip:192.0.2.20:5080;lr>", "<sip:198.51.100.1;lr>"]);
        assert_eq!(
            next_hop(&set, source).addr,
            "192.0.2.20:5080".parse().unwrap()
        );
        // A strict router (no lr) is the next hop too, port 5060 by default.
        let strict = routes(&["<sip:192.0.2.21>"]);
        assert_eq!(
            next_hop(&strict, source).addr,
            "192.0.2.21:5060".parse().unwrap()
        );
        assert_eq!(next_hop(&strict, source).flow, source.flow);
    }

    #[test]
    fn without_a_usable_route_the_way_back_is_where_messages_came_from() {
        let source = peer("192.0.2.10:40312", Transport::Udp);
        assert_eq!(next_hop(&[], source), source);
        for odd in [
            "<sip:proxy.example.com;lr>",
            "<sip:[2001:db8::1];lr>",
            "<sip:192.0.2.20;transport=tcp;lr>",
        ] {
            assert_eq!(next_hop(&routes(&[odd]), source), source, "{odd}");
        }
        let tcp = peer("192.0.2.10:40312", Transport::Tcp);
        assert_eq!(next_hop(&routes(&["<sip:192.0.2.20;lr>"]), tcp), tcp);
    }
}
