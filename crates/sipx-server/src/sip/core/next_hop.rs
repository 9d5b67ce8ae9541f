//! Where a dialog's requests go (RFC 3261 §12.2.1.1, §8.1.2): to the first hop of its route
//! set, the proxy or SBC that record-routed the call, which may listen on another address or
//! port than the one its messages came from (a cluster's shared address, a proxy with two
//! interfaces). Without a route set they go to the remote target, the peer's Contact (an SBC
//! cluster or B2BUA may name another node than the one that sent the INVITE or the 2xx),
//! unless the peer is behind NAT, where its Contact names an address we cannot reach and its
//! flow is the way back: when the call's origin says so (a registered device, a provider
//! reached as the trunk's outbound proxy, `Call::followed_target`), when its Via did not name
//! where it came from, or when the Contact is a private address and the peer a public one.
//!
//! Over TCP, TLS and WebSocket the connection the call came on stays the way back (a proxy
//! reuses it both ways); the route set and the target decide only for UDP.

use std::net::{IpAddr, SocketAddr};

use sipx_sip::msg::{NameAddr, SipUri, Uri};
use sipx_sip::{Peer, Transport};

/// The peer a dialog's next request goes to: `received` (where its messages come from), or
/// the first route, or else `target` (the remote target, when the call follows it), when that
/// names an IP address reachable over the same UDP socket.
pub(crate) fn next_hop(route_set: &[NameAddr], target: Option<&Uri>, received: Peer) -> Peer {
    if received.transport != Transport::Udp {
        return received;
    }
    let hop = match route_set.first() {
        Some(first) => first.uri.as_sip().and_then(|r| udp_addr(r, received)),
        None => target
            .and_then(Uri::as_sip)
            .and_then(|t| udp_addr(t, received))
            .filter(|t| !hidden_behind_nat(t.ip(), received.addr.ip())),
    };
    hop.map_or(received, |addr| Peer { addr, ..received })
}

/// The address `uri` names for a request over UDP on `received`'s socket: an IP address of
/// its family, with no other transport asked for.
fn udp_addr(uri: &SipUri, received: Peer) -> Option<SocketAddr> {
    if uri.secure
        || uri
            .param("transport")
            .flatten()
            .is_some_and(|t| !t.eq_ignore_ascii_case("udp"))
    {
        return None;
    }
    // A host name would need a lookup (RFC 3263) the core does not make here.
    let addr = uri_addr(uri)?;
    // The socket the call came on speaks one address family.
    (addr.is_ipv4() == received.addr.is_ipv4() && !addr.ip().is_unspecified()).then_some(addr)
}

/// Whether a Contact at `target` seen from a peer at `source` is the inside of a NAT: a
/// loopback, private or link-local address named by a peer that is not one itself.
fn hidden_behind_nat(target: IpAddr, source: IpAddr) -> bool {
    let scope = |ip: IpAddr| match ip {
        IpAddr::V4(v4) if v4.is_loopback() => 0,
        IpAddr::V6(v6) if v6.is_loopback() => 0,
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64; // RFC 6598
            if v4.is_private() || v4.is_link_local() || shared {
                1
            } else {
                2
            }
        }
        IpAddr::V6(v6) if v6.is_unique_local() || v6.is_unicast_link_local() => 1,
        IpAddr::V6(_) => 2,
    };
    scope(target) < scope(source)
}

/// The address a SIP URI names, when its host is an IP address (port: the scheme's default).
pub(crate) fn uri_addr(uri: &SipUri) -> Option<SocketAddr> {
    let ip = uri.host.trim_matches(['[', ']']).parse::<IpAddr>().ok()?;
    let port = uri.port.unwrap_or(if uri.secure { 5061 } else { 5060 });
    Some(SocketAddr::new(ip, port))
}

