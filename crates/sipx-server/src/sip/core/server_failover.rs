//! A dial-out whose server failed goes to the next address of the same host (RFC 3263 §4.3),
//! before the next route (`dial.rs` `fall_back`): the first of the host's addresses, in their
//! current order (`provider_hosts`: the failed one set aside), that the call has not tried.
//!
//! Only failures that say the server is down move a call: no answer at all (Timer B), a 503,
//! a connection that could not be opened. A 408 the server sent, or a refusal SIPx makes itself
//! (a trunk's call limit, no listener of the address's family), says nothing about the server.
//! A call that rang, or that is being hung up, never goes again. Where the address is not the
//! call's to choose, nothing moves either:
//! - a trunk that registers: its calls go where its registration is, which moves on its own
//!   (`trunks.rs`);
//! - a TCP/TLS trunk's call already on its open connection: only a connection that cannot be
//!   opened moves it (a 503 on a working connection is that call's);
//! - a SIP URI over TCP/TLS: it goes over a connection that is already there, or not at all.
//!
//! The address that failed is set aside, so the next calls start at the next one too.

use std::net::SocketAddr;
use std::time::Instant;

use sipx_sip::Transport;

use super::Core;
use crate::sip::call_service::{DialTarget, Lookup};

/// How a dial-out's server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServerFailure {
    /// No answer at all to the INVITE (Timer B).
    NoAnswer,
    /// It answered 503.
    Unavailable,
    /// A connection to it could not be opened.
    NoConnection,
}

impl Core {
    /// Sends dial-out `id` to another address of its host after `failure` at `failed` (by
    /// default, the address its target names); false when there is none left to try (nothing
    /// moved).
    pub(super) fn try_next_address(
        &mut self,
        now: Instant,
        id: &str,
        failure: ServerFailure,
        failed: Option<SocketAddr>,
    ) -> bool {
        let Some(failed) = failed.or_else(|| self.address_tried(id)) else {
            return false;
        };
        let Some(c) = self.controls.by_id.get(id) else {
            return false;
        };
        if !c.may_try_again() || c.invite.is_none() {
            return false;
        }
        let key = match &c.target {
            DialTarget::Trunk(t) => {
                let streams = t.transport != Transport::Udp;
                if self.trunk_regs.contains_key(&t.id)
                    || (streams && failure != ServerFailure::NoConnection)
                {
                    return false;
                }
                (t.host.clone(), t.port, t.transport)
            }
            DialTarget::Direct {
                host,
                port,
                transport: Transport::Udp,
                ..
            } => (host.clone(), *port, Transport::Udp),
            _ => return false,
        };
        self.provider_hosts.set_aside(&key, failed);
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return false;
        };
        c.tried.push(failed);
        let next = self
            .provider_hosts
            .ordered(&key)
            .into_iter()
            .find(|a| !c.tried.contains(a));
        let (Some(next), Some(invite)) = (next, c.invite.clone()) else {
            return false;
        };
        match &mut c.target {
            DialTarget::Trunk(t) => t.addr = Lookup::Found(next),
            DialTarget::Direct { addr, .. } => *addr = Lookup::Found(next),
            DialTarget::Accounts(_) => return false,
        }
        // The failed INVITE's sockets and session go; the next INVITE gets its own.
        c.out = None;
        tracing::info!(call = %id, ?failure, %failed, %next, "server failed: trying its next address");
        self.send_invite(now, id, invite);
        true
    }

    /// Where dial-out `id`'s INVITE went (or was to go), when its target names an address.
    fn address_tried(&self, id: &str) -> Option<SocketAddr> {
        match &self.controls.by_id.get(id)?.target {
            DialTarget::Trunk(t) => match t.addr {
                Lookup::Found(a) => Some(a),
                _ => None,
            },
            DialTarget::Direct {
                addr: Lookup::Found(a),
                ..
            } => Some(*a),
            _ => None,
        }
    }
}
