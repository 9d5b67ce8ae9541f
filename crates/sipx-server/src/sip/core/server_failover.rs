//! A dial-out whose server failed goes to the next address of the same host (RFC 3263 §4.3),
//! before the next route (`dial.rs` `fall_back`): the host's other SRV targets or A records,
//! kept in `Controlled::alternates` when it was looked up.
//!
//! Only failures that say the server is down move a call: no answer at all (Timer B), a 503,
//! a connection that could not be opened. A 408 the server sent, or a refusal SIPx makes itself
//! (a trunk's call limit, no listener of the address's family), says nothing about the server.
//! Where the address is not the call's to choose, nothing moves either:
//! - a trunk that registers: its calls go where its registration is, which moves on its own
//!   (`trunks.rs`);
//! - a TCP/TLS trunk's call already on its open connection: only a connection that cannot be
//!   opened moves it (a 503 on a working connection is that call's);
//! - a SIP URI over TCP/TLS: it goes over a connection that is already there, or not at all.
//!
//! The address that failed is set aside (`provider_hosts`), so the next calls start at the
//! next one too.

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
    /// Sends dial-out `id` to its host's next address after `failure`; false when it has none
    /// to go to (nothing moved).
    pub(super) fn try_next_address(
        &mut self,
        now: Instant,
        id: &str,
        failure: ServerFailure,
    ) -> bool {
        let Some(c) = self.controls.by_id.get(id) else {
            return false;
        };
        let rang = c.out.as_ref().is_some_and(|o| o.rang);
        if rang || c.fsm.is_ended() || c.alternates.is_empty() || c.invite.is_none() {
            return false;
        }
        let (key, failed) = match &c.target {
            DialTarget::Trunk(t) => {
                let streams = t.transport != Transport::Udp;
                if self.trunk_regs.contains_key(&t.id)
                    || (streams && failure != ServerFailure::NoConnection)
                {
                    return false;
                }
                ((t.host.clone(), t.port, t.transport), t.addr)
            }
            DialTarget::Direct {
                host,
                port,
                transport: Transport::Udp,
                addr,
                ..
            } => ((host.clone(), *port, Transport::Udp), *addr),
            _ => return false,
        };
        let Lookup::Found(failed) = failed else {
            return false;
        };
        let Some(c) = self.controls.by_id.get_mut(id) else {
            return false;
        };
        let (Some(next), Some(invite)) = (c.alternates.pop_front(), c.invite.clone()) else {
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
        self.provider_hosts.set_aside(&key, failed);
        self.send_invite(now, id, invite);
        true
    }
}