/// Whether the top Via of a request from `source` names where it came from: a peer whose
/// Via says otherwise sits behind a NAT (or names itself by a host name we would have to
/// look up), and its Contact is no better a way back than its flow.
pub(crate) fn via_names_source(via: Option<&sipx_sip::msg::Via>, source: SocketAddr) -> bool {
    via.is_some_and(|v| {
        v.host.trim_matches(['[', ']']).parse::<IpAddr>().ok() == Some(source.ip())
            && v.port.unwrap_or(5060) == source.port()
    })
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
            next_hop(&set, None, source).addr,
            "192.0.2.20:5080".parse().unwrap()
        );
        // A strict router (no lr) is the next hop too, port 5060 by default.
        let strict = routes(&["<sip:192.0.2.21>"]);
        assert_eq!(
            next_hop(&strict, None, source).addr,
            "192.0.2.21:5060".parse().unwrap()
        );
        assert_eq!(next_hop(&strict, None, source).flow, source.flow);
    }

    #[test]
    fn without_a_usable_route_the_way_back_is_where_messages_came_from() {
        let source = peer("192.0.2.10:40312", Transport::Udp);
        assert_eq!(next_hop(&[], None, source), source);
        for odd in [
            "<sip:proxy.example.com;lr>",
            "<sip:[2001:db8::1];lr>",
            "<sip:192.0.2.20;transport=tcp;lr>",
        ] {
            assert_eq!(next_hop(&routes(&[odd]), None, source), source, "{odd}");
        }
        let tcp = peer("192.0.2.10:40312", Transport::Tcp);
        assert_eq!(next_hop(&routes(&["<sip:192.0.2.20;lr>"]), None, tcp), tcp);
    }

    fn uri(text: &str) -> Uri {
        Uri::parse(text).unwrap()
    }

    #[test]
    fn without_a_route_set_the_remote_target_is_the_next_hop() {
        // An SBC cluster: the INVITE or 2xx from one node, the Contact another's.
        let source = peer("192.0.2.10:5060", Transport::Udp);
        let target = uri("sip:peer@192.0.2.11:5074");
        assert_eq!(
            next_hop(&[], Some(&target), source).addr,
            "192.0.2.11:5074".parse().unwrap()
        );
        // The route set comes first.
        let set = routes(&["<sip:192.0.2.20;lr>"]);
        assert_eq!(
            next_hop(&set, Some(&target), source).addr,
            "192.0.2.20:5060".parse().unwrap()
        );
        // Peers on one private network or on loopback reach each other.
        let lan = peer("10.0.0.5:5060", Transport::Udp);
        let other = uri("sip:peer@192.168.1.7");
        assert_eq!(
            next_hop(&[], Some(&other), lan).addr,
            "192.168.1.7:5060".parse().unwrap()
        );
    }

    #[test]
    fn a_target_sipx_cannot_reach_leaves_the_way_back_where_messages_came_from() {
        let public = peer("203.0.113.9:40312", Transport::Udp);
        for inside in [
            "sip:phone@192.168.0.5:5060",
            "sip:phone@10.1.2.3",
            "sip:phone@100.64.0.7",
            "sip:phone@169.254.1.1",
            "sip:phone@127.0.0.1",
            "sip:phone@0.0.0.0",
            "sip:phone@[2001:db8::1]",
            "sip:phone@host.example.com",
            "sip:phone@198.51.100.1;transport=tcp",
            "sips:phone@198.51.100.1",
        ] {
            assert_eq!(
                next_hop(&[], Some(&uri(inside)), public),
                public,
                "{inside}"
            );
        }
        // A private peer's Contact on loopback is no way to it either.
        let lan = peer("10.0.0.5:5060", Transport::Udp);
        assert_eq!(next_hop(&[], Some(&uri("sip:p@127.0.0.1")), lan), lan);
        // Over a stream the connection stays the way back.
        let tcp = peer("192.0.2.10:40312", Transport::Tcp);
        assert_eq!(next_hop(&[], Some(&uri("sip:p@192.0.2.11")), tcp), tcp);
    }

    #[test]
    fn a_via_that_names_another_address_than_the_source_says_nat() {
        let source: SocketAddr = "203.0.113.9:40312".parse().unwrap();
        let via = |v: &str| sipx_sip::msg::Via::parse(v);
        assert!(via_names_source(
            via("SIP/2.0/UDP 203.0.113.9:40312;branch=z9hG4bK1").as_ref(),
            source
        ));
        for other in [
            "SIP/2.0/UDP 192.168.0.5:5060;branch=z9hG4bK1",
            "SIP/2.0/UDP 203.0.113.9;branch=z9hG4bK1",
            "SIP/2.0/UDP phone.example.com:40312;branch=z9hG4bK1",
        ] {
            assert!(!via_names_source(via(other).as_ref(), source), "{other}");
        }
        assert!(!via_names_source(None, source));
    }
}
