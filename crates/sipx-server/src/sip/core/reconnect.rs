//! Messages whose connection is gone: over TCP SIPx answers and calls back on the connection
//! a peer opened; when that one has closed (a phone that reconnects, a proxy that recycles
//! connections, a quiet connection SIPx closed), it opens one:
//! - for a response, to the address the request came from at the port its Via names (RFC
//!   3261 §18.2.2);
//! - for a request in a dialog (a BYE), to its next hop: the first Route, else the
//!   Request-URI (the peer's Contact), when that names the address the closed connection
//!   came from (§8.1.2, §18.1.1). Another address is not connected to: a caller could name
//!   any host in its Contact and have SIPx open connections to it.
//!
//! Later messages for the closed connection follow on the new one.

use std::collections::HashMap;
use std::net::SocketAddr;

use sipx_sip::msg::{HasHeaders, NameAddr, SipMessage, parse_datagram};
use sipx_sip::{FlowId, Transmit, Transport};

use super::Core;

/// Connections opened in place of closed ones.
#[derive(Default)]
pub(crate) struct Reconnects {
    /// A closed flow → the one that replaced it.
    replaced: HashMap<FlowId, FlowId>,
    /// Connections being opened → what to write once they are up.
    waiting: HashMap<FlowId, Vec<Vec<u8>>>,
}

/// Where a message goes when its connection (to `source`) is gone: a response to the source's
/// address at its Via's sent-by port (5060 by default); a request to its next hop when that is
/// the source's address.
fn new_destination(bytes: &[u8], source: SocketAddr) -> Option<SocketAddr> {
    match parse_datagram(bytes).ok()? {
        SipMessage::Response(r) => {
            let via = r.top_via()?;
            Some(SocketAddr::new(source.ip(), via.port.unwrap_or(5060)))
        }
        SipMessage::Request(r) => {
            let route = r
                .headers
                .list("Route")
                .first()
                .and_then(|v| NameAddr::parse(v));
            let uri = route.map_or(r.uri, |n| n.uri);
            let hop = super::next_hop::uri_addr(uri.as_sip()?)?;
            (hop.ip() == source.ip()).then_some(hop)
        }
    }
}

impl Core {
    /// `t` is for a stream flow that has closed: it goes on a connection opened in its place
    /// (or already opened for an earlier message).
    pub(super) fn send_on_new_connection(&mut self, t: Transmit) {
        if t.peer.transport != Transport::Tcp {
            return;
        }
        if let Some(&flow) = self.reconnects.replaced.get(&t.peer.flow) {
            if let Some(tx) = self.streams.get_mut(&flow) {
                tx.send(t.bytes);
                return;
            }
            if let Some(queued) = self.reconnects.waiting.get_mut(&flow) {
                queued.push(t.bytes);
                return;
            }
        }
        let Some(addr) = new_destination(&t.bytes, t.peer.addr) else {
            return;
        };
        // The peer may have connected again from there already.
        if let Some(flow) = self.stream_flow(addr) {
            self.reconnects.replaced.insert(t.peer.flow, flow);
            if let Some(tx) = self.streams.get_mut(&flow) {
                tx.send(t.bytes);
            }
            return;
        }
        tracing::debug!(%addr, "the connection closed: opening one for what goes its way");
        let flow = self.connect_own(addr, None);
        self.reconnects.replaced.insert(t.peer.flow, flow);
        self.reconnects.waiting.insert(flow, vec![t.bytes]);
    }

    /// A connection is up: what waited for it goes.
    pub(super) fn on_reconnected(&mut self, flow: FlowId) {
        if let (Some(queued), Some(tx)) = (
            self.reconnects.waiting.remove(&flow),
            self.streams.get_mut(&flow),
        ) {
            for bytes in queued {
                tx.send(bytes);
            }
        }
    }

    /// A connection closed or could not be opened: nothing more goes its way.
    pub(super) fn reconnect_gone(&mut self, flow: FlowId) {
        self.reconnects.waiting.remove(&flow);
        self.reconnects
            .replaced
            .retain(|old, new| *new != flow && *old != flow);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_to_its_next_hop_at_the_same_address() {
        let source: SocketAddr = "192.0.2.8:40312".parse().unwrap();
        let bye = |route: &str| {
            format!(
                "BYE sip:phone@192.0.2.8:5070;transport=tcp SIP/2.0\r\n\
                 Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK1\r\n{route}\
                 From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 2 BYE\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        assert_eq!(
            new_destination(bye("").as_bytes(), source),
            Some("192.0.2.8:5070".parse().unwrap())
        );
        assert_eq!(
            new_destination(bye("Route: <sip:192.0.2.8;lr>\r\n").as_bytes(), source),
            Some("192.0.2.8:5060".parse().unwrap())
        );
        // Nowhere else: the caller wrote its Contact and routes.
        assert_eq!(
            new_destination(bye("Route: <sip:192.0.2.9;lr>\r\n").as_bytes(), source),
            None
        );
        let elsewhere: SocketAddr = "192.0.2.7:40312".parse().unwrap();
        assert_eq!(new_destination(bye("").as_bytes(), elsewhere), None);
        let named = bye("").replace("192.0.2.8:5070", "phone.example");
        assert_eq!(new_destination(named.as_bytes(), source), None);
    }

    #[test]
    fn a_response_goes_to_its_source_at_the_via_port() {
        let source: SocketAddr = "192.0.2.7:40312".parse().unwrap();
        let response = |via: &str| {
            format!(
                "SIP/2.0 487 Request Terminated\r\nVia: SIP/2.0/TCP {via};branch=z9hG4bK1\r\n\
                 From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
                 Content-Length: 0\r\n\r\n"
            )
        };
        assert_eq!(
            new_destination(response("192.0.2.7:5070").as_bytes(), source),
            Some("192.0.2.7:5070".parse().unwrap())
        );
        // The address is the source's, whatever the Via says (RFC 3261 §18.2.2 `received`).
        assert_eq!(
            new_destination(response("10.1.1.1").as_bytes(), source),
            Some("192.0.2.7:5060".parse().unwrap())
        );
    }
}
