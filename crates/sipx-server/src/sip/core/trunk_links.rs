//! Connections to the providers of trunks over TCP or TLS that SIPx does not register with
//! (trunks that know SIPx by its address or by its answers to their challenges, as many SIP
//! trunking services do over TLS). A trunk that registers keeps its connection through its
//! registration (`trunks.rs`); one that does not gets its connection when a call first needs
//! it: the call's INVITE waits for it, as do the others placed meanwhile, and later calls share
//! it until it closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use sipx_call::{Input, SipInput};
use sipx_sip::{FlowId, Transport};

use super::Core;
use crate::sip::transport;

/// A trunk's connection, to the provider's address.
pub(crate) struct TrunkLink {
    flow: FlowId,
    addr: SocketAddr,
    /// While it is being opened: the dial-outs waiting for it, with the INVITE each asked for.
    waiting: Option<Vec<(String, sipx_call::Invite)>>,
}

/// The trunks' connections, and those being opened for trunks gone or changed meanwhile (to
/// close once they open).
#[derive(Default)]
pub(crate) struct TrunkLinks {
    by_trunk: HashMap<String, TrunkLink>,
    abandoned: std::collections::HashSet<FlowId>,
}

/// Where a trunk's provider is, and how it is reached.
pub(super) struct Provider<'a> {
    pub trunk: &'a str,
    pub host: &'a str,
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Core {
    /// The open connection of trunk `id` (one that does not register) to `addr`.
    pub(super) fn trunk_link(&self, id: &str, addr: SocketAddr) -> Option<FlowId> {
        self.trunk_links
            .by_trunk
            .get(id)
            .filter(|l| l.addr == addr && l.waiting.is_none())
            .map(|l| l.flow)
    }

    /// The address of trunk `id`'s connection, open or being opened (none over UDP).
    pub(super) fn trunk_link_addr(&self, id: &str, transport: Transport) -> Option<SocketAddr> {
        if transport == Transport::Udp {
            return None;
        }
        self.trunk_links.by_trunk.get(id).map(|l| l.addr)
    }

    /// Dial-out `call` needs a connection to its trunk's provider for its INVITE: opened now,
    /// or already being opened; the INVITE goes once it is up.
    pub(super) fn await_trunk_link(
        &mut self,
        now: Instant,
        call: &str,
        invite: sipx_call::Invite,
        to: Provider<'_>,
    ) {
        if let Some(link) = self.trunk_links.by_trunk.get_mut(to.trunk) {
            if let Some(waiting) = &mut link.waiting
                && link.addr == to.addr
            {
                waiting.push((call.to_owned(), invite));
                return;
            }
            // Open to the trunk's old address, or being opened there: another is opened.
            self.drop_link(now, to.trunk, "the provider's address changed");
        }
        let tls = match transport::provider_tls(self.tls_client.as_ref(), to.transport, to.host) {
            Ok(tls) => tls,
            Err(reason) => {
                tracing::info!(call, trunk = to.trunk, reason, "dial-out cannot be sent");
                return self.link_failed(now, call, None);
            }
        };
        tracing::info!(trunk_id = %to.trunk, addr = %to.addr, transport = %to.transport, "connecting to the provider for a call");
        let flow = self.connect_own(to.addr, tls);
        let waiting = Some(vec![(call.to_owned(), invite)]);
        let link = TrunkLink {
            flow,
            addr: to.addr,
            waiting,
        };
        self.trunk_links.by_trunk.insert(to.trunk.to_owned(), link);
    }

    /// A connection is up: the INVITEs that waited for it go.
    pub(super) fn on_trunk_link_opened(&mut self, now: Instant, flow: FlowId) {
        if self.trunk_links.abandoned.remove(&flow) {
            // Opened for a trunk gone or changed meanwhile: closed at once.
            self.close_stream(flow);
            return;
        }
        let Some(link) = self
            .trunk_links
            .by_trunk
            .values_mut()
            .find(|l| l.flow == flow)
        else {
            return;
        };
        for (call, invite) in link.waiting.take().unwrap_or_default() {
            self.send_invite_if_waited(now, &call, invite);
        }
    }

    /// A connection closed or could not be opened: the dial-outs waiting for it fail (503, the
    /// next route tried); later ones open another.
    pub(super) fn on_trunk_link_gone(&mut self, now: Instant, flow: FlowId, reason: &str) {
        let Some(trunk) = self
            .trunk_links
            .by_trunk
            .iter()
            .find(|(_, l)| l.flow == flow)
            .map(|(id, _)| id.clone())
        else {
            self.trunk_links.abandoned.remove(&flow);
            return;
        };
        // Gone from the map first: a call that moves to the provider's next address opens a
        // link of its own there.
        let Some(link) = self.trunk_links.by_trunk.remove(&trunk) else {
            return;
        };
        let waiting = link.waiting.unwrap_or_default();
        self.fail_calls(now, &trunk, waiting, reason, Some(link.addr));
    }

    /// Closes the connections of trunks no longer there, or that register now (a moved
    /// provider is noticed by the next call, `await_trunk_link`): `unregistered` are the
    /// trunks there are that do not register.
    pub(super) fn keep_trunk_links(
        &mut self,
        now: Instant,
        unregistered: &std::collections::HashSet<String>,
    ) {
        let stale: Vec<String> = self
            .trunk_links
            .by_trunk
            .keys()
            .filter(|id| !unregistered.contains(*id))
            .cloned()
            .collect();
        for id in stale {
            self.drop_link(now, &id, "the trunk changed or is gone");
        }
    }

    /// Ends trunk `trunk`'s connection: the calls waiting for it fail; an open one closes, one
    /// being opened is closed once it opens.
    fn drop_link(&mut self, now: Instant, trunk: &str, reason: &str) {
        let Some(mut link) = self.trunk_links.by_trunk.remove(trunk) else {
            return;
        };
        if self.streams.contains_key(&link.flow) {
            self.close_stream(link.flow);
        } else {
            self.trunk_links.abandoned.insert(link.flow);
        }
        let waiting = link.waiting.take().unwrap_or_default();
        self.fail_calls(now, trunk, waiting, reason, None);
    }

    /// The dial-outs that waited for a connection that will not carry them; `unreachable`:
    /// the provider's server there could not be connected to, so each tries another address.
    fn fail_calls(
        &mut self,
        now: Instant,
        trunk: &str,
        waiting: Vec<(String, sipx_call::Invite)>,
        reason: &str,
        unreachable: Option<SocketAddr>,
    ) {
        for (call, _) in waiting {
            tracing::info!(
                call,
                trunk,
                reason,
                "dial-out cannot be sent: no connection to the provider"
            );
            self.link_failed(now, &call, unreachable);
        }
    }

    fn link_failed(&mut self, now: Instant, call: &str, unreachable: Option<SocketAddr>) {
        let failure = super::server_failover::ServerFailure::NoConnection;
        if unreachable.is_some() && self.try_next_address(now, call, failure, unreachable) {
            return;
        }
        if !self.fall_back(now, call, 503) {
            self.feed_later(call, Input::Sip(SipInput::TransportError));
        }
    }
}
