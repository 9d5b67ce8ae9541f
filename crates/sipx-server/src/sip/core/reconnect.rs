//! Answers whose connection is gone (RFC 3261 §18.2.2): over TCP a response goes back on the
//! connection its request came on; when that one has closed (a phone that reconnects, a proxy
//! that recycles connections), SIPx opens one to the address the request came from, at the
//! port its Via names, and sends the response there. Later responses of the same transaction
//! follow it. Only responses: a request toward a device whose connection closed waits for
//! the device to connect again.

use std::collections::HashMap;
use std::net::SocketAddr;

use sipx_sip::msg::{HasHeaders, SipMessage, parse_datagram};
use sipx_sip::{FlowId, Transmit, Transport};

use super::Core;
use crate::sip::transport;

/// Connections opened in place of closed ones.
#[derive(Default)]
pub(crate) struct Reconnects {
    /// A closed flow → the one that replaced it.
    replaced: HashMap<FlowId, FlowId>,
    /// Connections being opened → what to write once they are up.
    waiting: HashMap<FlowId, Vec<Vec<u8>>>,
}

/// Where a response goes when its connection is gone: the address its request came from, at
/// the Via's sent-by port (5060 by default); `None` for anything but a response.
fn sent_by(bytes: &[u8], source: SocketAddr) -> Option<SocketAddr> {
    let Ok(SipMessage::Response(r)) = parse_datagram(bytes) else {
        return None;
    };
    let via = r.top_via()?;
    Some(SocketAddr::new(source.ip(), via.port.unwrap_or(5060)))
}

impl Core {
    /// `t` is for a stream flow that has closed: a response goes on a connection opened in
    /// its place (or already opened for an earlier one).
    pub(super) fn send_on_new_connection(&mut self, t: Transmit) {
        if t.peer.transport != Transport::Tcp || !t.bytes.starts_with(b"SIP/2.0 ") {
            return;
        }
        if let Some(&flow) = self.reconnects.replaced.get(&t.peer.flow) {
            if let Some(tx) = self.streams.get(&flow) {
                let _ = tx.try_send(t.bytes);
                return;
            }
            if let Some(queued) = self.reconnects.waiting.get_mut(&flow) {
                queued.push(t.bytes);
                return;
            }
        }
        let Some(addr) = sent_by(&t.bytes, t.peer.addr) else {
            return;
        };
        // The peer may have connected again from there already.
        if let Some(flow) = self.stream_flow(addr) {
            self.reconnects.replaced.insert(t.peer.flow, flow);
            if let Some(tx) = self.streams.get(&flow) {
                let _ = tx.try_send(t.bytes);
            }
            return;
        }
        let flow = self.flow_ids.next();
        tracing::debug!(%addr, "the request's connection closed: opening one for its answer");
        self.reconnects.replaced.insert(t.peer.flow, flow);
        self.reconnects.waiting.insert(flow, vec![t.bytes]);
        tokio::spawn(transport::connect(
            addr,
            None,
            flow,
            self.inputs.clone(),
            self.stop.clone(),
        ));
    }

    /// A connection is up: what waited for it goes.
    pub(super) fn on_reconnected(&mut self, flow: FlowId) {
        if let (Some(queued), Some(tx)) = (
            self.reconnects.waiting.remove(&flow),
            self.streams.get(&flow),
        ) {
            for bytes in queued {
                let _ = tx.try_send(bytes);
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
            sent_by(response("192.0.2.7:5070").as_bytes(), source),
            Some("192.0.2.7:5070".parse().unwrap())
        );
        // The address is the source's, whatever the Via says (RFC 3261 §18.2.2 `received`).
        assert_eq!(
            sent_by(response("10.1.1.1").as_bytes(), source),
            Some("192.0.2.7:5060".parse().unwrap())
        );
        assert_eq!(sent_by(b"INVITE sip:x SIP/2.0\r\n\r\n", source), None);
    }
}
